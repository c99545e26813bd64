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
        replacing = path.exists()  # before the writer truncates it
        codec = VIDEO_CODECS[path.suffix.lower()]
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps or 15.0, frame_size)
        if not self._writer.isOpened():
            raise DisplayError(
                f"display.video_path: {path}: {_writer_problem(path.suffix, codec, frame_size)}"
            )
        self.path = path
        logger.info(
            "writing annotated video to %s%s", path, ", replacing the file there" if replacing else ""
        )

    def show(self, frame: np.ndarray) -> bool:
        self._writer.write(frame)
        return True

    def close(self) -> None:
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
