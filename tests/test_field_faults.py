"""Field faults (issue 15): a damaged or lost outbox, an outbox overflowing for long, the retained state of a
short run, Home Assistant's discovery schema across releases, a camera unplugged under the watchdog, and a
write cut short (``device.paths.write_whole``, which the outbox, feedback and convert share)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import resource
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from device.app import MoodcastApp
from device.config import CameraConfig, Config, HttpConfig, ModelConfig
from device.const import OUTBOX_WAL_LIMIT_BYTES
from device.errors import ConfigError
from device.outputs.discovery import discovery_configs
from device.outputs.events import EventFactory
from device.outputs.outbox import SqliteOutbox
from device.paths import temp_name, write_whole
from tests import test_publish
from tests.fixtures_broker import Broker, Mqtt311OnlyBroker, free_port, make_tls_files
from tests.test_camera import ScriptedCamera
from tests.test_publish import WAIT_S, has_seqs, make_event, mqtt_config, seqs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = ROOT / "models" / "emotion-int8.tflite"
publishers = test_publish.publishers  # the fixture: publishers closed after each test


# -- the outbox file ------------------------------------------------------------------------------------


def fill_outbox(path: Path, count: int) -> None:
    box = SqliteOutbox(path, 10_000)
    for seq in range(1, count + 1):
        box.put(seq, json.dumps(make_event(seq, "dmg")) + " " * 400)  # a few rows a page: a many-page file
    box.close()


@pytest.mark.parametrize("damage", ["garbage", "cut in half"])
def test_a_damaged_outbox_is_moved_aside_and_numbering_goes_on(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite"
    if damage == "garbage":  # its header overwritten: an outbox of this daemon by the .seq file beside it
        path.write_bytes(b"garbage\n" * 64)
        path.with_name("outbox.sqlite.seq").write_text("0 0")
    else:
        fill_outbox(path, 300)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 100)  # raised a ConfigError (the daemon stopped) before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    moved = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1 and str(path) in warnings[0] and str(moved[0]) in warnings[0]
    assert box.damaged_files == 1 and len(box) == 0
    expected_last = 0 if damage == "garbage" else 300  # kept in outbox.sqlite.seq, apart from the queue
    assert box.last_seq() == expected_last
    box.put(expected_last + 1, "{}")
    assert box.head(5) == [(expected_last + 1, "{}")]
    box.close()


CRASHED_OUTBOX = """
import json, os, sys
from device.outputs.outbox import SqliteOutbox

box = SqliteOutbox(sys.argv[1], 10_000)
for seq in range(1, 101):
    box.put(seq, json.dumps({"seq": seq}) + " " * 400)
for seq in range(1, 101):  # delivered
    box.remove(seq)
for seq in range(101, 301):
    box.put(seq, json.dumps({"seq": seq}) + " " * 400)
os._exit(0)  # killed: no close, the newest events in the WAL alone (written since its last checkpoint)
"""


@pytest.mark.parametrize(
    "cut", ["to half", "to a page boundary", "inside a page", "to 0 bytes", "to 0 bytes, its WAL beside it"]
)
def test_an_outbox_cut_short_outside_the_daemon_counts_every_event_lost(
    cut: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An outbox file cut short (a power cut, a copy cut short, truncate -s) with 200 events waiting: cut to
    0 bytes, SQLite opened it as an empty database and the next start began with none, without a word
    (with its WAL beside it after a kill too: SQLite then discards the WAL). Every cut is now one WARNING
    counting the 200 lost, the file moved aside."""
    path = tmp_path / "outbox.sqlite"
    if cut.endswith("WAL beside it"):
        child = run_script(CRASHED_OUTBOX, str(path))
        assert child.returncode == 0 and path.with_name("outbox.sqlite-wal").stat().st_size, child.stderr
    else:
        fill_outbox(path, 300)
        box = SqliteOutbox(path, 10_000)
        assert all(box.remove(seq) for seq in range(1, 101))  # delivered
        box.close()
    half = path.stat().st_size // 2
    size = {
        "to half": half,
        "to a page boundary": half // 4096 * 4096,
        "inside a page": half // 4096 * 4096 + 1000,
    }
    os.truncate(path, size.get(cut, 0))
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 10_000)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"(about 200 (from {path}.seq) undelivered events lost)" in warnings[0]
    assert (box.lost, box.damaged_files, len(box), box.last_seq()) == (200, 1, 0, 300)
    assert len(list(tmp_path.glob("outbox.sqlite.damaged-*"))) >= 1
    box.close()


@pytest.mark.parametrize("cut", ["to its first frame", "to its header"])
def test_events_lost_with_the_end_of_the_wal_are_counted(
    cut: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A power cut keeps only part of the write-ahead log (SQLite's synchronous=NORMAL does not sync it at
    each commit): the file is whole, as it was some writes before, and the newest events were gone without a
    word. The highest seq stored, a third mark in <outbox>.seq, now tells them: of the 200 waiting (101-300),
    each one is in the file or counted lost, in one WARNING, and once: the next start counts none."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(CRASHED_OUTBOX, str(path))
    assert child.returncode == 0, child.stderr
    wal = path.with_name("outbox.sqlite-wal")
    # the WAL's 32-byte header, then frames (a 24-byte header and a 4096-byte page); the events since its
    # last checkpoint are in it alone (OUTBOX_WAL_PAGES), the ones before in the file too
    os.truncate(wal, 32 + 24 + 4096 if cut == "to its first frame" else 32)
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 10_000)
        kept = [seq for seq, _ in box.head(10_000) if seq > 100]  # 1-100 delivered, in the file again
        box.close()
        assert SqliteOutbox(path, 10_000).lost == 0
    assert 0 < box.lost == 200 - len(kept) and kept == list(range(101, 101 + len(kept))), (box.lost, kept)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"{box.lost} undelivered events" in warnings[0], warnings
    assert f"seq {101 + len(kept)}-300" in warnings[0], warnings


def test_events_of_a_damaged_outbox_are_counted_once_when_the_next_is_damaged_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged outbox moved aside at start, its 20 events counted lost, left <outbox>.seq naming them as
    waiting until the first event: the new file damaged too before one (a failing card), the next start
    counted "about 20" lost again. The start that counts them now marks none waiting."""
    path = tmp_path / "outbox.sqlite"
    fill_outbox(path, 20)
    counts = []
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        for _ in range(2):
            path.write_bytes(b"\xff" * path.stat().st_size)  # garbage over the closed file
            box = SqliteOutbox(path, 100)
            counts.append((box.lost, box.damaged_files, box.last_seq()))
            box.close()
    assert counts == [(20, 1, 20), (0, 1, 20)]
    assert f"(no (from {path}.seq) undelivered events lost)" in caplog.records[-1].getMessage()


def test_two_outboxes_damaged_in_one_second_are_both_kept(tmp_path: Path) -> None:
    """The file moved aside is named by the second: a second damaged file moved aside within it (a daemon
    restarted at once, a failing card) replaced the first, and the events kept in it for recovery."""
    path = tmp_path / "outbox.sqlite"
    for content in (b"first" * 100, b"second" * 100):  # ms apart: in one second but for a rare tick
        path.write_bytes(content)
        path.with_name("outbox.sqlite.seq").write_text("0 0")
        SqliteOutbox(path, 100).close()
        path.unlink()
    moved = sorted(p.read_bytes() for p in tmp_path.glob("outbox.sqlite.damaged-*"))
    assert moved == [b"first" * 100, b"second" * 100]


def test_seq_never_goes_back_when_the_outbox_is_emptied_or_deleted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    fill_outbox(path, 5)
    with sqlite3.connect(path) as db:  # emptied by hand, sqlite_sequence included
        db.execute("DELETE FROM outbox")
        db.execute("DELETE FROM sqlite_sequence")
    box = SqliteOutbox(path, 100)
    assert box.last_seq() == 5
    box.put(6, "{}")
    box.close()
    for part in tmp_path.glob("outbox.sqlite*"):
        if not part.name.endswith(".seq"):
            part.unlink()  # deleted
    assert SqliteOutbox(path, 100).last_seq() == 6


def test_events_lost_with_an_unreadable_outbox_are_counted_from_the_seq_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An outbox cut so short that no row could be read counted 0 lost events with 13 waiting in it."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 100)
    for seq in range(1, 21):
        box.put(seq, json.dumps(make_event(seq, "cut")))
    for seq in range(1, 8):  # delivered, oldest first
        assert box.remove(seq)
    box.close()
    path.write_bytes(path.read_bytes()[:512])  # less than the header page: nothing readable
    for part in ("-wal", "-shm"):
        path.with_name(path.name + part).unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 100)
    assert box.lost == 13 and box.last_seq() == 20
    assert "about 13 (from" in caplog.records[-1].getMessage()
    box.close()


def test_events_lost_with_an_overwritten_outbox_are_counted_once_across_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox overwritten under the daemon: 5 events given up, 3 more lost from memory at stop. The next
    start found the file damaged and counted "about 3 (from .seq)" again, from marks naming the 3 that the
    stop had counted: 11 lost for 8. The stop now marks none waiting: the start counts none."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 100)
    for seq in range(1, 6):
        box.put(seq, json.dumps(make_event(seq, "twice")))
    for part in ("", "-wal", "-shm"):  # garbage written over the open file
        file = path.with_name(path.name + part)
        file.write_bytes(b"\xff" * file.stat().st_size)
    for seq in range(6, 9):
        box.put(seq, json.dumps(make_event(seq, "twice")))
    assert (box.close(), box.lost) == (3, 8)
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 100)
    assert (box.lost, box.damaged_files, box.last_seq(), len(box)) == (0, 1, 8, 0)
    assert f"(no (from {path}.seq) undelivered events lost)" in caplog.records[-1].getMessage()
    box.close()


def test_a_seq_file_that_cannot_be_written_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It failed silently (a DEBUG line), so numbering could go back unnoticed with the outbox file lost."""
    path = tmp_path / "outbox.sqlite"
    (tmp_path / ".outbox.sqlite.seq.tmp").mkdir()  # where the new .seq is written first: now a folder
    with caplog.at_level(logging.INFO, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 100)
        for seq in range(1, 6):
            box.put(seq, "{}")
        (tmp_path / ".outbox.sqlite.seq.tmp").rmdir()
        box.put(6, "{}")
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == [logging.WARNING, logging.INFO], messages
    assert f"cannot write {path}.seq" in messages[0][1] and "written again" in messages[1][1]
    assert [int(word) for word in (tmp_path / "outbox.sqlite.seq").read_text().split()] == [6, 1, 6]
    box.close()


def test_each_run_has_its_own_id_in_every_event() -> None:
    first, second = EventFactory("dev", 0.0), EventFactory("dev", 0.0)
    assert re.fullmatch(r"[0-9a-f]{8}", first.run) and first.run != second.run


def test_overflow_warnings_carry_the_running_count(broker_factory, publishers, caplog) -> None:
    broker = broker_factory(start=False)
    pub = publishers(mqtt_config(broker, outbox_max=5), "overflow")
    pub.start()
    with caplog.at_level(logging.WARNING, logger="device.outputs.publish"):
        for seq in range(1, 301):
            pub.publish_event(make_event(seq, "overflow"))
        pub.close(timeout_s=0.5)
    lines = [r.getMessage() for r in caplog.records if "outbox full" in r.getMessage()]
    counts = [int(re.search(r"dropped the (\d+) oldest", line).group(1)) for line in lines]
    assert 1 <= len(lines) <= 3, lines  # bounded: not one line per event
    assert sum(counts) == 295, lines  # ... yet every drop is told
    assert "(295 in all)" in lines[-1]


# -- files written whole or not at all (device.paths.write_whole) --------------------------------------------


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``script`` run by this Python in a child process from the project's root (where a limit set with
    ``resource.setrlimit`` stays in the child), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


WRITE_TWO = """
import resource, sys
from pathlib import Path
from device.paths import write_whole

folder, limit = Path(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # as `ulimit -f`: a disk full at `limit` bytes
try:
    write_whole({folder / "a": b"new a", folder / "b": bytes(4096)}, durable=True)
except OSError as err:
    print(err.filename, err.strerror, sep="\\n")
"""


@pytest.mark.parametrize(
    ("in_the_way", "limit", "why"),
    [
        ("", 1024, "File too large"),  # the second file cut short by a full disk
        ("pipe", resource.RLIM_INFINITY, "is in the way and is not a regular file"),  # its open would block
        ("folder", resource.RLIM_INFINITY, "is in the way and is not a regular file"),
    ],
    ids=["disk full", "pipe in the way", "folder in the way"],
)
def test_a_second_file_that_cannot_be_written_leaves_both_old_files_whole(
    in_the_way: str, limit: int, why: str, tmp_path: Path
) -> None:
    """The failure names the second file; the first is not replaced, no temporary file of the call is left,
    and what was in the way is left as it is. In a child, so that a pipe opened for writing fails the test by
    its timeout instead of hanging the suite."""
    (tmp_path / "a").write_bytes(b"old a")
    (tmp_path / "b").write_bytes(b"old b")
    if in_the_way == "pipe":
        os.mkfifo(temp_name(tmp_path / "b"))
    elif in_the_way == "folder":
        temp_name(tmp_path / "b").mkdir()
    child = run_script(WRITE_TWO, str(tmp_path), str(limit))
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines()[0] == str(tmp_path / "b"), child.stdout
    assert why in child.stdout, child.stdout
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["a", "b"] + ([temp_name(tmp_path / "b").name] if in_the_way else [])), left


def test_files_written_whole_replace_the_old_and_a_leftover_temporary_file(tmp_path: Path) -> None:
    """A power cut between write and rename leaves a regular temporary file: the next write replaces it."""
    first, second = tmp_path / "a.png", tmp_path / "b.seq"
    first.write_bytes(b"old a")
    temp_name(second).write_bytes(b"half")
    write_whole({first: b"new a", second: b"new b"}, durable=True)
    write_whole({second: b"newer b"})
    assert first.read_bytes() == b"new a" and second.read_bytes() == b"newer b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.seq"]
    with pytest.raises(OSError) as err:  # a folder where a file goes: refused before anything is replaced
        write_whole({first: b"newest a", tmp_path: b"x"})
    assert err.value.filename == str(tmp_path) and first.read_bytes() == b"new a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.seq"]


# -- Home Assistant discovery -----------------------------------------------------------------------------

# The keys of Home Assistant's MQTT sensor, binary_sensor and event discovery schemas that moodcast may use
# (homeassistant/components/mqtt: MQTT_ENTITY_COMMON_SCHEMA, MQTT_AVAILABILITY_SCHEMA, sensor.py,
# binary_sensor.py, event.py). Releases before 2025.10 drop a key they do not know from a discovery payload.
HA_KEYS = {
    "sensor": {"name", "unique_id", "object_id", "default_entity_id", "icon", "device", "entity_category",
               "availability_topic", "payload_available", "payload_not_available", "state_topic",
               "value_template", "state_class", "device_class", "unit_of_measurement",
               "json_attributes_topic", "json_attributes_template"},
    "event": {"name", "unique_id", "object_id", "default_entity_id", "icon", "device", "entity_category",
              "availability_topic", "payload_available", "payload_not_available", "state_topic",
              "value_template", "device_class", "event_types"},
    "binary_sensor": {"name", "unique_id", "object_id", "default_entity_id", "icon", "device",
                      "entity_category", "availability_topic", "payload_available", "payload_not_available",
                      "state_topic", "value_template", "device_class", "payload_on", "payload_off"},
}  # fmt: skip
ENTITY_ID = re.compile(r"^(sensor|binary_sensor|event)\.[a-z0-9_]+$")


def test_discovery_payloads_suit_old_and_new_home_assistant() -> None:
    configs = discovery_configs(
        "homeassistant",
        "Pi-Hall.2",
        "moodcast/Pi-Hall.2/state",
        "moodcast/x/status",
        "moodcast/Pi-Hall.2/events",
    )
    components = {}
    for topic, config in configs.items():
        _, component, node, obj, last = topic.split("/")
        assert last == "config" and node == "Pi-Hall_2_bd4a6b"  # '.' as '_', the id's SHA-1 after
        assert set(config) <= HA_KEYS[component], set(config) - HA_KEYS[component]
        # 2025.10 and later: default_entity_id, a whole entity id of the topic's domain
        assert ENTITY_ID.match(config["default_entity_id"]), config["default_entity_id"]
        domain, object_id = config["default_entity_id"].split(".")
        assert domain == component
        # 2024 to 2025.9: object_id, the same entity id without its domain
        assert config["object_id"] == object_id == f"moodcast_pi_hall_2_bd4a6b_{obj}"
        components[obj] = component
    assert components == {
        "faces": "sensor",
        "dominant_emotion": "sensor",
        "room_mood": "sensor",
        "camera_problem": "binary_sensor",
        "face": "event",
    }


# -- the daemon in process: the camera is the only thing replaced -------------------------------------------


class NotifySocket:
    """A datagram socket in the place of systemd's notify socket; records what the daemon says."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.mark.slow  # waits out the reopen backoff (1 s, 2 s, then the replug): make test-slow
def test_camera_unplugged_keeps_the_watchdog_fed_and_is_reported(
    mqtt_broker: Broker, subscribe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    camera = ScriptedCamera(CameraConfig(device="0", stall_timeout_s=0.5), period_s=0.02)
    monkeypatch.setattr("device.app.open_source", lambda *_: camera)
    http_port = free_port()
    config = Config(
        device_id="unplug",
        model=ModelConfig(path=SHIPPED_MODEL),
        mqtt=dataclasses.replace(mqtt_config(mqtt_broker), state_interval_s=60.0),
        http=HttpConfig(enabled=True, port=http_port),
    )
    states = subscribe(mqtt_broker, ["moodcast/unplug/state"])
    app = MoodcastApp(config)
    app.start()
    runner = threading.Thread(target=app.run, name="pipeline", daemon=True)
    runner.start()
    try:

        def camera_is(word: str):
            return lambda msgs: any(json.loads(m.payload).get("camera") == word for m in msgs)

        assert states.wait_for(camera_is("ok"), WAIT_S)  # published at once, not after 60 s
        camera.stalled.set()  # unplugged
        assert states.wait_for(camera_is("lost"), WAIT_S), states.messages
        pings_at_loss = notify.messages.count("WATCHDOG=1")
        assert states.wait_for(lambda _: camera.opens >= 3, WAIT_S)  # retried with backoff (1 s, 2 s)
        assert notify.messages.count("WATCHDOG=1") >= pings_at_loss + 5, "the watchdog starved"
        assert any(m.startswith("STATUS=camera 0 lost") for m in notify.messages), notify.messages
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        assert health.value.code == 503
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        assert "moodcast_camera_connected 0.0" in metrics
        states.messages.clear()
        camera.stalled.clear()  # plugged back in
        assert states.wait_for(camera_is("ok"), WAIT_S), states.messages
        assert urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5).status == 200
    finally:
        app.stop_event.set()
        runner.join(10)
        app.stop()
        notify.close()


@pytest.mark.parametrize("content", [b"[mqtt]\nenabled = true\n", b'{"kind": "new"}\n' * 50])
def test_a_file_that_is_no_outbox_is_refused_and_left_as_it_is(content: bytes, tmp_path: Path) -> None:
    """A config file or an events log given as mqtt.outbox_path was taken for a damaged outbox: renamed to
    .damaged-<time> and replaced by an SQLite file (the next start then failed on the config)."""
    path = tmp_path / "keep.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="holds something else") as err:
        SqliteOutbox(path, 100)
    assert str(err.value).startswith("mqtt.outbox_path: ") and "\n" not in str(err.value)
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["keep.toml"]
    lines = run_check("--mqtt-enabled", "--mqtt-outbox-path", str(path))  # said "config OK"
    assert len(lines) == 1 and "holds something else" in lines[0], lines


def test_a_damaged_outbox_file_is_counted_in_metrics(
    mqtt_broker: Broker, tmp_path: Path, monkeypatch
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    outbox.write_bytes(b"\x00garbage" * 100)
    outbox.with_name("outbox.sqlite.seq").write_text("7 3")
    http_port = free_port()
    config = Config(
        device_id="dmgmetrics",
        camera=CameraConfig(device=str(ROOT / "samples" / "one-face.mp4"), realtime=False, max_frames=5),
        model=ModelConfig(path=SHIPPED_MODEL),
        mqtt=dataclasses.replace(mqtt_config(mqtt_broker), outbox_path=str(outbox)),
        http=HttpConfig(enabled=True, port=http_port),
    )
    app = MoodcastApp(config)
    app.start()  # stopped with "file is not a database; fix the path" before
    try:
        app.run()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    finally:
        app.stop()
    assert "moodcast_outbox_damaged_total 1.0" in metrics
    assert "moodcast_events_lost_total" in metrics


# -- brokers as configured in the wild --------------------------------------------------------------------

publish_log = test_publish.publish_log  # the fixture: device.outputs.publish's log lines


@pytest.mark.parametrize(
    ("broker_lines", "qos", "told"),
    [
        (["retain_available false"], 1, "retain_available false"),
        (["max_qos 1"], 2, "maximum QoS is 1"),
    ],
)
def test_a_broker_with_limits_still_gets_everything(
    broker_lines, qos, told, broker_factory, publishers, subscribe, publish_log
) -> None:
    broker = broker_factory(extra=broker_lines)
    device = f"limits{qos}"
    sub = subscribe(broker, [f"moodcast/{device}/#"])
    pub = publishers(dataclasses.replace(mqtt_config(broker), qos=qos), device)
    pub.start()  # every connect was refused (or cut) and nothing was delivered before
    for seq in range(1, 6):
        pub.publish_event(make_event(seq, device))
    pub.publish_state({"faces": 1, "dominant": "happy", "fps": 10.0, "camera": "ok"})
    events = f"moodcast/{device}/events"
    assert sub.wait_for(
        lambda msgs: {json.loads(m.payload)["seq"] for m in msgs if m.topic == events} == set(range(1, 6)),
        WAIT_S,
    ), sub.messages
    assert sub.wait_for(lambda msgs: any(m.topic.endswith("/state") for m in msgs), WAIT_S)
    assert sub.wait_for(lambda msgs: any(m.payload == "online" for m in msgs), WAIT_S)
    limits = [line for line in publish_log.lines() if "limits what it accepts" in line]
    assert len(limits) == 1 and told in limits[0], publish_log.lines()
    pub.close()


@pytest.mark.slow  # 1.6-4 s on an idle 2-core machine: make test-slow
def test_tls_mismatches_are_named_once_with_the_key_to_fix(
    broker_factory, publishers, tmp_path, publish_log, caplog
) -> None:
    tls = make_tls_files(tmp_path / "tls", "mtls")
    broker = broker_factory(
        extra=[f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}", "require_certificate true"]
    )
    with caplog.at_level(logging.WARNING, logger="paho"):
        plain = publishers(mqtt_config(broker), "plainontls")
        plain.start()
        warning = publish_log.wait_for("closed the connection before accepting it")
        assert "mqtt.tls" in warning and f"127.0.0.1:{broker.port}" in warning
        plain.close(timeout_s=0.5)

        nocert = publishers(mqtt_config(broker, tls=True, ca_file=str(tls.ca)), "nocert")
        nocert.start()
        warning = publish_log.wait_for("requires a client certificate")
        assert "mqtt.cert_file" in warning and "mqtt.key_file" in warning
        assert not nocert.stats().connected
        nocert.close(timeout_s=0.5)
    assert not [r for r in caplog.records if "failed to receive on socket" in r.getMessage()]


def run_check(*args: str) -> list[str]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "device", "--check-config", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    return result.stderr.strip().splitlines()


def test_a_folder_as_the_outbox_is_refused_not_moved_aside(tmp_path: Path) -> None:
    """A folder (say /var/lib/moodcast, holding the history and feedback) must never be renamed as damage."""
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError) as err:
        SqliteOutbox(folder, 10)
    assert str(err.value).startswith(
        f"mqtt.outbox_path: {folder} is a folder, expected the outbox file's path"
    )
    assert (folder / "keep.txt").read_text() == "precious" and not list(tmp_path.glob("state.damaged-*"))
    lines = run_check("--mqtt-enabled", "--mqtt-outbox-path", str(folder))
    assert lines == [
        f"moodcast: mqtt.outbox_path: {folder} is a folder, expected the outbox file's path; "
        "give a file path in a folder the daemon can write"
    ]


def test_a_device_or_pipe_as_the_outbox_is_refused_not_moved_aside(tmp_path: Path) -> None:
    """A review run as root gave /dev/null as the outbox: it was taken for a damaged file and renamed."""
    from device.errors import ConfigError

    pipe = tmp_path / "outbox.fifo"  # a pipe stands in for /dev/null: not a regular file, safe to test with
    os.mkfifo(pipe)
    expected = f"mqtt.outbox_path: {pipe} is not a regular file (a device, pipe or socket)"
    with pytest.raises(ConfigError) as err:
        SqliteOutbox(pipe, 10)
    assert str(err.value).startswith(expected)
    assert stat.S_ISFIFO(pipe.stat().st_mode) and not list(tmp_path.glob("outbox.fifo.damaged-*"))
    lines = run_check("--mqtt-enabled", "--mqtt-outbox-path", str(pipe))
    assert len(lines) == 1 and lines[0].startswith(f"moodcast: {expected}"), lines


def test_a_pipe_as_the_seq_file_is_refused_and_in_the_way_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pipe at <outbox>.seq hung the daemon at start, deaf to SIGTERM: reading a pipe waits for a writer."""
    from device.errors import ConfigError

    path = tmp_path / "outbox.sqlite"
    os.mkfifo(tmp_path / "outbox.sqlite.seq")
    with pytest.raises(ConfigError) as err:
        SqliteOutbox(path, 10)
    assert "outbox.sqlite.seq is not a regular file" in str(err.value)
    (tmp_path / "outbox.sqlite.seq").unlink()
    os.mkfifo(tmp_path / ".outbox.sqlite.seq.tmp")  # where the new .seq is written first
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        box = SqliteOutbox(path, 10)
        box.put(1, "{}")  # blocked for good writing into the pipe
    assert "is in the way and is not a regular file" in caplog.records[-1].getMessage()
    box.close()


def test_a_client_key_that_is_not_the_certificates_is_named(tmp_path: Path) -> None:
    server = make_tls_files(tmp_path / "a", "a")
    other = make_tls_files(tmp_path / "b", "b")
    tls = ["--mqtt-enabled", "--mqtt-tls", "--mqtt-ca-file", str(server.ca)]
    lines = run_check(*tls, "--mqtt-cert-file", str(server.cert), "--mqtt-key-file", str(other.key))
    assert len(lines) == 1 and lines[0].startswith(
        f"moodcast: mqtt.key_file: {other.key} is not the private key of {server.cert}"
    ), lines
    lines = run_check(*tls[:-1], str(server.key))  # a key given as the CA
    assert len(lines) == 1 and lines[0].startswith(
        f"moodcast: mqtt.ca_file: {server.key}: not a CA certificate"
    )
    lines = run_check(*tls[:-1], str(tmp_path))
    assert lines == [f"moodcast: mqtt.ca_file: {tmp_path} is a folder, expected a PEM file; fix the path"]


def test_a_folder_as_the_video_is_called_a_folder_when_the_daemon_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "device", "--input", str(tmp_path), "--display-backend", "none"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"camera.device: {tmp_path}: is a folder, expected the video file" in result.stderr


def test_a_broker_that_speaks_only_mqtt_3_1_1_gets_everything(
    mqtt_broker: Broker, publishers, subscribe, publish_log
) -> None:
    """An MQTT 5 CONNECT to a 3.1.1-only broker is refused with return code 1; it was retried forever."""
    old = Mqtt311OnlyBroker(mqtt_broker)
    device = "mqtt311"
    sub = subscribe(mqtt_broker, [f"moodcast/{device}/#"])
    config = dataclasses.replace(mqtt_config(mqtt_broker), port=old.port)
    pub = publishers(config, device)
    pub.start()
    for seq in range(1, 6):
        pub.publish_event(make_event(seq, device))
    events = f"moodcast/{device}/events"
    assert sub.wait_for(
        lambda msgs: {json.loads(m.payload)["seq"] for m in msgs if m.topic == events} == set(range(1, 6)),
        WAIT_S,
    ), (sub.messages, publish_log.lines())
    assert sub.wait_for(lambda msgs: any(m.payload == "online" for m in msgs), WAIT_S)
    assert old.refused_v5 == 1 and old.other_hellos == 0  # and no TLS probe after the refusal
    told = [line for line in publish_log.lines(logging.INFO) if "MQTT 3.1.1" in line]
    assert len(told) == 1 and f"127.0.0.1:{old.port}" in told[0], publish_log.lines(logging.INFO)
    assert not publish_log.lines()  # no warning: nothing for the user to fix
    pub.close()
    old.close()


def test_a_clean_stop_opens_no_second_connection(broker_factory, publishers, subscribe, publish_log) -> None:
    """Stopping probed the broker once more (mosquitto: 'Client <unknown> disconnected due to protocol
    error'), as if the broker had closed a connection it never accepted."""
    broker = broker_factory()
    sub = subscribe(broker, ["moodcast/cleanstop/status"])
    pub = publishers(mqtt_config(broker), "cleanstop")
    pub.start()
    assert sub.wait_for(lambda msgs: [m.payload for m in msgs] == ["online"], WAIT_S)
    pub.close()
    assert sub.wait_for(lambda msgs: [m.payload for m in msgs] == ["online", "offline"], WAIT_S)
    sub.close()
    broker.stop()  # its log is complete once it has exited
    connections = [line for line in broker.log.splitlines() if "New connection from" in line]
    assert len(connections) == 2, broker.log  # the subscriber's and the publisher's
    assert "protocol error" not in broker.log and not publish_log.lines()


@pytest.mark.slow  # two brokers, TLS handshakes: make test-slow
def test_more_tls_mismatches_are_named_with_the_key_to_fix(
    broker_factory, publishers, tmp_path, publish_log
) -> None:
    """A client certificate from another CA gave no warning at all; mqtt.tls on a plain port gave only
    'Connection reset by peer'."""
    tls = make_tls_files(tmp_path / "tls", "server")
    stranger = make_tls_files(tmp_path / "stranger", "stranger")  # a certificate the broker's CA never signed
    broker = broker_factory(
        extra=[f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}", "require_certificate true"]
    )
    client_tls = dict(tls=True, ca_file=str(tls.ca), cert_file=str(stranger.cert), key_file=str(stranger.key))
    wrong_ca = publishers(mqtt_config(broker, **client_tls), "wrongca")
    wrong_ca.start()
    warning = publish_log.wait_for("did not accept the client certificate")
    assert "mqtt.cert_file" in warning and f"127.0.0.1:{broker.port}" in warning
    assert not wrong_ca.stats().connected
    wrong_ca.close(timeout_s=0.5)

    plain = broker_factory()
    tls_on_plain = publishers(mqtt_config(plain, tls=True, ca_file=str(tls.ca)), "tlsonplain")
    tls_on_plain.start()
    warning = publish_log.wait_for("does not speak TLS")
    assert "mqtt.tls = false" in warning and f"127.0.0.1:{plain.port}" in warning
    tls_on_plain.close(timeout_s=0.5)


def test_an_outbox_under_a_file_is_refused_at_check_config(tmp_path: Path) -> None:
    """--check-config said "config OK" for an outbox path under a file; the daemon then refused to start
    ("cannot open as an SQLite outbox ([Errno 20] Not a directory)"), after a deploy had switched to it."""
    blocker = tmp_path / "hostname"
    blocker.write_text("pi\n")
    outbox = blocker / "sub" / "outbox.sqlite"
    lines = run_check("--mqtt-enabled", "--mqtt-outbox-path", str(outbox))
    assert len(lines) == 1 and lines[0].startswith(f"moodcast: mqtt.outbox_path: {outbox}: "), lines
    assert f"{blocker} is a file, not a folder" in lines[0]


# -- an outbox file on a full disk ------------------------------------------------------------------------


def full_filesystem_runner() -> list[str]:
    """The command that runs a child with a small filesystem of its own mounted at its first argument (a
    tmpfs in a user and mount namespace, unmounted when it ends); skips the test where the system allows no
    such namespaces."""
    mount = 'mount -t tmpfs -o size=512k moodcast-test "$0" && exec "$@"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount]
    try:
        probe = subprocess.run([*command, "/tmp", "true"], capture_output=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("needs unshare (util-linux) for a real full filesystem")
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}")
    return command


# Fills the card (the folder given, a tmpfs of its own) up to ``room`` bytes free: a real full card, whose
# writes fail with ENOSPC (SQLITE_FULL); a file-size limit's EFBIG is an I/O error to SQLite.
FILL_CARD = """
import os

def fill_card(folder, room):
    free = os.statvfs(folder)
    with open(os.path.join(folder, "filler"), "wb") as filler:
        filler.write(bytes(free.f_bavail * free.f_frsize - room))
"""

FULL_DISK_DAEMON = (
    FILL_CARD
    + """
import runpy, sys
fill_card(sys.argv[1], int(sys.argv[2]))  # above SQLite's 32 KiB shared-memory file: the outbox opens
sys.argv = ["device", *sys.argv[3:]]
runpy.run_module("device", run_name="__main__", alter_sys=True)
"""
)


def test_an_outbox_on_a_full_disk_keeps_events_in_memory_and_delivers_them(
    mqtt_broker: Broker, subscribe, shipped_model: Path, tmp_path: Path
) -> None:
    """With the outbox's file unable to grow (a full SD card) the frame loop died in a sqlite3
    OperationalError traceback at the first event it could not store, which was lost with every later one.
    Now one WARNING names the file and the folder to free, the events wait in memory, and a subscriber gets
    every one in seq order, 1 to the face's ``end``, none skipped."""
    outbox = tmp_path / "outbox.sqlite"
    sub = subscribe(mqtt_broker, ["moodcast/fulldisk/events"])
    command = [*full_filesystem_runner(), str(tmp_path), sys.executable, "-c", FULL_DISK_DAEMON,
               str(tmp_path), "81920", "--no-realtime", "--input",
               str(ROOT / "samples" / "one-face.mp4"), "--model-path", str(shipped_model), "--device-id",
               "fulldisk", "--mqtt-enabled", "--mqtt-host", mqtt_broker.host, "--mqtt-port",
               str(mqtt_broker.port), "--mqtt-outbox-path", str(outbox)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cannot store event seq" in line]
    assert len(warnings) == 1, result.stderr
    assert f"MQTT outbox {outbox}: cannot store event seq " in warnings[0], warnings
    assert warnings[0].endswith(f"free space on {tmp_path}"), warnings
    assert sub.wait_for(lambda m: any('"type":"end"' in x.payload for x in m), timeout=WAIT_S)
    events = [json.loads(payload) for payload in sub.on("moodcast/fulldisk/events")]
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert (events[0]["type"], events[-1]["type"]) == ("new", "end"), events
    failed_at = int(re.search(r"cannot store event seq (\d+)", warnings[0]).group(1))
    assert failed_at <= seqs[-1], warnings  # the events from there on came from memory


FULL_DISK_OUTBOX = """
import logging, resource, signal, sys
from device.outputs.outbox import SqliteOutbox

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
box = SqliteOutbox(sys.argv[1], 30)
resource.setrlimit(resource.RLIMIT_FSIZE, (40000, hard))  # the card fills up
for seq in range(1, 41):
    box.put(seq, "x" * 400)
for seq in (11, 12, 13):  # delivered while the card is full: forgotten, though not yet deleted from the file
    box.remove(seq)
print("waiting", [seq for seq, _ in box.head(100)], len(box), box.last_seq())
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
box.put(41, "y")
box.close()
"""


def test_an_outbox_that_fills_up_keeps_order_and_bound_and_writes_again_with_space(tmp_path: Path) -> None:
    """The outbox raised sqlite3.OperationalError from put() and remove() once its file could not grow.
    While it cannot, events wait in memory behind those in the file, within mqtt.outbox_max (the oldest
    dropped), and delivered ones are forgotten; the first put with space again stores them all."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(FULL_DISK_OUTBOX, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == [f"waiting {list(range(14, 41))} 27 40"], child.stdout  # 1-10 dropped
    lines = child.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if str(path) in line] == [
        f"WARNING MQTT outbox {path}",
        f"INFO MQTT outbox {path}",
    ], lines
    assert "written again" in lines[-1], lines
    db = sqlite3.connect(path)
    try:
        stored = [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        db.close()
    assert stored == list(range(14, 42)), stored
    assert [int(word) for word in path.with_name("outbox.sqlite.seq").read_text().split()] == [41, 14, 41]


DELIVERED_UNDER_SIZE_LIMIT = """
import logging, resource, sys
from pathlib import Path
from device.outputs.outbox import SqliteOutbox

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
path = Path(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (1536 * 1024, resource.RLIM_INFINITY))  # systemd's LimitFSIZE=1.5M
box = SqliteOutbox(path, 100)
wal_bytes = 0
for seq in range(1, 1501):
    box.put(seq, "x" * 200)
    for delivered, _ in box.head(10)[:-5]:  # the broker takes them as they come, 5 in flight
        box.remove(delivered)
    wal_bytes = max(wal_bytes, path.with_name(path.name + "-wal").stat().st_size)
print([seq for seq, _ in box.head(10)], box.close(), wal_bytes)
"""


def test_an_outbox_under_a_small_file_size_limit_keeps_storing_delivered_events(tmp_path: Path) -> None:
    """Under a file size limit below about 4 MiB (systemd's LimitFSIZE=), the outbox's WAL grew to the limit
    before SQLite's automatic checkpoint (at 1000 pages) let it start over: storing failed for good about
    event 120 with 5 waiting, and the advice, raise the limit or lower mqtt.outbox_max, could not help. The
    WAL is now bounded (OUTBOX_WAL_PAGES), and 1,500 events delivered as they come are all stored."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(DELIVERED_UNDER_SIZE_LIMIT, str(path))
    assert child.returncode == 0 and "WARNING" not in child.stderr, child.stderr
    waiting, lost, wal_bytes = child.stdout.strip().rsplit(" ", 2)
    assert (waiting, lost) == (str(list(range(1496, 1501))), "0"), child.stdout
    assert int(wal_bytes) <= OUTBOX_WAL_LIMIT_BYTES, child.stdout  # 1.5 MiB, the limit, before


FULL_DISK_PUTS = """
import logging, resource, signal, sqlite3, statistics, sys, time
import device.outputs.outbox as outbox_module

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
outbox_module.STORE_RETRY_S = 3600.0  # no retry while the puts are timed
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
box = outbox_module.SqliteOutbox(sys.argv[1], 10000)
resource.setrlimit(resource.RLIMIT_FSIZE, (2, hard))  # the card is full
times = []
for seq in range(1, 3001):
    start = time.perf_counter()
    box.put(seq, "x" * 350)
    times.append(time.perf_counter() - start)
print("slower", round(statistics.median(times[-500:]) / statistics.median(times[:500]), 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
stored = sqlite3.connect(sys.argv[1])
box.put(3001, "y")  # before the retry interval has passed: still in memory
print("stored", stored.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
outbox_module.STORE_RETRY_S = 0.0  # the interval has passed
box.put(3002, "y")
print("stored", stored.execute("SELECT COUNT(*) FROM outbox").fetchone()[0], len(box))
stored.close()
box.close()
"""


def test_puts_on_a_full_card_stay_as_fast_as_events_pile_up(tmp_path: Path) -> None:
    """Every put re-inserted all the events waiting in memory before it failed: 0.5 ms a put at 500
    waiting, 4 ms at 3,000 (x86), in the frame loop and with the Delivery lock held. Storing them is now
    tried again every STORE_RETRY_S, and the first put after that stores them all."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(FULL_DISK_PUTS, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    slower, before, after = child.stdout.splitlines()
    assert float(slower.split()[1]) < 3, child.stdout  # a put with 3,000 waiting against one with a few
    assert (before, after) == ("stored 0", "stored 3002 3002"), child.stdout
    lines = [line for line in child.stderr.splitlines() if f"MQTT outbox {path}:" in line]  # not .seq's
    assert [line.split()[0] for line in lines] == ["WARNING", "INFO"], lines
    assert "(3002 events kept in memory now stored)" in lines[1], lines


FULL_DISK_STOP = (
    FILL_CARD
    + """
import logging, sys
from pathlib import Path
from device.config import MqttConfig
from device.outputs.outbox import SqliteOutbox
from device.outputs.publish import EventPublisher

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
path = Path(sys.argv[1]) / "outbox.sqlite"
config = MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[2]), outbox_path=str(path))
publisher = EventPublisher(config, "dev")  # never started: no broker
for seq in range(1, 9):
    if seq == 4:
        fill_card(sys.argv[1], 0)
    publisher.publish_event({"type": "new", "face_id": seq, "seq": seq})
publisher.close(timeout_s=0.5)
stats = publisher.stats()
print("queued", stats.queued, "lost", stats.lost)
logging.disable()  # the next start's INFO line is not the stop's
box = SqliteOutbox(path, 100)
print("kept", [seq for seq, _ in box.head(10)])
box.close()
"""
)


def test_events_in_memory_at_stop_are_counted_lost_not_kept(tmp_path: Path) -> None:
    """At stop the events held in memory (a full card) were said to be 'kept in' the outbox file, in the
    count of the stop line and in stats' queued, with lost 0; a second line said they were lost. The stop
    line now tells the 3 kept and the 5 lost apart, and stats count them so (/metrics' events_lost)."""
    path, port = tmp_path / "outbox.sqlite", str(free_port())
    child = subprocess.run(
        [*full_filesystem_runner(), str(tmp_path), sys.executable, "-c", FULL_DISK_STOP, str(tmp_path), port],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == ["queued 3 lost 5", "kept [1, 2, 3]"], child.stdout
    lines = child.stderr.splitlines()
    assert [line for line in lines if "undelivered" in line or "not delivered" in line] == [
        f"WARNING MQTT: stopped with 8 events not delivered to 127.0.0.1:{port} (3 kept in {path}, "
        f"5 lost: held in memory, as the file could not take them; free space on {tmp_path})",
    ], lines


FAILING_CARD_STOP = """
import logging, os, sys
from pathlib import Path
from device.config import MqttConfig
from device.outputs.publish import EventPublisher

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
path = Path(sys.argv[1]).resolve()  # as /proc/self/fd shows it
config = MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[2]), outbox_path=str(path))
publisher = EventPublisher(config, "dev")  # never started: no broker
for seq in range(1, 6):
    publisher.publish_event({"type": "new", "face_id": seq, "seq": seq})
files = (str(path), f"{path}-wal")
ours = [int(fd) for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") in files]
assert ours, "no descriptor of the outbox file found"
for fd in ours:
    if sys.argv[3] == "fails":  # each read of the outbox file is EISDIR, each write EBADF (SQLITE_IOERR)
        os.dup2(os.open(path.parent, os.O_RDONLY), fd)
    else:  # "read-only": the same file read-only, as on a card the kernel remounted read-only: reads work,
        os.dup2(os.open(os.readlink(f"/proc/self/fd/{fd}"), os.O_RDONLY), fd)  # each write fails (IOERR)
for seq in range(6, 9):
    publisher.publish_event({"type": "new", "face_id": seq, "seq": seq})
publisher.close(timeout_s=0.5)
stats = publisher.stats()
print("queued", stats.queued, "lost", stats.lost)
"""


def test_events_in_memory_at_stop_with_an_unreadable_file_name_the_card_not_free_space(
    tmp_path: Path,
) -> None:
    """With the outbox file given up (a failing card: a disk I/O error) the stop line said the events
    held in memory were lost "as the file could not take them; free space on" its folder: advice for a
    full disk, while the card had room and could not be read. It now says the file could not be read, and
    to check the card, as the give-up's WARNING does (the 5 given up were counted there)."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(FAILING_CARD_STOP, str(path), str(free_port()), "fails")
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == ["queued 0 lost 8"], child.stdout  # 5 given up, 3 from memory
    lines = child.stderr.splitlines()
    assert [line for line in lines if "not delivered" in line] == [
        f"WARNING MQTT: stopped with 3 events not delivered to 127.0.0.1:{child.args[-2]} (0 kept in {path}, "
        "3 lost: held in memory, as the file could not be read; check the SD card (the kernel log, dmesg) "
        "and replace it if it fails)",
    ], lines


def test_a_card_remounted_read_only_is_named_not_free_space(tmp_path: Path) -> None:
    """A card the kernel remounted read-only after errors (the file reads, each write fails: EROFS, which
    SQLite reports as a disk I/O error) was told to free space, in the WARNING and at stop, as a full one:
    the advice went by whether the file still read. It now goes by SQLite's error: the card is named. A
    real read-only file: the outbox's own descriptors are replaced by read-only ones of the same files (a
    mount with the file open for writing cannot be remounted read-only: EBUSY)."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(FAILING_CARD_STOP, str(path), str(free_port()), "read-only")
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == ["queued 5 lost 3"], child.stdout  # the file keeps 1-5
    advice = "its card fails, or was remounted read-only after errors ('ro' in mount's list); " + (
        "check the SD card (the kernel log, dmesg) and replace it if it fails"
    )
    warnings = [line for line in child.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, child.stderr
    assert f"MQTT outbox {path}: cannot store event seq 6 (disk I/O error); " in warnings[0], warnings
    assert warnings[0].endswith(advice) and "free space" not in warnings[0], warnings
    assert warnings[1] == (
        f"WARNING MQTT: stopped with 8 events not delivered to 127.0.0.1:{child.args[-2]} (5 kept in {path}, "
        f"3 lost: held in memory, as the file could not take them; {advice})"
    ), warnings
    box = SqliteOutbox(path, 100)
    try:
        assert [seq for seq, _ in box.head(10)] == [1, 2, 3, 4, 5]
    finally:
        box.close()


def test_an_outbox_locked_by_another_program_is_named_not_the_card(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program holding the outbox file in a transaction (an sqlite3 shell on it) made a put wait
    SQLite's 5-s busy timeout, in the frame loop, and then told to check the SD card and replace it. It now
    names the lock, after OUTBOX_BUSY_TIMEOUT_S."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 100)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        box.put(1, "event")
        other.execute("BEGIN IMMEDIATE")  # a write lock, as the sqlite3 shell's BEGIN IMMEDIATE takes
        with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
            box.put(2, "event")
        other.execute("ROLLBACK")
    finally:
        other.close()
        box.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cannot store event seq 2 (database is locked)" in warnings[0], warnings
    assert warnings[0].endswith(
        "another program holds the file in a transaction (an sqlite3 shell?); end it or close it"
    ), warnings
    assert SqliteOutbox(path, 100).head(10) == [(1, "event"), (2, "event")]  # stored at close


def test_removes_while_another_program_locks_the_outbox_wait_for_the_retry(tmp_path: Path) -> None:
    """With another program holding the outbox file in a write transaction, each remove of a delivered event
    ran a DELETE that waited OUTBOX_BUSY_TIMEOUT_S, with the Delivery lock held that the frame loop's put
    needs: a backlog of N stored events delivered stalled the frame loop N x 0.25 s. Once a write has
    failed, removes now wait for the retry, as puts do: the file is not written before it, and the first
    write that works then deletes the delivered events and keeps the others, each once."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 100)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        for seq in range(1, 11):
            box.put(seq, f"event {seq}")
        other.execute("BEGIN IMMEDIATE")  # a write lock, as the sqlite3 shell's BEGIN IMMEDIATE takes
        box.put(11, "event 11")  # waits the busy timeout once, then keeps the event in memory
        statements: list[str] = []
        box._db.set_trace_callback(statements.append)  # every statement SQLite runs on the outbox's file
        delivered = [seq for seq, _ in box.head(8)]
        assert delivered == list(range(1, 9))
        assert all(box.remove(seq) for seq in delivered)
        writes = [sql for sql in statements if not sql.lstrip().upper().startswith("SELECT")]
        assert writes == [], writes  # a DELETE per remove, each waiting for the lock, before
        assert box.head(10) == [(9, "event 9"), (10, "event 10"), (11, "event 11")]
        other.execute("ROLLBACK")
        box._db.set_trace_callback(None)
    finally:
        other.close()
        assert box.close() == 0  # stores what waits in memory, deletes the delivered events
    db = sqlite3.connect(path)
    try:
        stored = db.execute("SELECT seq, payload FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    assert stored == [(9, "event 9"), (10, "event 10"), (11, "event 11")], stored


def test_an_outbox_locked_at_start_names_the_other_program_not_the_path(tmp_path: Path) -> None:
    """Another program holding the outbox file locked when the daemon starts (an sqlite3 shell with
    PRAGMA locking_mode=EXCLUSIVE and BEGIN EXCLUSIVE) stopped it with "cannot open as an SQLite outbox
    (database is locked); fix the path", though the path was right. It now says who holds the file and
    what to do, in the words of a write that fails while running."""
    path = tmp_path / "outbox.sqlite"
    SqliteOutbox(path, 100).close()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode=EXCLUSIVE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(ConfigError) as err:
            SqliteOutbox(path, 100)
    finally:
        other.close()
    assert str(err.value) == (
        f"mqtt.outbox_path: {path}: cannot open as an SQLite outbox (database is locked); another program "
        "holds the file in a transaction (an sqlite3 shell?); end it or close it"
    ), err.value
    SqliteOutbox(path, 100).close()  # opens once the other program has closed it


OUTBOX_PAST_SIZE_LIMIT = """
import logging, resource, sys
from device.outputs.outbox import SqliteOutbox

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
box = SqliteOutbox(sys.argv[1], 100_000)
for seq in range(1, 3000):
    box.put(seq, "x" * 200)
print(box.close(), box.close_problem)
"""


def test_an_outbox_at_the_file_size_limit_names_the_limit_not_the_card(tmp_path: Path) -> None:
    """A file size limit (systemd's LimitFSIZE=) stops the outbox's writes with EFBIG, an I/O error to
    SQLite, which was told as a failing card (and, before, as a full one). It now names the limit."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(OUTBOX_PAST_SIZE_LIMIT, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    advice = (
        "it reached the file size limit of 200000 bytes (RLIMIT_FSIZE, systemd's LimitFSIZE=); raise the "
        "limit or lower mqtt.outbox_max"
    )
    warnings = [line for line in child.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings and warnings[0].endswith(advice), child.stderr
    lost, _, problem = child.stdout.strip().partition(" ")
    assert int(lost) > 0 and problem == f"the file could not take them; {advice}", child.stdout


READ_ONLY_CARD_AT_START = """
import subprocess, sys
from device.errors import ConfigError
from device.outputs.outbox import SqliteOutbox

card, path = sys.argv[1:]
box = SqliteOutbox(f"{card}/outbox.sqlite", 10)
box.put(1, "event")
box.close()
subprocess.run(["mount", "-o", "remount,ro,bind", card], check=True)  # no file of it open: no EBUSY
try:
    SqliteOutbox(path, 10)
except ConfigError as err:
    print(err)
"""


@pytest.mark.parametrize("folder", ["", "/moodcast"])
def test_a_card_mounted_read_only_at_start_is_named_not_this_users_rights(
    tmp_path: Path, folder: str
) -> None:
    """An outbox on a card mounted read-only (remounted so by the kernel after errors) was refused at start
    as in a folder 'not writable by this user', which as root sends one to check rights that are fine. A
    real read-only mount: a tmpfs of our own, remounted read-only. In a folder not made yet, the path's
    check came after making the folder, which failed first ('Read-only file system; fix the path')."""
    path = f"{tmp_path}{folder}/outbox.sqlite"
    child = subprocess.run(
        [
            *full_filesystem_runner(),
            str(tmp_path),
            sys.executable,
            "-c",
            READ_ONLY_CARD_AT_START,
            str(tmp_path),
            path,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    read_only = f"{tmp_path} is on a read-only mount ('ro' in mount's list; a failing card?)"
    assert child.stdout.splitlines() == [
        f"mqtt.outbox_path: {path}: {tmp_path}{folder}: {read_only}; give a file path in a folder the daemon "
        "can write"
    ], child.stdout


def test_remove_never_raises_when_the_file_cannot_be_read_either(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """remove() read the file to learn whether a DELETE that failed had anything to delete, and raised
    when that read failed too (an I/O error, the file overwritten under it), from paho's network thread.
    The event is now taken as delivered and the file given up, with one WARNING: the event never handed
    out is counted as lost."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 100)
    for seq in (1, 2, 3):
        box.put(seq, "event")
    assert [seq for seq, _ in box.head(2)] == [1, 2]  # handed to the client, as the delivery thread does
    for part in ("", "-wal", "-shm"):  # garbage written over the open file: neither write nor read works
        file = path.with_name(path.name + part)
        file.write_bytes(b"\xff" * file.stat().st_size)
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        assert box.remove(1) and box.remove(2)
        assert not box.remove(2)  # already gone
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"MQTT outbox {path}: cannot read it"]
    assert (box.lost, len(box)) == (1, 0)
    box.close()


SEQ_AFTER_FULL_CARD = """
import logging, os, sys
from pathlib import Path
from device.outputs.outbox import SqliteOutbox

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
path = Path(sys.argv[1]) / "outbox.sqlite"
box = SqliteOutbox(path, 100)
for seq in range(1, 11):
    box.put(seq, "event")
    box.remove(seq)  # delivered
box.close()
box = SqliteOutbox(path, 100)  # a fresh WAL: the next write must grow it
with open(path.with_name("filler"), "wb", buffering=0) as filler:  # the card fills up
    try:
        while True:
            filler.write(bytes(4096))
    except OSError as err:
        print("full:", err.strerror)
for seq in range(11, 31):
    box.put(seq, "event")
for seq in range(11, 31):
    assert box.remove(seq)  # delivered while the card is full
box.close()
path.with_name("filler").unlink()  # space again
box = SqliteOutbox(path, 100)
print("last", box.last_seq())
box.close()
"""


def test_seq_never_goes_back_after_a_full_card(tmp_path: Path) -> None:
    """On a full card <outbox>.seq could not be written (a new temp file needs a block) and the stored rows
    were all delivered, so the next start numbered from 11 again over delivered 11-30. It is now written in
    place, fixed-width: the reopened outbox goes on from 30. A real full filesystem: a file-size limit stops
    writes in place too, which a full card does not."""
    command = full_filesystem_runner()
    child = subprocess.run(
        [*command, str(tmp_path), sys.executable, "-c", SEQ_AFTER_FULL_CARD, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == ["full: No space left on device", "last 30"], child.stdout
    warnings = [line for line in child.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "cannot store event seq 11" in warnings[0], child.stderr


FULL_DISK_AT_START = """
import resource, signal, sys
from device.errors import ConfigError
from device.outputs.outbox import SqliteOutbox

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # the card is full: SQLite's -shm file cannot grow
try:
    SqliteOutbox(sys.argv[1], 30)
except ConfigError as err:
    print(err)
"""


def test_a_good_outbox_opened_on_a_full_disk_is_not_taken_for_damaged(tmp_path: Path) -> None:
    """An I/O error or a full disk while opening is not damage: the outbox was moved aside as
    '.damaged-<time>' with its undelivered events counted as lost, and the daemon then stopped anyway. It
    is now one line, the file left where it is, and the events are there for the next start."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 30)
    for seq in (1, 2, 3):
        box.put(seq, "event")
    box.close()
    for part in tmp_path.glob("outbox.sqlite-*"):  # as after a clean stop: WAL checkpointed
        part.unlink()
    child = run_script(FULL_DISK_AT_START, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.startswith(f"mqtt.outbox_path: {path}: cannot open as an SQLite outbox"), child.stdout
    assert "damaged" not in child.stderr + child.stdout
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []
    box = SqliteOutbox(path, 30)
    try:
        assert [seq for seq, _ in box.head(10)] == [1, 2, 3]
    finally:
        box.close()


# -- an outbox file that cannot be read any more ----------------------------------------------------------

FAILING_CARD_OUTBOX = """
import logging, os, sqlite3, sys
from pathlib import Path
import device.outputs.outbox as outbox_module

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
path = Path(sys.argv[1]).resolve()  # as /proc/self/fd shows it
box = outbox_module.SqliteOutbox(path, 30)
for seq in range(1, 11):
    box.put(seq, f"event {seq}")
handed = {seq for seq, _ in box.head(3)}  # 1-3 handed to the client, not yet acknowledged
files = (str(path), f"{path}-wal")
ours = [int(fd) for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") in files]
assert ours, "no descriptor of the outbox file found"
saved = {fd: os.dup(fd) for fd in ours}
folder = os.open(path.parent, os.O_RDONLY)
for fd in ours:  # the card fails: each read of the outbox file is EISDIR, each write EBADF (SQLITE_IOERR)
    os.dup2(folder, fd)
dropped = []
for seq in range(11, 41):
    dropped += box.put(seq, f"event {seq}", keep=handed)
print("dropped", dropped)
print("waiting", [seq for seq, _ in box.head(100)], len(box), box.lost, box.last_seq())
print("removed", [box.remove(seq) for seq in (1, 2, 3, 4)])
for fd, old in saved.items():  # the card reads again
    os.dup2(old, fd)
outbox_module.STORE_RETRY_S = 0.0  # the retry interval has passed
box.put(41, "event 41")
box.close()
with sqlite3.connect(path) as db:
    print("stored", [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")])
"""


def test_an_outbox_that_cannot_be_read_gives_up_its_events_and_keeps_new_ones(tmp_path: Path) -> None:
    """A read of the outbox file that failed under a running daemon (SQLITE_IOERR from a failing card)
    raised from put(), head() and len(): in the frame loop, or killing the delivery thread, after which no
    event was delivered. Now the events waiting in the file are given up and counted as lost, those handed
    to the client wait in memory with the new ones, within mqtt.outbox_max and in seq order; one WARNING
    names the file and the card to check, one INFO says when it reads again. A real I/O error: the outbox's
    own file descriptors point at a folder while the card 'fails'."""
    path = tmp_path / "outbox.sqlite"
    child = run_script(FAILING_CARD_OUTBOX, str(path))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == [
        f"dropped {list(range(11, 14))}",  # past 30: the oldest not handed out
        f"waiting {[1, 2, 3, *range(14, 41)]} 30 7 40",  # 4-10 given up: lost
        "removed [True, True, True, False]",  # delivered; 4 was given up
        f"stored {list(range(14, 42))}",
    ], child.stdout
    lines = [line for line in child.stderr.splitlines() if str(path) in line]
    assert [line.split(":")[0] for line in lines] == [
        f"WARNING MQTT outbox {path}",
        f"INFO MQTT outbox {path}",
    ]
    assert "cannot read it (disk I/O error); gave up the 7 events waiting in it (counted as lost)" in lines[0]
    assert lines[0].endswith("check the SD card (the kernel log, dmesg) and replace it if it fails"), lines
    assert "read and written again (28 events kept in memory now stored)" in lines[1], lines


TWICE_FAILING_CARD_OUTBOX = """
import logging, os, sqlite3, sys
from pathlib import Path
import device.outputs.outbox as outbox_module

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
outbox_module.STORE_RETRY_S = 0.0  # each put tries the file again
path = Path(sys.argv[1]).resolve()  # as /proc/self/fd shows it
box = outbox_module.SqliteOutbox(path, 30)
files = (str(path), f"{path}-wal")
ours = [int(fd) for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") in files]
assert ours, "no descriptor of the outbox file found"
folder = os.open(path.parent, os.O_RDONLY)

def fail():  # each read of the outbox file is EISDIR, each write EBADF (SQLITE_IOERR)
    saved = {fd: os.dup(fd) for fd in ours}
    for fd in ours:
        os.dup2(folder, fd)
    return saved

def heal(saved):
    for fd, old in saved.items():
        os.dup2(old, fd)
        os.close(old)

for seq in range(1, 6):
    box.put(seq, f"event {seq}")
handed = {seq for seq, _ in box.head(2)}  # 1, 2 handed to the client (QoS 1 in flight)
saved = fail()
box.put(6, "event 6", keep=handed)  # gives 3-5 up
heal(saved)
box.put(7, "event 7", keep=handed)  # the card reads again: 1, 2, 6, 7 stored
saved = fail()
box.put(8, "event 8", keep=handed)  # gives 6, 7 up; 1, 2 still in flight
print("lost", box.lost, "len", len(box))
print("acknowledged", box.remove(1), box.remove(2))
print("waiting", [seq for seq, _ in box.head(100)])
heal(saved)
box.put(9, "event 9")
box.close()
with sqlite3.connect(path) as db:
    print("stored", [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")])
"""


def test_events_in_flight_through_two_give_ups_are_neither_lost_nor_kept(tmp_path: Path) -> None:
    """The first give-up of an unreadable file forgot which events the client held; when the card read
    again and failed again, the second counted those in flight as lost, and the broker's acknowledgement
    found them gone (remove False): delivered events counted lost. They now stay handed out through both."""
    child = run_script(TWICE_FAILING_CARD_OUTBOX, str(tmp_path / "outbox.sqlite"))
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr
    assert child.stdout.splitlines() == [
        "lost 5 len 3",  # 3-5, then 6 and 7; 1, 2 and 8 wait in memory
        "acknowledged True True",
        "waiting [8]",
        "stored [8, 9]",
    ], child.stdout
    gave_up = [line for line in child.stderr.splitlines() if "gave up" in line]
    assert [line.split("; gave up ")[1].split(" (")[0] for line in gave_up] == [
        "the 3 events waiting in it",
        "the 2 events waiting in it",
    ], child.stderr


def test_an_outbox_overwritten_under_the_daemon_keeps_delivering(
    broker_factory, publishers, subscribe, publish_log, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the outbox file unreadable (overwritten under the daemon: SQLITE_NOTADB) the delivery thread
    died at its first look at the outbox once the broker was back, and every later event stayed undelivered;
    a put from the frame loop raised. Now the 5 events in the file are counted as lost, and later events
    are delivered from memory, in order."""
    broker = broker_factory(start=False)
    path = tmp_path / "outbox.sqlite"
    pub = publishers(mqtt_config(broker, outbox_path=str(path)), "unreadable")
    pub.start()
    for seq in range(1, 6):  # the broker is away: kept in the file
        pub.publish_event(make_event(seq, "unreadable"))
    for part in ("", "-wal", "-shm"):  # garbage written over the open file
        file = path.with_name(path.name + part)
        file.write_bytes(b"\xff" * file.stat().st_size)
    with caplog.at_level(logging.INFO, logger="device.outputs.outbox"):
        broker.start()
        sub = subscribe(broker, ["moodcast/unreadable/events"])
        publish_log.wait_for("connected to", level=logging.INFO)
        for seq in range(6, 11):
            pub.publish_event(make_event(seq, "unreadable"))
        assert sub.wait_for(has_seqs("moodcast/unreadable/events", range(6, 11)), WAIT_S)
    assert seqs(sub, "moodcast/unreadable/events") == list(range(6, 11))
    pub.close(timeout_s=WAIT_S)  # waits for the broker's last acknowledgements
    stats = pub.stats()
    assert (stats.published, stats.queued, stats.lost) == (5, 0, 5), stats
    outbox_lines = [r for r in caplog.records if r.name == "device.outputs.outbox"]
    assert [(r.levelname, r.getMessage().split(" (")[0]) for r in outbox_lines] == [
        ("WARNING", f"MQTT outbox {path}: cannot read it")
    ]


def test_an_outbox_unreadable_before_its_first_event_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An outbox that never held an event gives its file up (up to seq 0) once: one WARNING, not one at
    every look of the delivery thread (each len()), and the first event is then handed out from memory."""
    path = tmp_path / "outbox.sqlite"
    box = SqliteOutbox(path, 10)
    for part in ("", "-wal", "-shm"):  # garbage written over the open file
        file = path.with_name(path.name + part)
        file.write_bytes(b"\xff" * file.stat().st_size)
    with caplog.at_level(logging.WARNING, logger="device.outputs.outbox"):
        assert (len(box), len(box), box.head(5)) == (0, 0, [])
        box.put(1, "event")
        assert box.head(5) == [(1, "event")]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"MQTT outbox {path}: cannot read it"]
    box.close()
