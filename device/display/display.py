"""Display backends behind one interface: none, video (annotated file), fb (framebuffer), window, auto."""

from __future__ import annotations

import logging
import os
from typing import Protocol

import cv2
import numpy as np

from device.config import DisplayConfig
from device.display.video_path import VIDEO_CODECS, video_path_problem
from device.errors import DisplayError

logger = logging.getLogger(__name__)


class Display(Protocol):
    """Shows annotated frames; ``show`` returns False when the viewer asked to quit."""

    def show(self, frame: np.ndarray) -> bool: ...

    def close(self) -> None: ...


class NoDisplay:
    """Shows nothing (headless service, benchmarks)."""

    def show(self, frame: np.ndarray) -> bool:
        return True

    def close(self) -> None:
        pass


class VideoFileDisplay:
    """Writes the annotated frames to a video file (for headless runs and the README demo).

    ``frame_size`` is (width, height) in pixels, ``fps`` the rate the file announces (0: 15).
    ``input_video`` is the video file being played, if any: the recording never replaces it. Raises
    DisplayError, naming the key and the cause, when the file cannot be written.
    """

    def __init__(
        self, config: DisplayConfig, frame_size: tuple[int, int], fps: float, input_video: str = ""
    ) -> None:
        path = config.video_path
        if problem := video_path_problem(path, input_video):
            raise DisplayError(f"display.video_path: {problem}")
        if path.parent and not path.parent.is_dir():
            raise DisplayError(f"display.video_path: folder {path.parent} does not exist; create it")
        replacing = path.exists()  # before the writer truncates it
        fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODECS[path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(path), fourcc, fps or 15.0, frame_size)
        if not self._writer.isOpened():
            raise DisplayError(f"display.video_path: cannot write {path}; use a .mp4 or .avi path")
        self.path = path
        logger.info(
            "writing annotated video to %s%s", path, ", replacing the file there" if replacing else ""
        )

    def show(self, frame: np.ndarray) -> bool:
        self._writer.write(frame)
        return True

    def close(self) -> None:
        self._writer.release()


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
