"""Real scenes at the source: a camera on its side, the source's own timestamps, device nodes and streams."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import CameraConfig, DetectConfig, load_config
from device.errors import ConfigError
from device.sources.camera import Picamera2Source, VideoFileSource, make_lores
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

        def get_metadata(self) -> dict:
            return {}

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


# -- timestamps from the source -------------------------------------------------------------------


def write_vfr(path: Path, frames: list[np.ndarray], times_s: list[float]) -> Path:
    """A variable-frame-rate Matroska file whose frames carry exactly these timestamps (ms precision)."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for image, time_s in zip(frames, times_s, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(time_s * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def uneven_times(count: int, fast_s: float = 1 / 15, slow_s: float = 0.2) -> list[float]:
    """The first half at 15 fps, the rest three times slower: a phone that lowered its rate in dim light."""
    times, time_s = [], 0.0
    for index in range(count):
        times.append(round(time_s, 3))
        time_s += fast_s if index < count // 2 else slow_s
    return times


def parse_ts(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_events_follow_a_variable_frame_rate_files_own_timestamps(tmp_path):
    frames = decode(SAMPLE)[0]
    times = uneven_times(len(frames))
    vfr = write_vfr(tmp_path / "vfr.mkv", frames, times)
    assert cv2.VideoCapture(str(vfr)).get(cv2.CAP_PROP_FPS) == 15.0  # what index / fps would assume

    result = daemon("--input", str(vfr), "--events", "-")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) >= 2
    first = events[0]
    for event in events:
        elapsed = parse_ts(event["ts"]) - parse_ts(first["ts"])
        assert elapsed == pytest.approx(times[event["frame"]] - times[first["frame"]], abs=0.0015), event
        assert event["duration_s"] == pytest.approx(
            parse_ts(event["ts"]) - parse_ts(event["first_seen"]), abs=0.0015
        )
    end = next(e for e in reversed(events) if e["type"] == "end")
    started = parse_ts(end["first_seen"]) - parse_ts(first["ts"]) + times[first["frame"]]
    assert end["duration_s"] == pytest.approx(times[end["frame"]] - started, abs=0.0015)
    assert abs(end["duration_s"] - (end["frame"] / 15.0 - started)) > 1.0, "the test tells the two apart"


def test_realtime_playback_paces_by_the_files_timestamps(tmp_path):
    frames = decode(SAMPLE)[0][:12]
    times = uneven_times(12, fast_s=0.02, slow_s=0.25)  # 1.37 s; index / 15 fps would say 0.73 s
    vfr = write_vfr(tmp_path / "vfr.mkv", frames, times)
    source = VideoFileSource(CameraConfig(device=str(vfr), realtime=True), DetectConfig())
    source.open()
    stop = threading.Event()
    try:
        read = [source.read(stop)]
        started = time.monotonic()
        while (frame := source.read(stop)) is not None:
            read.append(frame)
        elapsed = time.monotonic() - started
    finally:
        source.close()
    assert [frame.time_s for frame in read] == pytest.approx(times, abs=0.0015)
    assert elapsed == pytest.approx(times[-1], abs=0.15)


def test_a_looping_file_keeps_its_clock_running(tmp_path):
    frames = decode(SAMPLE)[0][:6]
    times = uneven_times(6, fast_s=0.05, slow_s=0.3)
    vfr = write_vfr(tmp_path / "vfr.mkv", frames, times)
    source = VideoFileSource(CameraConfig(device=str(vfr), realtime=False, loop=True), DetectConfig())
    source.open()
    try:
        stamps = [source.read(threading.Event()).time_s for _ in range(12)]
    finally:
        source.close()
    assert stamps[:6] == pytest.approx(times, abs=0.0015)
    assert stamps[6:] == pytest.approx([times[-1] + 1 / 15 + t for t in times], abs=0.0015)


def test_picamera2_frames_are_timed_by_the_sensor():
    """SensorTimestamp from the request's metadata (not testable without a Pi: only the camera is faked)."""
    image = decode(SAMPLE)[0][0]
    buffer = np.zeros((360, 320), np.uint8)
    sensor_ns = iter([5_000_000_000, 5_033_000_000, 5_300_000_000])

    class FakeRequest:
        def make_array(self, stream: str) -> np.ndarray:
            return image if stream == "main" else buffer

        def get_metadata(self) -> dict:
            return {"SensorTimestamp": next(sensor_ns)}

    class FakeCamera:
        @contextmanager
        def captured_request(self):
            yield FakeRequest()

    source = Picamera2Source(CameraConfig(source="picamera2"), DetectConfig())
    source._camera, source._lores_size = FakeCamera(), (320, 240)
    stamps = []
    for _ in range(3):
        source._grab()
        stamps.append(source._frame_time_s(time.monotonic()))
    assert [t - stamps[0] for t in stamps] == pytest.approx([0.0, 0.033, 0.3], abs=1e-6)
