"""The video backend's recording (display.video_path): which paths it refuses, and why, at --check-config and
at start."""

from __future__ import annotations

import shutil

import numpy as np

from device.config import DisplayConfig
from device.display.display import VideoFileDisplay
from tests.test_daemon import SAMPLE, daemon, one_line_error


def record(*args: str) -> list[str]:
    """The daemon's arguments that record the annotated video to ``args``' path."""
    return ["--display-backend", "video", "--display-video-path", *args]


def test_the_recording_never_overwrites_the_input_video(tmp_path, shipped_model):
    """``--input self.mp4 --display-video-path self.mp4`` exited 0 with the input replaced by the annotated
    frames, and --check-config said config OK."""
    video = tmp_path / "self.mp4"
    shutil.copy(SAMPLE, video)
    link = tmp_path / "link.mp4"
    link.symlink_to(video)  # another name for the same file
    original = video.read_bytes()
    for out in (video, link):
        checked = daemon(
            "--check-config", "--input", str(video), "--model-path", str(shipped_model), *record(str(out))
        )
        one_line_error(checked, "display.video_path", str(out), f"camera.device {video}", "overwrite")
        started = daemon("--input", str(video), "--model-path", str(shipped_model), *record(str(out)))
        one_line_error(started, "display.video_path", str(out), f"camera.device {video}", "overwrite")
    assert video.read_bytes() == original


def test_replacing_an_earlier_recording_is_said(tmp_path, caplog):
    """An existing file at display.video_path was replaced without a word."""
    out = tmp_path / "out.mp4"
    config = DisplayConfig(backend="video", video_path=out)
    frame = np.zeros((48, 64, 3), np.uint8)
    for replaced in (False, True):
        caplog.clear()
        with caplog.at_level("INFO", logger="device.display.display"):
            display = VideoFileDisplay(config, (64, 48), 15.0)
        display.show(frame)
        display.close()
        said = [r.getMessage() for r in caplog.records if str(out) in r.getMessage()]
        assert said == [
            f"writing annotated video to {out}" + (", replacing the file there" if replaced else "")
        ]
