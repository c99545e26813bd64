"""The daemon end to end on the sample video, and its one-line errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.broken_pipes import run_with_stdout_gone
from tests.event_schema import check_event, check_sequence
from tools.groundtruth import iou, load_calibration, load_truth, to_fer_box

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "one-face.mp4"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The sample's first 2 s: its face is in view from frame 0 and announced within 0.5 s (test_detect.py), so a
# clip of these frames shows whether a face is found at all at a fraction of the whole clip's cost.
FIRST_FRAMES = 30


def daemon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "device", "--no-realtime", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_sample_video_end_to_end(tmp_path, shipped_model):
    out = tmp_path / "annotated.mp4"
    result = daemon(
        "--input",
        str(SAMPLE),
        "--model-path",
        str(shipped_model),
        "--events",
        "-",
        "--display-backend",
        "video",
        "--display-video-path",
        str(out),
        "--device-id",
        "test",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    for event in events:
        check_event(event, LABELS)
        assert event["device"] == "test"
    check_sequence(events)
    assert events[0]["seq"] == 1

    truth = load_truth(SAMPLE.with_suffix(".json"))
    calibration = load_calibration(ROOT / "models" / "crop.json")
    news = [e for e in events if e["type"] == "new"]
    for face_id in truth.faces:
        found = [
            e
            for e in news
            if any(
                t.id == face_id and iou(to_fer_box(e["box"], *calibration), t.box) >= 0.3
                for t in truth.frames[e["frame"]]
            )
        ]
        assert found, f"no new event for ground-truth face {face_id}"
        assert any(e["type"] == "end" and e["face_id"] == found[0]["face_id"] for e in events)

    written = cv2.VideoCapture(str(out))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == truth.frame_count
    assert (int(written.get(cv2.CAP_PROP_FRAME_WIDTH)), int(written.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        640,
        480,
    )


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_missing_video_file(shipped_model):
    result = daemon("--input", "no/such/clip.mp4", "--model-path", str(shipped_model))
    one_line_error(result, "camera.device", "no/such/clip.mp4")


def test_corrupt_model(tmp_path, shipped_model):
    model = tmp_path / "broken.tflite"
    model.write_bytes(b"\x00" * 64 + b"not a flatbuffer")
    shutil.copy(shipped_model.with_suffix(".json"), model.with_suffix(".json"))
    one_line_error(daemon("--input", str(SAMPLE), "--model-path", str(model)), str(model), "TFLite")


def test_model_whose_card_disagrees(tmp_path, shipped_model):
    model = tmp_path / "model.tflite"
    shutil.copy(shipped_model, model)
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    card["input"]["height"] = card["input"]["width"] = 64
    model.with_suffix(".json").write_text(json.dumps(card))
    one_line_error(daemon("--input", str(SAMPLE), "--model-path", str(model)), "card says (64, 64, 1)")


@pytest.mark.parametrize("suffix", ["/", "/."])
def test_a_video_file_named_as_a_folder_is_refused(shipped_model, suffix):
    """--input clip.mp4/ played the clip (Path drops the "/"), though open() refuses it (ENOTDIR); the daemon
    and --check-config now refuse it in the same one line."""
    given = f"{SAMPLE}{suffix}"
    folder = f"names a folder (it ends in '{suffix}'), expected a file"
    expected = f"camera.device: '{given}' {folder}; write it as {SAMPLE}"
    for mode in ([], ["--check-config"]):
        result = daemon(*mode, "--input", given, "--model-path", str(shipped_model), "--events", "-")
        one_line_error(result, f"moodcast: {expected}")
        assert result.stdout == "", result.stdout  # not one frame played


@pytest.mark.parametrize("fault", ["folder", "missing", "unreadable"])
def test_check_config_and_the_daemon_word_a_bad_video_file_alike(tmp_path, shipped_model, fault):
    """--check-config said "samples: is a folder, expected the video file" and the daemon "samples is a
    folder, expected a video file; fix the path" (and "x.mp4: video file not found" against "video file
    x.mp4 not found; fix the path"): one problem, one line, from one function."""
    if fault == "unreadable" and os.geteuid() == 0:
        pytest.skip("root may read any file")
    video = {"folder": tmp_path, "missing": tmp_path / "x.mp4", "unreadable": tmp_path / "locked.mp4"}[fault]
    if fault == "unreadable":
        shutil.copy(SAMPLE, video)
        video.chmod(0o200)
    said = {
        "folder": "is a folder, expected the video file",
        "missing": "video file not found",
        "unreadable": "video file is not readable by this user (permission denied)",
    }[fault]
    for mode in (["--check-config"], []):
        result = daemon(*mode, "--input", str(video), "--model-path", str(shipped_model), "--events", "-")
        one_line_error(result)
        errors = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
        assert errors == [f"moodcast: camera.device: {video}: {said}"], (mode, errors)


@pytest.mark.parametrize("fault", ["missing", "no TFLite file", "card disagrees"])
def test_a_model_error_at_start_names_model_path_as_check_config_does(tmp_path, shipped_model, fault):
    """The daemon's model errors at start began with the file ("moodcast: nosuch.tflite: model file not
    found"), --check-config's with the setting ("moodcast: model.path: ..."); both name the setting now."""
    model = tmp_path / "model.tflite"
    if fault == "no TFLite file":
        model.write_bytes(b"PK\x03\x04" + bytes(64))
    elif fault == "card disagrees":
        shutil.copy(shipped_model, model)
        card = json.loads(shipped_model.with_suffix(".json").read_text())
        card["input"]["height"] = card["input"]["width"] = 64
        model.with_suffix(".json").write_text(json.dumps(card))
    result = daemon("--input", str(SAMPLE), "--model-path", str(model))
    one_line_error(result, f"moodcast: model.path: {model}: ")


def test_card_without_labels(tmp_path, shipped_model):
    model = tmp_path / "model.tflite"
    shutil.copy(shipped_model, model)
    card = json.loads(shipped_model.with_suffix(".json").read_text())
    del card["labels"]
    model.with_suffix(".json").write_text(json.dumps(card))
    one_line_error(daemon("--input", str(SAMPLE), "--model-path", str(model)), "no labels")


def test_unknown_config_key(tmp_path):
    config = tmp_path / "moodcast.toml"
    config.write_text("[detect]\nscale_factr = 1.2\n")
    one_line_error(daemon("--config", str(config)), "detect.scale_factr", "unknown key")


def test_bad_cli_value():
    one_line_error(daemon("--mqtt-port", "18830x"), "mqtt.port", "18830x")


def test_missing_camera(shipped_model):
    result = daemon("--input", "7", "--model-path", str(shipped_model))
    one_line_error(result, "camera.device", "cannot open camera 7")


def test_picamera2_missing_off_the_pi(shipped_model):
    result = daemon("--camera-source", "picamera2", "--model-path", str(shipped_model))
    one_line_error(result, "picamera2 is not installed", "python3-picamera2")


@pytest.mark.slow  # two daemon runs (2 s): make test-slow
def test_a_camera_mounted_upside_down_is_turned_upright(tmp_path):
    """The sample as an upside-down camera films it: no face is found until hflip + vflip turn it upright."""
    from tools.bench import decode

    upside_down = tmp_path / "upside-down.mp4"
    writer = cv2.VideoWriter(str(upside_down), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (640, 480))
    for image in decode(SAMPLE)[0][:FIRST_FRAMES]:
        writer.write(cv2.flip(image, -1))
    writer.release()

    as_mounted = daemon("--input", str(upside_down), "--events", "-")
    assert as_mounted.returncode == 0 and as_mounted.stdout == "", as_mounted.stderr
    turned = daemon("--input", str(upside_down), "--camera-hflip", "--camera-vflip", "--events", "-")
    assert turned.returncode == 0, turned.stderr
    news = [e for e in map(json.loads, turned.stdout.splitlines()) if e["type"] == "new"]
    truth = load_truth(SAMPLE.with_suffix(".json"))
    calibration = load_calibration(ROOT / "models" / "crop.json")
    assert news
    for event in news:
        box = to_fer_box(event["box"], *calibration)
        assert any(iou(box, t.box) >= 0.5 for t in truth.frames[event["frame"]]), event["box"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_model_loads_stops_the_daemon_cleanly(tmp_path, shipped_model, signum):
    """Ctrl-C while the daemon loaded its model and cascades (seconds on a Pi) ended it with a
    KeyboardInterrupt traceback, and SIGTERM without a word. The model is a pipe here, so the signal comes
    while it is read."""
    model = tmp_path / "model.tflite"
    os.mkfifo(model)
    shutil.copy(shipped_model.with_suffix(".json"), tmp_path / "model.json")
    command = [sys.executable, "-m", "device", "--input", str(SAMPLE), "--model-path", str(model)]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        with model.open("wb") as pipe:  # opens once the daemon opens the pipe to read its model
            process.send_signal(signum)
            pipe.write(shipped_model.read_bytes())
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"{signal.Signals(signum).name} received; stopping" in stderr, stderr


def test_events_to_a_pipe_whose_reader_went_away_stop_in_one_line(tmp_path, shipped_model):
    """``--events - | head -n 2`` ended in a BrokenPipeError traceback. The daemon now stops as on any
    fatal error, in one line with exit 1, and still closes the recording (a playable file) and the MQTT
    outbox (every event it numbered, 1 to the last, none skipped), which ends with the face's ``end`` event
    as a normal stop sends it: a subscriber is never left with a face open."""
    import socket
    import sqlite3

    with socket.socket() as probe:  # a port no broker listens on: every event stays in the outbox
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out, outbox = tmp_path / "annotated.mp4", tmp_path / "outbox.db"
    command = [sys.executable, "-m", "device", "--no-realtime", "--input", str(SAMPLE), "--model-path",
               str(shipped_model), "--events", "-", "--display-backend", "video", "--display-video-path",
               str(out), "--mqtt-enabled", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port),
               "--mqtt-outbox-path", str(outbox)]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    ) as run:
        assert run.stdout is not None and run.stderr is not None
        first = [json.loads(run.stdout.readline()) for _ in range(2)]  # what head -n 2 reads
        run.stdout.close()  # and head exits
        stderr = run.stderr.read()
        assert run.wait(timeout=120) == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("moodcast: ")]
    assert errors == ["moodcast: events.path: the reader of - (stdout) went away (broken pipe); stopped"]
    video = cv2.VideoCapture(str(out))
    assert video.isOpened() and video.get(cv2.CAP_PROP_FRAME_COUNT) > 0 and video.read()[0]
    video.release()
    db = sqlite3.connect(outbox)
    rows = [
        (seq, json.loads(payload))
        for seq, payload in db.execute("SELECT seq, payload FROM outbox ORDER BY seq")
    ]
    db.close()
    seqs = [seq for seq, _ in rows]
    assert [event["seq"] for event in first] == [1, 2]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 2, seqs
    last = rows[-1][1]
    assert (last["type"], last["face_id"]) == ("end", first[0]["face_id"]), [e["type"] for _, e in rows]


def test_events_whose_reader_went_away_before_the_last_flush_stop_in_one_line(tmp_path, shipped_model):
    """A short run's events are still in stdout's buffer when the daemon stops: its reader gone, the flush
    at close raised a BrokenPipeError traceback out of the shut-down, and the sinks after it stayed open."""
    command = [sys.executable, "-m", "device", "--no-realtime", "--input", str(SAMPLE), "--model-path",
               str(shipped_model), "--events", "-", "--camera-max-frames", str(FIRST_FRAMES)]  # fmt: skip
    status, stderr = run_with_stdout_gone(command, timeout_s=120)  # gone before a line is flushed (| true)
    assert status == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("moodcast: ")]
    assert errors == ["moodcast: events.path: the reader of - (stdout) went away (broken pipe); stopped"]
    assert stderr.splitlines()[-2].endswith("stopped")  # the shut-down ran to its end first


def _outbox_events(outbox: Path) -> list[dict]:
    """The events in an MQTT outbox file, by seq."""
    import sqlite3

    db = sqlite3.connect(outbox)
    try:
        return [json.loads(row[0]) for row in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    finally:
        db.close()


def test_events_to_a_full_disk_stop_in_one_line_after_the_other_sinks(tmp_path, shipped_model):
    """``--events - >/dev/full`` (a full SD card) ended in an ``OSError: [Errno 28]`` traceback. It stops as
    a broken pipe does: one line naming events.path and the cause, exit 1, and the MQTT outbox holds every
    event numbered, ending with the face's ``end``."""
    outbox = tmp_path / "outbox.db"
    command = [sys.executable, "-m", "device", "--no-realtime", "--input", str(SAMPLE), "--model-path",
               str(shipped_model), "--events", "-", "--mqtt-enabled", "--mqtt-host", "127.0.0.1",
               "--mqtt-port", "1", "--mqtt-outbox-path", str(outbox)]  # fmt: skip
    with open("/dev/full", "w") as full:  # what >/dev/full gives the daemon
        result = subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
    assert errors == ["moodcast: events.path: cannot write - (stdout): No space left on device; stopped"]
    events = _outbox_events(outbox)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1)), events
    assert (events[0]["type"], events[-1]["type"]) == ("new", "end"), events


def test_an_events_file_that_cannot_grow_stops_in_one_line(tmp_path, shipped_model):
    """A write error of an events.path file (here its size limit, EFBIG, as a full disk's ENOSPC) gave a
    traceback: one line naming the file and the cause now."""
    import resource

    events = tmp_path / "events.jsonl"

    def limit_file_size() -> None:  # smaller than the sample's events; Python ignores SIGXFSZ
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    command = [sys.executable, "-m", "device", "--no-realtime", "--input", str(SAMPLE), "--model-path",
               str(shipped_model), "--events", str(events)]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=ROOT, preexec_fn=limit_file_size
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
    assert errors == [f"moodcast: events.path: cannot write {events}: File too large; stopped"]
    text = events.read_text()  # the line the limit cut off was cut back: whole events only
    assert text.endswith("\n") and [json.loads(line)["seq"] for line in text.splitlines()] == list(
        range(1, text.count("\n") + 1)
    ), text


def test_an_events_file_that_ends_in_a_cut_off_line_is_cut_back_before_appending(tmp_path, caplog):
    """A run stopped mid-write (a power loss) left part of a line, and the next run's first event was
    glued onto it: two unreadable events. The part is removed, with one warning."""
    from device.outputs.jsonl import JsonLinesSink

    events = tmp_path / "events.jsonl"
    events.write_text('{"seq":1}\n{"seq":2}\n{"seq":3,"ty')
    with caplog.at_level("WARNING", logger="device.outputs.jsonl"):
        sink = JsonLinesSink(str(events))
    sink.publish_event({"seq": 1})
    sink.close()
    assert events.read_text() == '{"seq":1}\n{"seq":2}\n{"seq":1}\n'
    assert [record.getMessage() for record in caplog.records] == [
        f"events.path: {events} ended in a cut-off line (12 bytes); removed it"
    ]


def test_events_to_a_closed_stdout_are_refused_in_one_line(shipped_model):
    """``--events - >&-``: Python gives a closed stdout as None, and writing the first event raised an
    AttributeError traceback. The daemon refuses it at start, in one line."""
    command = ["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m", "device", "--no-realtime", "--input",
               str(SAMPLE), "--model-path", str(shipped_model), "--events", "-"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
    assert errors == [
        "moodcast: events.path: - (stdout) is closed; start the daemon with a stdout, or name a file"
    ]
