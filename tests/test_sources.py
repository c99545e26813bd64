"""Real scenes at the source: a camera on its side, the source's own timestamps, device nodes and streams."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import CameraConfig, DetectConfig, load_config
from device.errors import ConfigError
from device.sources.camera import Picamera2Source, make_lores
from tests.test_daemon import ROOT, SAMPLE, daemon, one_line_error
from tools.bench import decode
from tools.groundtruth import iou, load_calibration, load_truth, to_fer_box


def write_video(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for image in frames:
        writer.write(image)
    writer.release()
    return path


# -- camera.rotation ------------------------------------------------------------------------------


def test_a_camera_on_its_side_finds_faces_once_rotated(tmp_path):
    """The sample as a camera turned 90° clockwise films it: no face until rotation 270 turns it back."""
    sideways = write_video(
        tmp_path / "sideways.mp4", [cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE) for image in decode(SAMPLE)[0]]
    )
    as_mounted = daemon("--input", str(sideways), "--events", "-")
    assert as_mounted.returncode == 0 and as_mounted.stdout == "", as_mounted.stderr

    out = tmp_path / "upright.mp4"
    turned = daemon(
        "--input", str(sideways), "--camera-rotation", "270", "--events", "-",
        "--display-backend", "video", "--display-video-path", str(out),
    )  # fmt: skip
    assert turned.returncode == 0, turned.stderr
    events = [json.loads(line) for line in turned.stdout.splitlines()]
    news = [e for e in events if e["type"] == "new"]
    assert news
    truth = load_truth(SAMPLE.with_suffix(".json"))
    calibration = load_calibration(ROOT / "models" / "crop.json")
    for event in news:
        assert event["frame_size"] == [640, 480]
        box = to_fer_box(event["box"], *calibration)
        assert any(iou(box, t.box) >= 0.5 for t in truth.frames[event["frame"]]), event["box"]
    written = cv2.VideoCapture(str(out))  # the screen shows the picture upright too
    size = (int(written.get(cv2.CAP_PROP_FRAME_WIDTH)), int(written.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    assert size == (640, 480)


@pytest.mark.parametrize("raw", ["45", "-90", "360", "ninety"])
def test_rotation_other_than_a_quarter_turn_is_one_clear_error(raw):
    with pytest.raises(ConfigError) as err:
        load_config(environ={"MOODCAST_CAMERA__ROTATION": raw})
    assert "camera.rotation" in str(err.value) and "0, 90, 180, 270" in str(err.value)


def test_rotation_on_the_command_line_is_one_line():
    one_line_error(daemon("--camera-rotation", "45"), "camera.rotation", "0, 90, 180, 270", "45")


def test_picamera2_turns_the_lores_y_plane_and_the_main_frame():
    """The ISP only flips: for 90 degrees the backend turns both streams; the scale stays main/lores."""
    image = decode(SAMPLE)[0][0]
    gray, _ = make_lores(image, 320)
    buffer = np.full((240 * 3 // 2, 384), 7, np.uint8)
    buffer[:240, :320] = gray

    class FakeRequest:
        def make_array(self, stream: str) -> np.ndarray:
            return image if stream == "main" else buffer

    class FakeCamera:
        @contextmanager
        def captured_request(self):
            yield FakeRequest()

    source = Picamera2Source(CameraConfig(source="picamera2", rotation=90), DetectConfig())
    source._camera, source._lores_size = FakeCamera(), (320, 240)
    from device.sources.camera import Orientation

    source._turn = Orientation(None, 90)
    main, lores, scale = source._grab()
    np.testing.assert_array_equal(main, cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE))
    np.testing.assert_array_equal(lores, cv2.rotate(gray, cv2.ROTATE_90_CLOCKWISE))
    assert scale == 2.0 and source.size == (480, 640)
