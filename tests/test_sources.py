"""Real scenes at the source: a camera on its side, the source's own timestamps, device nodes and streams."""

from __future__ import annotations

import http.server
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import CameraConfig, DetectConfig, load_config
from device.errors import ConfigError
from device.sources.camera import Picamera2Source, StreamSource, VideoFileSource, make_lores
from tests.required import missing
from tests.test_daemon import FIRST_FRAMES, ROOT, SAMPLE, daemon, one_line_error
from tools.bench import decode
from tools.groundtruth import iou, load_calibration, load_truth, to_fer_box
from tools.web_daemon import free_port, terminate


def write_video(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for image in frames:
        writer.write(image)
    writer.release()
    return path


# -- camera.rotation ------------------------------------------------------------------------------


# How a camera mounted so that camera.rotation (clockwise) puts it upright films the sample.
AS_MOUNTED = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


@pytest.mark.slow  # two daemon runs per rotation (2 s each): make test-slow
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_turned_camera_finds_faces_once_rotated(tmp_path, rotation):
    """The sample as a camera turned by -rotation films it: no face until camera.rotation turns it back."""
    sideways = write_video(
        tmp_path / "sideways.mp4",
        [cv2.rotate(image, AS_MOUNTED[rotation]) for image in decode(SAMPLE)[0][:FIRST_FRAMES]],
    )
    as_mounted = daemon("--input", str(sideways), "--events", "-")
    assert as_mounted.returncode == 0 and as_mounted.stdout == "", as_mounted.stderr

    out = tmp_path / "upright.mp4"
    turned = daemon(
        "--input", str(sideways), "--camera-rotation", str(rotation), "--events", "-",
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


def write_front_indexed(
    path: Path, frames: list[np.ndarray], keep: float = 1.0, start_s: float = 0.0
) -> Path:
    """An MP4 with its index at the front (faststart, as streamed and phone files are), cut to ``keep`` of its
    bytes: a copy that stopped part way plays its first frames, then ends. Its first frame is at ``start_s``
    (a segment of a longer recording), its frames 1/15 s apart."""
    import av

    height, width = frames[0].shape[:2]
    whole = path.with_suffix(".whole.mp4")
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round((start_s + index / 15) * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    data = whole.read_bytes()
    path.write_bytes(data[: round(len(data) * keep)])
    return path


def play(path: Path) -> int:
    """Read the whole file through the daemon's source; the number of frames."""
    source = VideoFileSource(CameraConfig(device=str(path), realtime=False), DetectConfig())
    source.open()
    stop, count = threading.Event(), 0
    try:
        while source.read(stop) is not None:
            count += 1
    finally:
        source.close()
    return count


def test_a_video_cut_short_is_said_to_be_once_it_ends(tmp_path, caplog):
    """It played 62 of its 180 frames and stopped with only "stopped" in the log."""
    frames = decode(SAMPLE)[0][:45]
    cut = write_front_indexed(tmp_path / "cut.mp4", frames, keep=0.5)
    whole = write_front_indexed(tmp_path / "whole.mp4", frames)
    vfr = write_vfr(tmp_path / "vfr.mkv", frames, uneven_times(len(frames)))  # its frame count is estimated
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        assert play(whole) == play(vfr) == len(frames)
        assert not caplog.records, [r.getMessage() for r in caplog.records]
        played = play(cut)
    assert 0 < played < len(frames)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "of the 3.0 s it announces: cut short or damaged?" in warnings[0], warnings


def test_a_segment_whose_timestamps_start_late_is_not_said_to_be_cut_short(tmp_path, caplog):
    """A Matroska segment of a longer recording (its first frame at 30 s, as an NVR or FFmpeg's segment
    muxer writes them) was said to have "ended at 3.0 s of the 33.0 s it announces: cut short or damaged?"."""
    frames = decode(SAMPLE)[0][:45]
    late = write_vfr(tmp_path / "late.mkv", frames, [30.0 + i / 15.0 for i in range(len(frames))])
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        assert play(late) == len(frames)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    short = tmp_path / "short.mkv"  # the same segment cut to a third: still said to be cut short
    short.write_bytes(late.read_bytes()[: late.stat().st_size // 3])
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        assert 0 < play(short) < len(frames)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "cut short or damaged?" in warnings[0], warnings


def test_an_mp4_segment_that_starts_late_and_is_cut_short_is_said_to_be(tmp_path, caplog):
    """An MP4's frame count is its frames, not the time before its first one: an MP4 segment starting at 3 s
    (FFmpeg's segment muxer, a cut with -c copy) that stopped at 3.7 s of its 6.0 s was not said cut short,
    the start being taken off what it announces as it is for Matroska."""
    frames = decode(SAMPLE)[0][:90]
    whole = write_front_indexed(tmp_path / "whole.mp4", frames, start_s=3.0)
    cut = write_front_indexed(tmp_path / "cut.mp4", frames, keep=0.6, start_s=3.0)
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        assert play(whole) == len(frames)
        assert not caplog.records, [r.getMessage() for r in caplog.records]
        assert 0 < play(cut) < len(frames) - 15
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "of the 6.0 s it announces: cut short or damaged?" in warnings[0], warnings


def test_a_photo_given_as_the_video_says_why_no_face_is_announced(tmp_path, caplog):
    """A .jpg opened as a 25 fps video of one frame, and the daemon ended with no event and no word."""
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), decode(SAMPLE)[0][0])
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        assert play(photo) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "held a single frame (a photo?): it is processed once" in warnings[0], (
        warnings
    )


def test_a_named_pipe_as_the_video_is_not_said_to_be_missing(tmp_path):
    """A FIFO (``mkfifo``, an encoder writing into it) was "video file ... not found" though it was there,
    at --check-config and at start; it is named for what it is, and never opened (that waits for a writer)."""
    pipe = tmp_path / "clip.mp4"
    os.mkfifo(pipe)
    for mode in (["--check-config"], ["--events", "-"]):
        result = daemon("--input", str(pipe), *mode)
        one_line_error(result, f"camera.device: {pipe} is a named pipe, not a regular file")
        assert "not found" not in result.stderr, result.stderr


def test_a_video_of_one_frame_is_processed_and_recorded(tmp_path, shipped_model):
    """A 1-frame clip, or a photo given as the video, gave an empty, unplayable annotated video and exit 0:
    open() read the frame to probe the file, and the rewind to it failed, so it was never processed."""
    image = decode(SAMPLE)[0][0]
    one = write_video(tmp_path / "one.mp4", [image])
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), image)
    for video in (one, photo):
        assert play(video) == 1
        out = tmp_path / f"{video.stem}-annotated.mp4"
        result = daemon(
            "--input", str(video), "--model-path", str(shipped_model),
            "--display-backend", "video", "--display-video-path", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "held a single frame" in result.stderr
        written = cv2.VideoCapture(str(out))
        assert written.read()[0] and not written.read()[0], "exactly one annotated frame"
        written.release()


def test_a_video_is_delivered_from_its_first_frame_once_each_in_order(tmp_path):
    """open() reads the first frame to probe the file: read() hands over that one, not a second copy."""
    clip = write_video(tmp_path / "clip.mp4", decode(SAMPLE)[0][:5])
    capture, expected = cv2.VideoCapture(str(clip)), []
    while (got := capture.read())[0]:
        expected.append(got[1])
    capture.release()
    source = VideoFileSource(CameraConfig(device=str(clip), realtime=False), DetectConfig())
    source.open()
    try:
        frames = [source.read(threading.Event()) for _ in range(6)]
    finally:
        source.close()
    assert frames[-1] is None and len(expected) == 5
    for index, (frame, image) in enumerate(zip(frames[:5], expected, strict=True)):
        assert frame is not None and frame.index == index
        assert frame.time_s == pytest.approx(index / 15.0, abs=0.0015)
        np.testing.assert_array_equal(frame.image, image)


def uneven_times(count: int, fast_s: float = 1 / 15, slow_s: float = 0.2) -> list[float]:
    """The first half at 15 fps, the rest three times slower: a phone that lowered its rate in dim light."""
    times, time_s = [], 0.0
    for index in range(count):
        times.append(round(time_s, 3))
        time_s += fast_s if index < count // 2 else slow_s
    return times


def parse_ts(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# The daemon over the whole clip (its face must leave for the end event): make test-slow, as is the realtime
# playback below (test_realtime_playback_paces_by_the_files_timestamps).
@pytest.mark.slow
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
        until = event["last_seen"] if event["type"] == "end" else event["ts"]  # end: the time in view
        assert event["duration_s"] == pytest.approx(
            parse_ts(until) - parse_ts(event["first_seen"]), abs=0.0015
        )
    end = next(e for e in reversed(events) if e["type"] == "end")
    started = parse_ts(end["first_seen"]) - parse_ts(first["ts"]) + times[first["frame"]]
    last_seen = parse_ts(end["last_seen"]) - parse_ts(first["ts"]) + times[first["frame"]]
    seen_frame = min(range(len(times)), key=lambda i: abs(times[i] - last_seen))
    assert times[seen_frame] == pytest.approx(last_seen, abs=0.0015)  # a frame's own time, from the file
    assert end["duration_s"] == pytest.approx(times[seen_frame] - started, abs=0.0015)
    assert abs(end["duration_s"] - (seen_frame / 15.0 - started)) > 1.0, "the test tells the two apart"


@pytest.mark.slow  # plays a clip in real time (1.6 s): make test-slow
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
    # not faster than the timestamps (a player that ignores them would be); slower only as a busy machine is
    assert times[-1] - 0.05 <= elapsed <= times[-1] + 2.0, elapsed


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


def test_a_photo_or_one_frame_clip_loops_when_asked(tmp_path, caplog):
    """With camera.loop a photo (or a clip of one frame) was still processed once and the run ended, with the
    warning that it is processed once: its rewind fails, so it is opened again at each pass."""
    image = decode(SAMPLE)[0][0]
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), image)
    for video in (photo, write_video(tmp_path / "one.mp4", [image])):
        source = VideoFileSource(CameraConfig(device=str(video), realtime=False, loop=True), DetectConfig())
        with caplog.at_level("WARNING", logger="device.sources.camera"):
            source.open()
            try:
                frames = [source.read(threading.Event()) for _ in range(5)]
            finally:
                source.close()
        assert all(frame is not None for frame in frames), video
        assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
        assert [frame.time_s for frame in frames] == pytest.approx([i / source.fps for i in range(5)])
        assert not caplog.records, [r.getMessage() for r in caplog.records]


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


# -- sources: /dev/videoN and network streams ------------------------------------------------------


def test_a_missing_device_node_is_named_as_a_camera():
    result = daemon("--input", "/dev/video63")
    one_line_error(result, "camera.device", "no camera device /dev/video63")
    assert "video file" not in result.stderr


def test_a_device_node_that_is_no_camera_is_opened_as_one_and_refused():
    """/dev/null is a character device that exists, like /dev/video0: tried as a camera, not as a file."""
    result = daemon("--input", "/dev/null")
    one_line_error(result, "camera.device", "cannot open camera /dev/null")
    assert "video file" not in result.stderr


class Running:
    """A daemon in a subprocess; its stdout (events) and stderr (log) lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "device", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.log: list[str] = []
        self._logged = threading.Condition()
        self._pumps = [
            threading.Thread(target=self._pump_events, daemon=True),
            threading.Thread(target=self._pump_log, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump_events(self) -> None:
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def _pump_log(self) -> None:
        for line in self.process.stderr:
            with self._logged:
                self.log.append(line)
                self._logged.notify_all()

    def wait_log(self, needle: str, timeout_s: float) -> None:
        with self._logged:
            found = self._logged.wait_for(lambda: any(needle in line for line in self.log), timeout_s)
        assert found, f"{needle!r} not logged within {timeout_s} s:\n{''.join(self.log)}"

    def next_event(self, kind: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["type"] == kind:
                return event
        raise AssertionError(f"no {kind} event within {timeout_s} s:\n{''.join(self.log)}")

    def stop(self) -> str:
        """SIGTERM, wait, and the whole log."""
        terminate(self.process)
        for pump in self._pumps:
            pump.join(timeout=5)
        return "".join(self.log)


def drop_and_come_back(
    viewer: Running, stop_source: Callable[[], object], start_source: Callable[[], object]
) -> tuple[dict, dict]:
    """A daemon reading a stream with a 1 s stall timeout: its first face's ``new`` event; then the source
    stops, the daemon reopens, the source starts again, the daemon gets frames again and a ``new`` event
    from the new stream (what came before the drop is drained). Returns the two events."""
    first = viewer.next_event("new", 60)
    assert first["frame_size"] == [640, 480]
    stop_source()
    viewer.wait_log("no frame for 1 s; reopening", 30)
    while not viewer.events.empty():
        viewer.events.get()
    start_source()
    viewer.wait_log("delivers frames again", 60)
    again = viewer.next_event("new", 60)
    assert again["frame_size"] == [640, 480]
    return first, again


def serving(port: int) -> Running:
    """A first daemon playing the sample in a loop, its annotated frames on /stream.mjpg."""
    server = Running(
        "--input", str(SAMPLE), "--camera-loop", "--realtime", "--http-enabled", "--http-port", str(port),
    )  # fmt: skip
    server.wait_log(f"serving on http://127.0.0.1:{port}", 60)
    return server


@pytest.mark.slow  # two daemons, a server restart and a 1 s stall (15-20 s): make test-slow
def test_a_stream_is_read_for_real_and_reconnected_after_its_server_restarts():
    port = free_port()
    url = f"http://viewer:s3cret@127.0.0.1:{port}/stream.mjpg"
    servers = [serving(port)]
    viewer = Running("--input", url, "--events", "-", "--camera-stall-timeout-s", "1", "--log-level", "debug")
    try:
        first, again = drop_and_come_back(viewer, servers[0].stop, lambda: servers.append(serving(port)))
        assert again["seq"] > first["seq"]
    finally:
        server_log = servers[-1].stop()
        viewer_log = viewer.stop()
    assert "Traceback" not in server_log + viewer_log, server_log + viewer_log
    assert "s3cret" not in viewer_log and "viewer:" not in viewer_log
    assert "no frame for 1 s; reopening" in viewer_log and "delivers frames again" in viewer_log, viewer_log
    assert "stream http://***@127.0.0.1" in viewer_log, viewer_log  # the URL is logged, its password is not


def health_becomes(url: str, code: int, timeout_s: float = 30.0) -> bool:
    """Whether ``url`` answers ``code`` within ``timeout_s`` (the loop reports the camera within a beat)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            answer = urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as err:
            answer = err.code
        if answer == code:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # two daemons and a stream that comes up late (10-15 s): make test-slow
def test_a_stream_down_at_start_is_waited_for_when_asked():
    """A service whose camera is not there at boot exited at once, and systemd gave up after 5 starts."""
    port, viewer_http = free_port(), free_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    viewer = Running(
        "--input", url, "--events", "-", "--camera-stall-timeout-s", "1", "--camera-wait-at-start",
        "--http-enabled", "--http-port", str(viewer_http),
    )  # fmt: skip
    server = None
    try:
        viewer.wait_log(f"cannot open stream {url}", 60)
        viewer.wait_log(f"serving on http://127.0.0.1:{viewer_http}", 60)
        assert health_becomes(f"http://127.0.0.1:{viewer_http}/healthz", 503)  # running, saying camera lost
        server = serving(port)
        viewer.wait_log("delivers frames again", 60)
        assert viewer.next_event("new", 60)["frame_size"] == [640, 480]
    finally:
        server_log = server.stop() if server else ""
        viewer_log = viewer.stop()
    assert "Traceback" not in server_log + viewer_log, viewer_log
    assert "retrying with backoff up to 30 s (camera.wait_at_start)" in viewer_log, viewer_log
    # OpenCV's and FFmpeg's own lines on every failed open, beside our one warning: kept for log.level debug
    assert "[ WARN" not in viewer_log and "Connection refused" not in viewer_log, viewer_log


RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # the one with GStreamer's bindings (python3-gi), not the venv's


class RtspCamera:
    """``tests/rtsp_server.py``: the sample as an IP camera at rtsp://127.0.0.1:PORT/live, user ``cam``.

    Its output goes to a file, read until it says ``serving`` (GStreamer may log first); a server that does
    not within 30 s, or exits, is killed and its output shown.
    """

    def __init__(self, port: int, log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [SYSTEM_PYTHON, str(RTSP_SERVER), str(SAMPLE), str(port), "cam", "s3cret"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while "serving" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the RTSP server did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.process, timeout_s=5)


def require_rtsp_server() -> None:
    """GStreamer's RTSP server for Python, and the elements tests/rtsp_server.py's pipeline uses."""
    check = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst; Gst.init(None); "
        "elements = ('qtdemux', 'mpeg4videoparse', 'rtpmp4vpay'); "
        "assert all(Gst.ElementFactory.find(e) for e in elements), elements"
    )
    found = (
        subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True)
        if Path(SYSTEM_PYTHON).exists()
        else None
    )
    if found is None or found.returncode != 0:
        missing(
            "GStreamer's RTSP server for Python or its elements not found: apt-get install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )


@pytest.mark.slow  # an RTSP camera, its restart and a 1 s stall (10-20 s): make test-slow
def test_an_rtsp_camera_is_read_and_reconnected_after_it_restarts(tmp_path):
    """A real RTSP server with a password, as IP cameras are (it refuses a viewer without one): the face is
    found, the camera restarts, the daemon reopens the stream and finds it again; the password is never
    logged."""
    require_rtsp_server()
    port = free_port()
    with ExitStack() as running:
        camera = RtspCamera(port, tmp_path / "camera-1.log")
        running.callback(camera.stop)
        anonymous = cv2.VideoCapture(f"rtsp://127.0.0.1:{port}/live", cv2.CAP_FFMPEG)
        assert not anonymous.isOpened(), "the camera must refuse a viewer without the password"
        viewer = Running(
            "--input", f"rtsp://cam:s3cret@127.0.0.1:{port}/live", "--events", "-",
            "--camera-stall-timeout-s", "1", "--log-level", "debug",
        )  # fmt: skip
        logs: list[str] = []
        running.callback(lambda: logs.append(viewer.stop()))

        def restart() -> None:
            running.callback(RtspCamera(port, tmp_path / "camera-2.log").stop)

        drop_and_come_back(viewer, camera.stop, restart)
    viewer_log = logs[0]
    assert "Traceback" not in viewer_log, viewer_log
    assert "s3cret" not in viewer_log and "cam:" not in viewer_log, viewer_log
    assert "stream rtsp://***@127.0.0.1" in viewer_log, viewer_log


def test_print_config_masks_a_stream_urls_credentials():
    result = daemon("--input", "rtsp://admin:s3cret@cam.lan:554/stream1", "--print-config")
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "rtsp://***@cam.lan:554/stream1" in result.stdout


def test_a_password_in_a_stream_urls_query_is_never_printed():
    """Cheap HTTP and RTSP cameras take the password in the query (``?user=admin&pwd=...``)."""
    url = "http://127.0.0.1:9/videostream.cgi?user=admin&pwd=s3cret"
    shown = daemon("--input", url, "--print-config")
    assert shown.returncode == 0, shown.stderr
    assert "videostream.cgi?user=admin&pwd=***" in shown.stdout and "s3cret" not in shown.stdout
    refused = daemon(
        "--input", url
    )  # nothing listens on port 9: the error names the stream, not the password
    assert refused.returncode != 0
    assert "cannot open stream http://127.0.0.1:9/videostream.cgi?user=admin&pwd=***" in refused.stderr
    assert "s3cret" not in refused.stdout + refused.stderr


class MjpegServer:
    """A real HTTP MJPEG camera on 127.0.0.1:``port`` (threads of this process), ``width`` x ``height`` frames
    at about 15 a second until ``stop``."""

    def __init__(self, port: int, width: int, height: int) -> None:
        image = np.zeros((height, width, 3), np.uint8)
        white = (255, 255, 255)
        cv2.rectangle(image, (width // 4, height // 4), (width * 3 // 4, height * 3 // 4), white, -1)
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)
        stopping = self._stopping = threading.Event()

        class Camera(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                while not stopping.wait(1 / 15):
                    self.wfile.write(part)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Camera)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()


def next_frame_within(source: StreamSource, timeout_s: float) -> np.ndarray:
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()
    try:
        frame = source.read(stop)
    finally:
        timer.cancel()
    assert frame is not None, f"no frame within {timeout_s} s"
    return frame.image


def lost_becomes(source: StreamSource, lost: bool, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while source.lost != lost and time.monotonic() < deadline:
        time.sleep(0.02)
    return source.lost == lost


def test_a_stream_of_another_size_than_at_start_keeps_the_runs_frame_size(tmp_path, caplog):
    """The display (the video backend's writer) and the events are sized at start: a stream waited for at
    start (camera.width_px x height_px) or reopened at another resolution delivered frames of its own size,
    and the recording silently lost every one of them. They keep the run's size, letterboxed, said once."""
    port = free_port()
    camera = CameraConfig(device=f"http://127.0.0.1:{port}/x.mjpg", wait_at_start=True, stall_timeout_s=0.5)
    source = StreamSource(camera, DetectConfig())
    servers = []
    with caplog.at_level("WARNING", logger="device.sources.camera"):
        source.open()  # nothing listens: waited for, at the configured 640x480
        try:
            assert source.size == (640, 480)
            servers.append(MjpegServer(port, 320, 240))
            image = next_frame_within(source, 20)
            assert image.shape == (480, 640, 3) and source.size == (640, 480)
            assert image[0, 0].max() == 0 and image[240, 320].min() > 200  # letterboxed, not stretched
            servers.pop().stop()
            assert lost_becomes(source, True, 20)
            servers.append(MjpegServer(port, 800, 600))  # the camera restarted at another resolution
            assert lost_becomes(source, False, 30)
            image = next_frame_within(source, 20)
            assert image.shape == (480, 640, 3) and source.size == (640, 480)
        finally:
            source.close()
            for server in servers:
                server.stop()
    sizes = [r.getMessage() for r in caplog.records if "scaled" in r.getMessage()]
    assert len(sizes) == 2 and "320x240" in sizes[0] and "800x600" in sizes[1], sizes


class LogWaiter(logging.Handler):
    """Collects the messages of one logger; ``wait(needle)`` blocks until one contains ``needle``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._logged = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._logged:
            self.messages.append(record.getMessage())
            self._logged.notify_all()

    def wait(self, needle: str, timeout_s: float) -> str:
        with self._logged:
            self._logged.wait_for(lambda: any(needle in m for m in self.messages), timeout_s)
            return next((m for m in self.messages if needle in m), "")


def test_an_http_mjpeg_streams_rate_is_measured_not_taken_from_ffmpeg():
    """MJPEG over HTTP carries no frame rate and FFmpeg reports its default 25: a 15 fps camera was logged
    'opened: 320x240 at 25.0 fps'. The rate is said to be unknown, then measured from the frames' arrival."""
    port = free_port()
    server = MjpegServer(port, 320, 240)  # about 15 frames a second
    source = StreamSource(CameraConfig(device=f"http://127.0.0.1:{port}/x.mjpg"), DetectConfig())
    logger = logging.getLogger("device.sources.camera")
    waiter = LogWaiter()
    logger.addHandler(waiter)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        source.open()
        measured = waiter.wait(" fps (measured: ", 20)
    finally:
        source.close()
        server.stop()
        logger.removeHandler(waiter)
        logger.setLevel(level)
    opened = next(m for m in waiter.messages if " opened: " in m)
    assert "25.0" not in opened and "frame rate it does not report" in opened, opened
    assert not source.fps_known
    assert measured, waiter.messages
    rate = float(measured.split(" delivers ")[1].split(" fps")[0])
    assert 8.0 <= rate <= 16.0, measured


@pytest.mark.parametrize("password", ["abc#123", "ab/c123", "ab?c123", "a@b#c/d?e"])
def test_a_password_with_url_delimiters_is_never_printed(password):
    """Passwords often hold '#', '/' or '?', which end a URL's authority: the password was cut there, not
    masked, and "cannot open stream rtsp://admin:abc#123@..." went to the log and the terminal."""
    url = f"rtsp://admin:{password}@127.0.0.1:9/stream1"
    shown = daemon("--input", url, "--print-config")
    assert shown.returncode == 0, shown.stderr
    assert "rtsp://***@127.0.0.1:9/stream1" in shown.stdout, shown.stdout
    refused = daemon("--input", url)  # nothing listens on port 9
    one_line_error(refused, "cannot open stream rtsp://***@127.0.0.1:9/stream1")
    assert password not in shown.stdout + shown.stderr + refused.stdout + refused.stderr
