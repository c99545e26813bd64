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

from device.config import DetectConfig


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
