"""Display backends behind one interface: none, video (annotated file), fb (framebuffer), window, auto."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.config import DisplayConfig
from device.const import RECORDING_CHECK_S, RECORDING_HOLD_BYTES, RECORDING_MAX_GAP_S
from device.display.room import RoomWatch
from device.display.video_path import VIDEO_CODECS, video_path_problem
from device.errors import DisplayError

logger = logging.getLogger(__name__)


class Display(Protocol):
    """Shows annotated frames; ``show`` returns False when the viewer asked to quit.

    ``time_s`` is the frame's time on the source's clock (seconds, ``Frame.time_s``), or None where there is
    none: a screen shows a frame when it comes, a recording places it in time (``VideoFileDisplay``)."""

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool: ...

    def close(self) -> None: ...


class NoDisplay:
    """Shows nothing (headless service, benchmarks)."""

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass


class FrameRate(Protocol):
    """A source's frame rate as a recording reads it (every ``FrameSource`` is one)."""

    @property
    def fps(self) -> float:
        """Frames a second: reported by the source, or measured; a stand-in while ``fps_measuring``."""
        ...

    @property
    def fps_measuring(self) -> bool:
        """True while the source measures the rate its frames arrive at (it reports none: HTTP MJPEG)."""
        ...


class VideoFileDisplay:
    """Writes the annotated frames to a video file (for headless runs and the README demo).

    ``frame_size`` is (width, height) in pixels. ``fps`` is the rate the file announces (0: 15), or the
    source whose rate it is: a source that measures its rate (``fps_measuring``; an HTTP MJPEG stream,
    over ``RATE_MEASURE_S``) is recorded at the rate it measured, its frames held in memory until then (at
    most ``RECORDING_HOLD_BYTES`` of them; past that, or when the run ends first, at its stand-in rate,
    camera.fps). ``input_video`` is the video file being played, if any: the recording never replaces it.
    Raises DisplayError, naming the key and the cause, when the file cannot be written: at start, or, for
    a source still measuring its rate, from the ``show`` or ``close`` that opens the file again at it.

    The file plays at the source's pace: it holds a constant ``fps`` frames a second, and each of its frames
    shows the newest frame whose time (``show``'s ``time_s``) had come by then, so a variable-frame-rate
    file, a camera faster or slower than the announced rate, or a pipeline that drops frames is recorded as
    long as it lasted (sample and hold). A gap longer than ``RECORDING_MAX_GAP_S`` (a stream that stalled) is
    held that long and no longer.

    OpenCV says nothing when the file cannot grow (a full disk, the file size limit, the file removed):
    after its first frame and then every ``RECORDING_CHECK_S`` of recording, the file and its disk are
    looked at (``RoomWatch``), and a WARNING says so once, while the daemon runs on.
    """

    def __init__(
        self,
        config: DisplayConfig,
        frame_size: tuple[int, int],
        fps: float | FrameRate,
        input_video: str = "",
    ) -> None:
        path = config.video_path
        if problem := video_path_problem(path, input_video):
            raise DisplayError(f"display.video_path: {problem}")
        replacing = path.exists()  # before the writer truncates it
        self.path = path
        self._frame_size = frame_size
        self._source: FrameRate | None = None if isinstance(fps, (int, float)) else fps
        self._fps = (fps if isinstance(fps, (int, float)) else fps.fps) or 15.0
        self._writer = self._open()  # at start, even at a stand-in rate: what cannot be written is said now
        # Frames shown (with their times) while the source measures its rate; None once the file has it.
        self._early: list[tuple[np.ndarray, float | None]] | None = None
        if self._source is not None and self._source.fps_measuring:
            self._early = []
        self._first_s: float | None = None
        self._held: np.ndarray | None = None  # the newest frame, not written yet
        self._next_slot = 0  # the file's next frame: it starts at _first_s + _next_slot / _fps
        logger.info(
            "writing annotated video to %s%s", path, ", replacing the file there" if replacing else ""
        )

    def _open(self) -> cv2.VideoWriter:
        """A writer of the file at ``_fps``, its room watched from its first frame. Raises DisplayError."""
        path, codec = self.path, VIDEO_CODECS[self.path.suffix.lower()]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), self._fps, self._frame_size)
        if not writer.isOpened():
            raise DisplayError(
                f"display.video_path: {path}: {_writer_problem(path.suffix, codec, self._frame_size)}"
            )
        self._room = RoomWatch(path)
        self._written = 0  # file frames written
        self._next_check = 1  # the file frame after which the room is looked at next
        return writer

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool:
        """Place ``frame`` (BGR uint8, the frame size given) at ``time_s`` (None: the next file frame); the
        frame before it is written for every file frame up to this one's. The frame must not change after.
        Raises DisplayError when the file, opened again at the source's measured rate, cannot be written."""
        if self._early is None:
            self._place(frame, time_s)
            return True
        self._early.append((frame, time_s))
        assert self._source is not None
        if self._source.fps_measuring and frame.nbytes * len(self._early) < RECORDING_HOLD_BYTES:
            return True
        self._start_at_source_rate()
        return True

    def _start_at_source_rate(self) -> None:
        """Open the file again at the source's rate, measured or not, and place the frames held till then."""
        assert self._source is not None and self._early is not None
        early, self._early = self._early, None
        how = "as measured" if not self._source.fps_measuring else "camera.fps: not measured yet"
        self._writer.release()
        self._fps = self._source.fps or 15.0
        self._writer = self._open()
        logger.info("recording %s at the source's rate, %.1f fps (%s)", self.path, self._fps, how)
        for frame, time_s in early:
            self._place(frame, time_s)

    def _place(self, frame: np.ndarray, time_s: float | None) -> None:
        """``show``'s work once the file holds the source's rate."""
        if time_s is None:
            slot = self._next_slot + (self._held is not None)
        else:
            if self._first_s is None:
                self._first_s = time_s
            slot = round((time_s - self._first_s) * self._fps)
        if self._held is not None and slot > self._next_slot:
            repeats = min(slot - self._next_slot, max(round(RECORDING_MAX_GAP_S * self._fps), 1))
            for _ in range(repeats):
                self._write(self._held)
            self._next_slot = slot
        self._held = frame  # a frame that falls on the held one's file frame replaces it: the newer wins

    def _write(self, image: np.ndarray) -> None:
        """Write ``image`` as the file's next frame; look at the room when it is time."""
        self._writer.write(image)
        self._written += 1
        if self._written >= self._next_check:
            self._room.check()
            self._next_check = self._written + max(round(RECORDING_CHECK_S * self._fps), 1)

    def close(self) -> None:
        """Write the frames not written yet and close the file. Raises DisplayError as ``show`` does."""
        if self._early is not None:
            self._start_at_source_rate()
        if self._held is not None:
            self._write(self._held)
            self._held = None
        self._writer.release()


def _writer_problem(suffix: str, codec: str, frame_size: tuple[int, int]) -> str:
    """Why OpenCV opened no ``codec`` writer for a ``suffix`` file of ``frame_size`` (width, height) frames
    once the path itself is fine: the encoder refuses frames that small (MPEG-4 takes no 1x1 frame) when it
    opens for 64x64 frames in a scratch folder, else this OpenCV cannot write such files at all."""
    with tempfile.TemporaryDirectory(prefix="moodcast-probe-") as scratch:
        probe = cv2.VideoWriter(
            str(Path(scratch, "probe" + suffix)), cv2.VideoWriter.fourcc(*codec), 15.0, (64, 64)
        )
        writes_the_format = probe.isOpened()
        probe.release()
    width, height = frame_size
    if writes_the_format:
        return (
            f"OpenCV's {codec} encoder refuses {width}x{height} frames (the input's size) for {suffix} "
            "files; use a .avi path, or a larger input"
        )
    return f"this OpenCV cannot write {suffix} files ({codec} encoder missing); use a .avi path"


def open_display(
    config: DisplayConfig, frame_size: tuple[int, int], fps: float | FrameRate, input_video: str = ""
) -> Display:
    """Open the configured backend; ``auto`` picks window, then framebuffer, then none. ``fps`` is the
    source's rate, or the source (``VideoFileDisplay``); ``input_video`` is the video file being played, if
    any, which the video backend refuses to write over. Raises DisplayError as the backend's opening does."""
    backend = config.backend
    if backend == "auto":
        backend = _pick_auto(config)
        logger.info("display auto: using %s", backend)
    if backend == "video":
        return VideoFileDisplay(config, frame_size, fps, input_video)
    if backend == "fb":
        from device.display.framebuffer import FramebufferDisplay

        return FramebufferDisplay(config)
    if backend == "window":
        from device.display.window import WindowDisplay

        return WindowDisplay(config)
    return NoDisplay()


def _pick_auto(config: DisplayConfig) -> str:
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        from device.display.window import window_available

        if window_available():
            return "window"
    from device.display.framebuffer import framebuffer_available

    return "fb" if framebuffer_available(config.fb_device) else "none"
