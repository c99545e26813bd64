"""EventPublisher against a real Mosquitto: the MQTT contract of ARCHITECTURE.md, outages and security."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device.config import MqttConfig
from device.const import EVENT_SCHEMA_VERSION, STATUS_OFFLINE, STATUS_ONLINE
from device.outputs.outbox import MemoryOutbox, SqliteOutbox
from device.outputs.publish import EventPublisher
from tests.event_schema import check_event, check_sequence
from tests.fixtures_broker import Broker, Subscriber, make_tls_files

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
WAIT_S = 10.0


# -- helpers ------------------------------------------------------------------------------------------


def make_event(seq: int, device: str, kind: str = "update", face_id: int = 1) -> dict[str, Any]:
    """An event as the daemon makes it (schema in ARCHITECTURE.md)."""
    scores = dict.fromkeys(LABELS, 0.01)
    scores["happy"] = 0.94
    return {
        "schema": EVENT_SCHEMA_VERSION,
        "type": kind,
        "device": device,
        "face_id": face_id,
        "ts": "2026-11-22T18:03:11.412Z",
        "frame": seq * 3,
        "seq": seq,
        "emotion": "happy",
        "confidence": 0.94,
        "scores": scores,
        "box": [10, 20, 64, 64],
        "frame_size": [640, 480],
        "first_seen": "2026-11-22T18:03:10.000Z",
        "duration_s": 1.2,
    }


def seqs(sub: Subscriber, topic: str) -> list[int]:
    return [json.loads(payload)["seq"] for payload in sub.on(topic)]


def has_seqs(topic: str, wanted: range) -> Callable[[list[Any]], bool]:
    """A predicate for Subscriber.wait_for: every seq of ``wanted`` has arrived on ``topic``."""
    return lambda msgs: set(wanted) <= {json.loads(m.payload)["seq"] for m in msgs if m.topic == topic}


def in_order_without_gaps(received: list[int], wanted: range) -> None:
    """At-least-once: every seq arrived, and their first arrivals are in order (repeats are allowed)."""
    first = list(dict.fromkeys(received))
    assert first == list(wanted), f"received {received}"


def mqtt_config(broker: Broker, **changes: Any) -> MqttConfig:
    return dataclasses.replace(
        MqttConfig(), enabled=True, host=broker.host, port=broker.port, keepalive_s=5, **changes
    )


class LogWatcher(logging.Handler):
    """Collects device.outputs.publish's log records and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def lines(self, level: int = logging.WARNING) -> list[str]:
        with self._cond:
            return [r.getMessage() for r in self.records if r.levelno == level]

    def wait_for(self, text: str, level: int = logging.WARNING, timeout: float = WAIT_S) -> str:
        """The first message at ``level`` that contains ``text``, waiting for it if need be."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: [r for r in self.records if r.levelno == level and text in r.getMessage()], timeout
            )
        assert found, f"no log line with {text!r}; got {[r.getMessage() for r in self.records]}"
        return found[0].getMessage()


@pytest.fixture
def publish_log() -> Iterator[LogWatcher]:
    logger = logging.getLogger("device.outputs.publish")
    watcher = LogWatcher()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watcher)
    yield watcher
    logger.removeHandler(watcher)
    logger.setLevel(old_level)


class TrackedPublisher(EventPublisher):
    """The real publisher, remembering whether the test started it and has not closed it yet."""

    running = False

    def start(self) -> None:
        super().start()
        self.running = True

    def close(self, timeout_s: float = 5.0) -> None:
        self.running = False
        super().close(timeout_s)


@pytest.fixture
def publishers() -> Iterator[Callable[[MqttConfig, str], EventPublisher]]:
    """Make publishers; any a test leaves running is stopped after it."""
    made: list[TrackedPublisher] = []

    def make(config: MqttConfig, device_id: str) -> EventPublisher:
        pub = TrackedPublisher(config, device_id)
        made.append(pub)
        return pub

    yield make
    for pub in made:
        if pub.running:
            pub.close(timeout_s=1.0)


# -- the contract -------------------------------------------------------------------------------------


def test_status_events_state_and_discovery(mqtt_broker: Broker, publishers, subscribe) -> None:
    device = "contract"
    prefix = f"moodcast/{device}"
    live = subscribe(mqtt_broker, [f"{prefix}/#"])
    pub = publishers(mqtt_config(mqtt_broker), device)
    pub.start()
    for seq in range(1, 11):
        pub.publish_event(make_event(seq, device, kind="new" if seq == 1 else "update"))
    pub.publish_state({"faces": 1, "dominant": "happy", "fps": 14.5})

    assert live.wait_for(has_seqs(f"{prefix}/events", range(1, 11)), WAIT_S), live.messages
    assert live.on(f"{prefix}/status")[0] == STATUS_ONLINE
    assert seqs(live, f"{prefix}/events") == list(range(1, 11))
    for payload in live.on(f"{prefix}/events"):
        event = json.loads(payload)
        check_event(event, LABELS)
        assert event["device"] == device
    assert live.wait_for(lambda msgs: any(m.topic == f"{prefix}/state" for m in msgs), WAIT_S)

    # A subscriber that comes later gets the retained status, state and discovery configs.
    late = subscribe(mqtt_broker, [f"{prefix}/status", f"{prefix}/state", "homeassistant/sensor/contract/#"])
    assert late.wait_for(lambda msgs: len(msgs) >= 4, WAIT_S), late.messages
    retained = {m.topic: m for m in late.messages}
    assert all(m.retain for m in late.messages)
    assert retained[f"{prefix}/status"].payload == STATUS_ONLINE
    assert json.loads(retained[f"{prefix}/state"].payload) == {"faces": 1, "dominant": "happy", "fps": 14.5}
    for obj in ("faces", "dominant_emotion"):
        config = json.loads(retained[f"homeassistant/sensor/contract/{obj}/config"].payload)
        assert config["unique_id"] == f"moodcast_contract_{obj}"
        assert config["state_topic"] == f"{prefix}/state"
        assert config["availability_topic"] == f"{prefix}/status"
        assert "value_json" in config["value_template"]
        assert config["device"]["identifiers"] == ["moodcast_contract"]
    assert dataclasses.asdict(pub.stats()) == {
        "published": 10,
        "queued": 0,
        "dropped": 0,
        "connected": True,
        "lost": 0,
        "damaged_files": 0,
    }
    assert pub.last_seq() == 10

    pub.close()
    assert live.wait_for(lambda msgs: STATUS_OFFLINE in live.on(f"{prefix}/status"), WAIT_S)
    after = subscribe(mqtt_broker, [f"{prefix}/status"])
    assert after.wait_for(lambda msgs: len(msgs) == 1, WAIT_S)
    assert after.messages[0].payload == STATUS_OFFLINE and after.messages[0].retain


def test_no_discovery_when_off(mqtt_broker: Broker, publishers, subscribe) -> None:
    pub = publishers(mqtt_config(mqtt_broker, discovery=False, discovery_prefix="ha-off"), "nodisc")
    sub = subscribe(mqtt_broker, ["ha-off/#", "moodcast/nodisc/status"])
    pub.start()
    assert sub.wait_for(lambda msgs: any(m.payload == STATUS_ONLINE for m in msgs), WAIT_S)
    pub.close()
    assert sub.wait_for(lambda msgs: any(m.payload == STATUS_OFFLINE for m in msgs), WAIT_S)
    assert not [m for m in sub.messages if m.topic.startswith("ha-off/")]


def test_last_will_offline_when_killed(mqtt_broker: Broker, subscribe) -> None:
    sub = subscribe(mqtt_broker, ["moodcast/killed/status"])
    code = (
        "import sys, threading\n"
        "from device.config import MqttConfig\n"
        "from device.outputs.publish import EventPublisher\n"
        "pub = EventPublisher(MqttConfig(enabled=True, host='127.0.0.1', port=int(sys.argv[1]),"
        " keepalive_s=5), 'killed')\n"
        "pub.start()\n"
        "threading.Event().wait()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(mqtt_broker.port)], cwd=ROOT)
    try:
        assert sub.wait_for(lambda msgs: any(m.payload == STATUS_ONLINE for m in msgs), WAIT_S)
        os.kill(child.pid, signal.SIGKILL)
        assert sub.wait_for(lambda msgs: msgs[-1].payload == STATUS_OFFLINE, WAIT_S), sub.messages
    finally:
        child.kill()
        child.wait(5)


# -- outages ------------------------------------------------------------------------------------------


@pytest.mark.slow  # 1.6-4 s on an idle 2-core machine: make test-slow
def test_broker_down_at_start(broker_factory, publishers, subscribe, publish_log: LogWatcher) -> None:
    broker = broker_factory(start=False)
    pub = publishers(mqtt_config(broker), "late")
    pub.start()  # returns at once although nothing listens
    for seq in range(1, 21):
        pub.publish_event(make_event(seq, "late"))
    warning = publish_log.wait_for("unreachable")
    assert f"127.0.0.1:{broker.port}" in warning and "connection refused" in warning
    assert not pub.stats().connected
    assert pub.stats().queued == 20

    broker.start()
    sub = subscribe(broker, ["moodcast/late/events"])
    assert sub.wait_for(has_seqs("moodcast/late/events", range(1, 21)), WAIT_S), sub.messages
    assert seqs(sub, "moodcast/late/events") == list(range(1, 21))
    assert len(publish_log.lines()) == 1  # one warning for the whole outage, not one per attempt
    assert pub.stats().dropped == 0


def test_broker_killed_and_restarted(broker_factory, publishers, subscribe, publish_log: LogWatcher) -> None:
    """At-least-once end to end: the publisher keeps each event until the broker acknowledges it (QoS 1),
    and a subscriber with a persistent session has the broker keep what arrives while it is away."""
    broker = broker_factory(persistent=True)
    topic = "moodcast/restart/events"
    sub = subscribe(broker, [topic], client_id="restart-sub", persistent=True)
    pub = publishers(mqtt_config(broker), "restart")
    pub.start()
    for seq in range(1, 11):
        pub.publish_event(make_event(seq, "restart"))
    assert sub.wait_for(has_seqs(topic, range(1, 11)), WAIT_S)

    broker.stop(kill=True)
    assert "connection lost (the broker closed it or stopped)" in publish_log.wait_for("connection lost")
    for seq in range(11, 21):  # during the outage
        pub.publish_event(make_event(seq, "restart"))
    broker.start()
    for seq in range(21, 31):  # while reconnecting, and after
        pub.publish_event(make_event(seq, "restart"))

    assert sub.wait_for(has_seqs(topic, range(1, 31)), 3 * WAIT_S), seqs(sub, topic)
    in_order_without_gaps(seqs(sub, topic), range(1, 31))
    assert pub.stats().dropped == 0


@pytest.mark.slow  # 1.6-4 s on an idle 2-core machine: make test-slow
def test_outbox_bound_drops_oldest(broker_factory, publishers, subscribe, publish_log: LogWatcher) -> None:
    broker = broker_factory(start=False)
    pub = publishers(mqtt_config(broker, outbox_max=5), "bound")
    pub.start()
    for seq in range(1, 9):
        pub.publish_event(make_event(seq, "bound"))
    assert dataclasses.asdict(pub.stats()) == {
        "published": 0,
        "queued": 5,
        "dropped": 3,
        "connected": False,
        "lost": 0,
        "damaged_files": 0,
    }
    drops = [line for line in publish_log.lines() if "outbox full" in line]
    assert len(drops) == 1 and "mqtt.outbox_max" in drops[0]  # rate-limited: not one line per event
    assert pub.last_seq() == 8

    broker.start()
    sub = subscribe(broker, ["moodcast/bound/events"])
    assert sub.wait_for(has_seqs("moodcast/bound/events", range(4, 9)), WAIT_S)
    assert seqs(sub, "moodcast/bound/events") == [4, 5, 6, 7, 8]


def test_persistent_outbox_survives_restart(broker_factory, publishers, subscribe, tmp_path: Path) -> None:
    broker = broker_factory(start=False)
    config = mqtt_config(broker, outbox_path=str(tmp_path / "outbox.sqlite"))
    first = publishers(config, "keep")
    first.start()
    for seq in range(1, 6):
        first.publish_event(make_event(seq, "keep"))
    first.close(timeout_s=1.0)

    broker.start()
    sub = subscribe(broker, ["moodcast/keep/events"])
    second = publishers(config, "keep")
    assert second.last_seq() == 5
    assert second.stats().queued == 5
    second.start()
    second.publish_event(make_event(second.last_seq() + 1, "keep"))
    assert sub.wait_for(has_seqs("moodcast/keep/events", range(1, 7)), WAIT_S)
    assert seqs(sub, "moodcast/keep/events") == list(range(1, 7))
    second.close()
    assert second.last_seq() == 6

    third = publishers(config, "keep")  # all delivered, yet numbering still continues
    assert third.last_seq() == 6 and third.stats().queued == 0


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_outbox_order_bound_and_in_flight(kind: str, tmp_path: Path) -> None:
    box = MemoryOutbox(3) if kind == "memory" else SqliteOutbox(tmp_path / "o.sqlite", 3)
    for seq in (1, 2, 3):
        assert box.put(seq, f"e{seq}") == []
    assert box.head(2) == [(1, "e1"), (2, "e2")]
    assert box.head(5, skip={1}) == [(2, "e2"), (3, "e3")]
    assert box.put(4, "e4", keep={1}) == [2]  # the oldest not handed to the client goes
    assert [seq for seq, _ in box.head(10)] == [1, 3, 4]
    assert box.remove(1) and not box.remove(1)
    assert len(box) == 2 and box.last_seq() == 4
    box.remove(3)
    box.remove(4)
    assert box.last_seq() == 4
    box.close()


# -- credentials and TLS ------------------------------------------------------------------------------


@pytest.mark.slow  # a refused client's paho thread takes 1 s to stop: make test-slow
def test_username_and_password(broker_factory, publishers, subscribe, tmp_path, publish_log) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "cam", "s3cret"], check=True, timeout=10)
    passwords.chmod(0o600)
    broker = broker_factory(extra=[f"password_file {passwords}", "allow_anonymous false"])

    good = publishers(mqtt_config(broker, username="cam", password="s3cret"), "authok")
    good.start()
    publish_log.wait_for(f"connected to 127.0.0.1:{broker.port}", level=logging.INFO)
    assert good.stats().connected

    bad = publishers(mqtt_config(broker, username="cam", password="wrong"), "authbad")
    bad.start()
    warning = publish_log.wait_for("refused the connection")
    assert f"127.0.0.1:{broker.port}" in warning
    assert "bad user name or password" in warning
    assert "wrong" not in warning and "s3cret" not in warning
    assert not bad.stats().connected


@pytest.mark.slow  # each TLS client's paho thread takes 1 s to stop (2 s): make test-slow
def test_tls(broker_factory, publishers, tmp_path: Path, publish_log: LogWatcher) -> None:
    good_ca = make_tls_files(tmp_path / "tls", "good")
    other_ca = make_tls_files(tmp_path / "tls", "other")
    broker = broker_factory(
        extra=[f"cafile {good_ca.ca}", f"certfile {good_ca.cert}", f"keyfile {good_ca.key}"]
    )
    good = publishers(mqtt_config(broker, tls=True, ca_file=str(good_ca.ca)), "tlsok")
    good.start()
    publish_log.wait_for(f"connected to 127.0.0.1:{broker.port}", level=logging.INFO)
    assert good.stats().connected

    bad = publishers(mqtt_config(broker, tls=True, ca_file=str(other_ca.ca)), "tlsbad")
    bad.start()
    warning = publish_log.wait_for("TLS failure")
    assert f"127.0.0.1:{broker.port}" in warning and "certificate verify failed" in warning
    assert not bad.stats().connected


# -- the daemon end to end ----------------------------------------------------------------------------


def test_daemon_publishes_sample_events(mqtt_broker: Broker, subscribe, shipped_model: Path) -> None:
    """``python -m device`` on the one-face clip: status, the face's new … end events, offline at exit."""
    prefix = "moodcast/e2e"
    sub = subscribe(mqtt_broker, [f"{prefix}/#"])
    result = subprocess.run(
        [sys.executable, "-m", "device", "--input", str(ROOT / "samples" / "one-face.mp4"), "--no-realtime",
         "--model-path", str(shipped_model), "--mqtt-enabled", "--mqtt-host", mqtt_broker.host,
         "--mqtt-port", str(mqtt_broker.port), "--device-id", "e2e"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sub.wait_for(lambda msgs: STATUS_OFFLINE in sub.on(f"{prefix}/status"), WAIT_S), sub.messages
    events = [json.loads(payload) for payload in sub.on(f"{prefix}/events")]
    assert [e["type"] for e in events if e["type"] != "update"] == ["new", "end"], events
    for event in events:
        check_event(event, LABELS)
        assert event["device"] == "e2e"
    check_sequence(events)
    assert events[0]["seq"] == 1
    assert sub.on(f"{prefix}/status")[0] == STATUS_ONLINE


def test_the_retained_state_has_no_faces_once_the_daemon_stops(
    mqtt_broker: Broker, subscribe, shipped_model: Path
) -> None:
    """Stopped with a face in view, the daemon sent its end event and went offline, but the retained state
    kept saying one face (and the last fps) for every later subscriber, Node-RED's included."""
    prefix = "moodcast/laststate"
    live = subscribe(mqtt_broker, [f"{prefix}/state"])
    result = subprocess.run(  # 30 frames in real time (2 s): a change of state goes out at most once a second
        [sys.executable, "-m", "device", "--input", str(ROOT / "samples" / "one-face.mp4"),
         "--camera-max-frames", "30", "--model-path", str(shipped_model), "--mqtt-enabled",
         "--mqtt-host", mqtt_broker.host, "--mqtt-port", str(mqtt_broker.port), "--device-id", "laststate"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert any(json.loads(payload)["faces"] == 1 for payload in live.on(f"{prefix}/state")), live.messages
    late = subscribe(mqtt_broker, [f"{prefix}/state"])
    assert late.wait_for(lambda msgs: any(m.topic == f"{prefix}/state" for m in msgs), WAIT_S)
    state = json.loads(late.on(f"{prefix}/state")[-1])
    assert state["faces"] == 0 and state["dominant"] is None and state["fps"] == 0.0, state


@pytest.mark.slow  # two daemon runs, the first waiting out its 5 s close with no broker: make test-slow
def test_daemon_restart_during_outage_loses_nothing(broker_factory, subscribe, shipped_model: Path, tmp_path):
    """Run 1 makes events while the broker is down and exits; run 2 starts with it up: all arrive in order."""
    broker = broker_factory(start=False)
    prefix = "moodcast/outage"

    def run_daemon(produced: Path) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "device", "--input", str(ROOT / "samples" / "one-face.mp4"),
             "--no-realtime", "--model-path", str(shipped_model), "--mqtt-enabled",
             "--mqtt-host", broker.host, "--mqtt-port", str(broker.port), "--device-id", "outage",
             "--mqtt-outbox-path", str(tmp_path / "outbox.sqlite"), "--events", str(produced)],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr

    run_daemon(tmp_path / "run1.jsonl")  # the broker is down all along
    broker.start()
    sub = subscribe(broker, [f"{prefix}/events"])
    run_daemon(tmp_path / "run2.jsonl")
    produced = [
        json.loads(line)
        for name in ("run1.jsonl", "run2.jsonl")
        for line in (tmp_path / name).read_text().splitlines()
    ]
    assert [e["seq"] for e in produced] == list(range(1, len(produced) + 1))  # numbering continued
    assert sub.wait_for(lambda msgs: len(msgs) >= len(produced), WAIT_S), sub.messages
    received = [json.loads(payload) for payload in sub.on(f"{prefix}/events")]
    assert received == produced


def test_daemon_killed_leaves_offline_by_last_will(
    mqtt_broker: Broker, subscribe, shipped_model: Path
) -> None:
    prefix = "moodcast/killed"
    sub = subscribe(mqtt_broker, [f"{prefix}/status"])
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device", "--input", str(ROOT / "samples" / "one-face.mp4"), "--realtime",
         "--camera-loop", "--model-path", str(shipped_model), "--mqtt-enabled",
         "--mqtt-host", mqtt_broker.host, "--mqtt-port", str(mqtt_broker.port), "--device-id", "killed"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert sub.wait_for(lambda msgs: STATUS_ONLINE in sub.on(f"{prefix}/status"), WAIT_S)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    assert sub.wait_for(lambda msgs: sub.on(f"{prefix}/status")[-1:] == [STATUS_OFFLINE], WAIT_S)
