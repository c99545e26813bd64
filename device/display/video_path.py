"""The video backend's output file: why a path cannot take the recording.

One function, ``video_path_problem``, used by ``--check-config`` (``device/preflight.py``) and by the video
backend when it opens the file at start, so both refuse the same paths with the same words.
"""

from __future__ import annotations

import os
from pathlib import Path

from device.config import CameraConfig
from device.paths import output_problem

# The containers the video backend writes, each with the codec (a FourCC) OpenCV's FFmpeg backend encodes it
# with. Any other extension is refused: OpenCV writes an image extension (.jpg, .png, ...) as one picture that
# each frame overwrites, keeping the last, and opens no writer at all for .webm, .gif or .txt.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
_IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
}


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode where both exist (hard and symbolic links,
    ``./`` and ``../`` spellings), else the same absolute path once links are resolved."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def video_path_problem(path: Path, input_video: str = "") -> str:
    """One line naming ``path`` and why the annotated video must not be written there, or "" when nothing
    stops it: a folder in its place, a folder that does not exist, no permission (``output_problem``), an
    extension that is none of ``VIDEO_CODECS``' containers, or ``input_video``, the video file being played
    (``camera.device``; "" when the source is a camera), which the recording would overwrite frame by frame
    as it is read."""
    if problem := output_problem(path, "video"):
        return problem
    suffix = path.suffix.lower()
    if suffix not in VIDEO_CODECS:
        got = repr(path.suffix) if path.suffix else "no extension"
        if suffix in _IMAGE_SUFFIXES:
            got += ", an image (only the last frame would be kept)"
        accepted = ", ".join(VIDEO_CODECS)
        return f"{path}: expected a video file ending {accepted}, got {got}; change the extension"
    if input_video and _same_file(path, Path(input_video)):
        return (
            f"{path}: the same file as the input video camera.device {input_video}, which the recording "
            "would overwrite; write the annotated video to another file"
        )
    return ""


def input_video(camera: CameraConfig) -> str:
    """The file or device the frames come from, as ``video_path_problem`` compares it: ``camera.device`` for
    the OpenCV source (a camera index, a stream URL or a device node never matches a video path), "" for
    the Pi camera."""
    return camera.device if camera.source == "opencv" else ""
