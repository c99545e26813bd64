"""The capture thread behind every live camera: newest frame wins, a stalled camera is reopened.

The device is the only thing replaced: a scripted camera hands out real frames of a sample video
through the same three methods the OpenCV and Picamera2 backends implement.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from device.config import CameraConfig, DetectConfig
from device.errors import CameraUnavailable
from device.sources.camera import Picamera2Source, _ThreadedCamera, make_lores
from tools.bench import decode

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "one-face.mp4"
FRAMES = decode(SAMPLE)[0][:20]


class ScriptedCamera(_ThreadedCamera):
    """Delivers a frame every ``period_s``; while ``stalled`` is set it delivers nothing."""

    def __init__(self, camera: CameraConfig, period_s: float = 0.005) -> None:
        super().__init__(camera, DetectConfig())
        self.period_s = period_s
        self.stalled = threading.Event()
        self.opens = self.closes = 0
        self.grabbed = 0  # frames delivered to the capture thread

    def _open_device(self) -> None:
        self.opens += 1

    def _grab(self):
        time.sleep(self.period_s)
        if self.stalled.is_set():
            return None
        image = FRAMES[self.grabbed % len(FRAMES)]
        self.grabbed += 1
        return (image, *make_lores(image, self.detect.lores_width_px(image.shape[1])))

    def _close_device(self) -> None:
        self.closes += 1


def wait_for_grabs(camera: ScriptedCamera, count: int) -> None:
    """Return once the camera has delivered ``count`` more frames; the last of them may still be on its way
    to the slot, the others are in it (or overwritten there)."""
    target = camera.grabbed + count
    deadline = time.monotonic() + 10
    while camera.grabbed < target:
        assert time.monotonic() < deadline, (
            f"the camera delivered {camera.grabbed} of {target} frames in 10 s"
        )
        time.sleep(0.005)


def test_a_slow_reader_gets_the_newest_frame_and_drops_are_counted():
    camera = ScriptedCamera(CameraConfig())
    stop = threading.Event()
    camera.open()
    try:
        indices = []
        for _ in range(6):
            frame = camera.read(stop)
            indices.append(frame.index)
            assert frame.gray_lores.shape == (240, 320) and frame.scale_to_main == 2.0
            wait_for_grabs(camera, 6)  # a slow pipeline: six frames arrive meanwhile
        newest = camera.read(stop)
    finally:
        camera.close()
    assert indices == sorted(set(indices))  # never the same frame twice, never an older one
    # each read came after five more frames reached the slot: those were skipped, not queued
    assert all(later - earlier >= 5 for earlier, later in zip(indices, indices[1:], strict=False))
    assert camera.dropped >= indices[-1] - indices[0] - len(indices)
    assert newest.index > indices[-1]
    assert camera.closes == 1


@pytest.mark.slow  # waits out a stall and a reopen (1.5 s): make test-slow
def test_a_stalled_camera_is_reopened_and_frames_resume():
    camera = ScriptedCamera(CameraConfig(stall_timeout_s=0.5))
    stop = threading.Event()
    camera.open()
    try:
        before = camera.read(stop).index
        camera.stalled.set()
        deadline = time.monotonic() + 5
        while camera.closes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert camera.closes == 1, "a camera silent for stall_timeout_s is closed"
        camera.stalled.clear()
        while camera.opens < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert camera.opens == 2, "and reopened after the backoff"
        after = camera.read(stop)
    finally:
        camera.close()
    assert after.index > before


class FlappingCamera(ScriptedCamera):
    """Delivers a few frames after each open, then nothing: a failing link, or a stream server that sends a
    few frames and hangs."""

    frames_per_open = 3

    def _open_device(self) -> None:
        super()._open_device()
        self.open_times.append(time.monotonic())
        self.left = self.frames_per_open

    def _grab(self):
        if self.left <= 0:
            time.sleep(self.period_s)
            return None
        self.left -= 1
        return super()._grab()


@pytest.mark.slow  # three reopens, 1 + 2 s of backoff: make test-slow
def test_a_camera_that_keeps_dropping_is_reopened_ever_less_often():
    """A stream that sent a few frames after each reconnect and then hung was reopened every 2 s forever
    (the backoff went back to 1 s on any frame), with two warnings each time."""
    camera = FlappingCamera(CameraConfig(stall_timeout_s=0.5))
    camera.open_times = []
    camera.open()
    try:
        deadline = time.monotonic() + 15
        while len(camera.open_times) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        camera.close()
    assert len(camera.open_times) == 3, camera.open_times
    opened = camera.open_times
    first, second = opened[1] - opened[0], opened[2] - opened[1]
    # stall_timeout_s then the backoff: about 0.5 + 1 s, then 0.5 + 2 s (it was 1 s again)
    assert second >= first + 0.7, (first, second)


def test_read_returns_none_once_stop_is_set():
    camera = ScriptedCamera(CameraConfig())
    camera.stalled.set()  # nothing arrives
    stop = threading.Event()
    camera.open()
    try:
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        assert camera.read(stop) is None
        assert time.monotonic() - started < 2
    finally:
        camera.close()


class FakeRequest:
    """What Picamera2's ``captured_request`` yields, with a lores YUV420 buffer padded like the ISP's."""

    def __init__(self, image: np.ndarray, lores_size: tuple[int, int], stride: int) -> None:
        width, height = lores_size
        gray, _ = make_lores(image, width)
        self.y_plane = gray
        self.buffer = np.full((height * 3 // 2, stride), 7, np.uint8)  # chroma rows and stride padding
        self.buffer[:height, :width] = gray
        self.image = image

    def make_array(self, stream: str) -> np.ndarray:
        return self.image if stream == "main" else self.buffer

    def get_metadata(self) -> dict:
        return {}


def test_picamera2_frames_use_the_y_plane_of_the_lores_stream():
    """Only the camera is replaced: the backend must cut the Y plane out of the padded YUV buffer."""
    source = Picamera2Source(CameraConfig(source="picamera2"), DetectConfig())
    request = FakeRequest(FRAMES[0], (320, 240), stride=384)

    class FakeCamera:
        @contextmanager
        def captured_request(self):
            yield request

    source._camera, source._lores_size = FakeCamera(), (320, 240)
    image, gray, scale = source._grab()
    assert image is FRAMES[0]
    np.testing.assert_array_equal(gray, request.y_plane)
    assert scale == 2.0


class AbsentAtStartCamera(ScriptedCamera):
    """A camera that cannot be opened until ``plugged`` is set (unplugged at boot, or enumerated late)."""

    def __init__(self, camera: CameraConfig) -> None:
        super().__init__(camera, period_s=0.01)
        self.plugged = threading.Event()

    def _open_device(self) -> None:
        if not self.plugged.is_set():
            raise CameraUnavailable("camera.device: no camera device /dev/video0; is it connected?")
        super()._open_device()

    def _grab(self):
        if not self.opens:  # never opened: nothing to read, as for a real camera
            time.sleep(self.period_s)
            return None
        return super()._grab()


def test_a_camera_missing_at_start_is_an_error_unless_waited_for():
    with pytest.raises(CameraUnavailable):  # an interactive run: one line, exit
        AbsentAtStartCamera(CameraConfig(device="/dev/video0")).open()


def test_a_camera_missing_at_start_is_waited_for_when_asked(caplog):
    """Under systemd every start failed at camera open until the start limit gave up for good."""
    camera = AbsentAtStartCamera(CameraConfig(device="/dev/video0", wait_at_start=True, stall_timeout_s=0.5))
    stop = threading.Event()
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        camera.open()  # raised CameraUnavailable, the daemon exited
        try:
            assert camera.lost and camera.read(stop, idle=stop.set) is None  # nothing yet: reported lost
            camera.plugged.set()
            stop.clear()
            timer = threading.Timer(10, stop.set)
            timer.start()
            frame = camera.read(stop)
            timer.cancel()
            assert frame is not None and not camera.lost
        finally:
            camera.close()
    messages = [r.getMessage() for r in caplog.records]
    assert "retrying with backoff up to 30 s (camera.wait_at_start)" in messages[0], messages
    assert "delivers frames again" in messages[-1], messages


def test_a_device_the_picamera2_source_ignores_is_warned_about(caplog):
    """The Pi's config sets camera.source = "picamera2", which reads the Pi camera whatever camera.device
    says: ``--input clip.mp4`` (or a stream URL in the environment file) was silently ignored."""
    from device.sources.camera import open_source

    with caplog.at_level("WARNING", logger="device.sources.camera"):
        source = open_source(
            CameraConfig(source="picamera2", device="rtsp://user:secret@cam/x"), DetectConfig()
        )
    assert isinstance(source, Picamera2Source)
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    message = record.getMessage()
    assert "camera.device" in message and "camera.source" in message and "opencv" in message, message
    assert "secret" not in message, message
    caplog.clear()
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        open_source(CameraConfig(source="picamera2"), DetectConfig())  # the default device: nothing to say
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
