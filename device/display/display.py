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
from device.const import RECORDING_MAX_GAP_S
from device.display.room import STOPS_RECORDING, RoomWatch
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


class VideoFileDisplay:
    """Writes the annotated frames to a video file (for headless runs and the README demo).

    ``frame_size`` is (width, height) in pixels, ``fps`` the rate the file announces (0: 15).
    ``input_video`` is the video file being played, if any: the recording never replaces it. Raises
    DisplayError, naming the key and the cause, when the file cannot be written.

    The file plays at the source's pace: it holds a constant ``fps`` frames a second, and each of its frames
    shows the newest frame whose time (``show``'s ``time_s``) had come by then, so a variable-frame-rate
    file, a camera faster or slower than the announced rate, or a pipeline that drops frames is recorded as
    long as it lasted (sample and hold). A gap longer than ``RECORDING_MAX_GAP_S`` (a stream that stalled) is
    held that long and no longer.

    OpenCV says nothing when the file cannot grow (a full disk, the file size limit, the file removed):
    after every frame written the file and its disk are looked at (``RoomWatch``), for room for the most the
    next frame and the close can write, whatever the frames before wrote (a quiet scene, then a busy one).
    When one of them stops the recording (``STOPS_RECORDING``), the writer is closed there, with one WARNING,
    and the daemon runs on without it: FFmpeg writes nothing more to a file once a write of it failed, even
    with room again, so every later frame was encoded for nothing (and, at ``log.level = debug``, said
    "Failed to write frame" on stderr); closed while there is still room, an .mp4 gets its index and plays
    (cut off by a write that failed, it has none and does not play at all), and a removed file's blocks are
    freed. That stops it before its disk fills only while nothing else fills the disk faster than a frame:
    another program's writes between two looks can leave under FFmpeg's block, a write of the recording has
    then most likely failed already, and the WARNING says its file may be cut short and not play.
    """

    def __init__(
        self, config: DisplayConfig, frame_size: tuple[int, int], fps: float, input_video: str = ""
    ) -> None:
        path = config.video_path
        if problem := video_path_problem(path, input_video):
            raise DisplayError(f"display.video_path: {problem}")
        replacing = path.exists()  # before the writer truncates it
        codec = VIDEO_CODECS[path.suffix.lower()]
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps or 15.0, frame_size)
        if not self._writer.isOpened():
            raise DisplayError(
                f"display.video_path: {path}: {_writer_problem(path.suffix, codec, frame_size)}"
            )
        self.path = path
        self._fps = fps or 15.0
        width, height = frame_size
        self._room = RoomWatch(path, frame_bytes=width * height * 3)  # the BGR frames it is given
        self._stopped = False  # the writer closed: the file cannot grow (RoomWatch)
        self._first_s: float | None = None
        self._held: np.ndarray | None = None  # the newest frame, not written yet
        self._next_slot = 0  # the file's next frame: it starts at _first_s + _next_slot / _fps
        logger.info(
            "writing annotated video to %s%s", path, ", replacing the file there" if replacing else ""
        )

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool:
        """Place ``frame`` (BGR uint8, the frame size given) at ``time_s`` (None: the next file frame); the
        frame before it is written for every file frame up to this one's. The frame must not change after."""
        if self._stopped:
            return True
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
            if self._stopped:  # by the room's look after one of those frames
                self._held = None
                return True
        self._held = frame  # a frame that falls on the held one's file frame replaces it: the newer wins
        return True

    def _write(self, image: np.ndarray) -> None:
        """Write ``image`` as the file's next frame; look at the room, and stop the recording (close the
        writer) when the room says so."""
        if self._stopped:
            return
        self._writer.write(image)
        if self._room.frame_written() in STOPS_RECORDING:
            self._stopped = True
            self._writer.release()

    def close(self) -> None:
        if self._stopped:
            return
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
    config: DisplayConfig, frame_size: tuple[int, int], fps: float, input_video: str = ""
) -> Display:
    """Open the configured backend; ``auto`` picks window, then framebuffer, then none. ``input_video`` is
    the video file being played, if any, which the video backend refuses to write over."""
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
