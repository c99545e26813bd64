"""The detection schedule: which search each frame gets (whole image, windows around tracks, or none).

The whole small image is searched every ``detect.full_search_interval`` frames, and whenever there is
nothing to follow. Those searches take turns (``ROTATION``): one in four uses the second cascade
(``Search.FULL_SECOND``, ``SECOND_CASCADE`` in const.py), which finds faces the reference's cascade scores
weakly, and one in four an image ``WIDER_SEARCH_FACTOR`` wider (``Search.FULL_WIDER``), so a face that
Haar's pyramid misses at one scale is found at the other; the usual search keeps half of the turns, as the
reference's own cascade on the usual image gives the boxes the classifier's crop was calibrated on.
With ``detect.second_cascade`` off, the usual and the wider image take turns.
In between, windows around the live tracks are searched, every ``detect.track_search_interval`` frames
once every track is confirmed, and on the frames between those the tracks coast (``FaceTracker.coast``).
The pipeline asks this once per frame; the detector only searches.
"""

from __future__ import annotations

import enum
import logging
import statistics
from collections import deque

from device.config import DetectConfig
from device.const import SEARCH_BUDGET_SAMPLES

logger = logging.getLogger(__name__)


class Search(enum.Enum):
    """What the detector searches on a frame."""

    FULL = "full"  # the whole small image: finds new faces; boxes accurate to its pixels
    FULL_WIDER = "full-wider"  # the same, on an image WIDER_SEARCH_FACTOR wider (one full search in four)
    FULL_SECOND = "full-second"  # the same with the second cascade (one full search in four)
    TRACKS = "tracks"  # full-resolution windows around the live tracks: the reference's boxes
    NONE = "none"  # nothing: every track is confirmed and they coast to the next search


# The whole-frame searches' turns; with detect.second_cascade off, the usual and the wider image's.
ROTATION = (Search.FULL, Search.FULL_SECOND, Search.FULL, Search.FULL_WIDER)
ROTATION_ONE_CASCADE = (Search.FULL, Search.FULL_WIDER)


class SearchSchedule:
    """Counts frames and says which search each one gets."""

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._rotation = ROTATION if config.second_cascade else ROTATION_ONE_CASCADE
        self._frames_since_full = config.full_search_interval
        self._full_searches = 0

    def next(self, has_tracks: bool, may_coast: bool) -> Search:
        """Advance one frame and say what to search on it (``may_coast``: every track is confirmed)."""
        self._frames_since_full += 1
        if not has_tracks or self._frames_since_full >= self.config.full_search_interval:
            self._frames_since_full = 0
            self._full_searches += 1
            return self._rotation[(self._full_searches - 1) % len(self._rotation)]
        if may_coast and self._frames_since_full % self.config.track_search_interval:
            return Search.NONE
        return Search.TRACKS


class SearchBudget:
    """Says once when the whole-frame searches cannot keep up with the source: their median time (over
    ``SEARCH_BUDGET_SAMPLES`` searches, the first left out as the cascade's warm-up) is longer than the
    ``detect.full_search_interval`` frames between them at the source's own frame interval. That interval
    is the source's time over its frames' count (their indexes, which count the frames a camera made and
    the pipeline never took) in the last frames seen: the camera's pace, not the pipeline's, and steady for a
    source that sends frames in bursts. The detection image is sized by ``detect.min_size_px``: a small face
    at a high resolution makes each search cost more than the camera's frames leave it (a Pi at 1920x1080,
    30 fps).
    """

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self._searches_s: list[float] = []
        # (index, time_s) of the last frames seen
        self._frames: deque[tuple[int, float]] = deque(
            maxlen=SEARCH_BUDGET_SAMPLES * config.full_search_interval
        )
        self._told = False

    def frame(self, index: int, time_s: float) -> None:
        """Count the frame with the source's ``index`` (0, 1, ...; a camera's frames the pipeline never took
        leave gaps) at ``time_s`` (seconds on the source's clock)."""
        if self._frames and (index <= self._frames[-1][0] or time_s < self._frames[-1][1]):
            self._frames.clear()  # a source reopened, or a clock that went back: start the window again
        self._frames.append((index, time_s))

    def _frame_interval_s(self) -> float | None:
        """The source's seconds per frame over the window, or None before it spans any time."""
        if len(self._frames) < 2 or self._frames[-1][1] == self._frames[0][1]:
            return None
        (first_index, first_s), (last_index, last_s) = self._frames[0], self._frames[-1]
        return (last_s - first_s) / (last_index - first_index)

    def searched(self, seconds: float, image_width_px: int) -> None:
        """Count one whole-frame search of ``seconds`` on an image ``image_width_px`` wide; warn once when
        the budget is short (see the class docstring)."""
        if self._told:
            return
        self._searches_s.append(seconds)
        interval_s = self._frame_interval_s()
        if len(self._searches_s) <= SEARCH_BUDGET_SAMPLES or interval_s is None:
            return
        search_s = statistics.median(self._searches_s[1:])
        budget_s = self.config.full_search_interval * interval_s
        self._searches_s.clear()
        if search_s <= budget_s:
            return
        self._told = True
        logger.warning(
            "whole-frame searches take %.0f ms (median) on the %d px wide detection image, more than the %d "
            "frames between them leave (%.0f ms at the source's %.1f fps): the daemon falls behind the "
            "source (a camera's frames are dropped); raise detect.min_size_px (now %d; the image is sized "
            "to show it) or detect.full_search_interval, or lower the camera's resolution",
            search_s * 1000,
            image_width_px,
            self.config.full_search_interval,
            budget_s * 1000,
            self.config.full_search_interval / budget_s,
            self.config.min_size_px,
        )
