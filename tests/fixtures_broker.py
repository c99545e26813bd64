"""Fixtures: a real Mosquitto on a free loopback port, TLS files made with openssl, a test subscriber."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tools.web_daemon import free_port

START_TIMEOUT_S = 10.0


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found; install it (apt-get install -y mosquitto mosquitto-clients openssl)")
    return path


@dataclass
class Broker:
    """One mosquitto process from a generated config; ``stop()`` and ``start()`` again keep the port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    persistent: bool = False
    extra: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[str] | None = None
    _log: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        lines = [f"listener {self.port} {self.host}", "log_dest stderr", "log_type all"]
        if not any(line.startswith("password_file") for line in self.extra):
            lines.append("allow_anonymous true")
        if getpass.getuser() == "root":
            lines.append("user root")  # else mosquitto drops to a 'mosquitto' user that cannot read workdir
        if self.persistent:
            # Saved after every change, so even a SIGKILL keeps subscriptions and queued messages.
            store = self.workdir / "store"
            store.mkdir(exist_ok=True)
            lines += [
                "persistence true",
                f"persistence_location {store}/",
                "autosave_on_changes true",
                "autosave_interval 1",
            ]
        self.config_path.write_text("\n".join(lines + self.extra) + "\n")

    def start(self) -> None:
        """Start mosquitto and return once it listens."""
        assert self._proc is None, "broker already running"
        self.write_config()
        self._proc = subprocess.Popen(
            [_require("mosquitto"), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = threading.Event()
        proc = self._proc

        def read_log() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self._log.append(line.rstrip())
                if " running" in line:
                    running.set()
            running.set()  # exited

        threading.Thread(target=read_log, name="mosquitto-log", daemon=True).start()
        if not running.wait(START_TIMEOUT_S) or proc.poll() is not None:
            self.stop(kill=True)
            raise RuntimeError("mosquitto did not start:\n" + self.log)

    def stop(self, kill: bool = False) -> None:
        """Stop mosquitto: SIGTERM (it saves its store) or, with ``kill``, SIGKILL."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self._proc.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(START_TIMEOUT_S)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        return "\n".join(self._log)


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, name: str = "test") -> TlsFiles:
    """Make a throw-away CA and a server certificate with the openssl CLI (EC keys: fast)."""
    openssl = _require("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, crt = (
        directory / f"{name}-server.key",
        directory / f"{name}-server.csr",
        directory / f"{name}-server.crt",
    )
    ext = directory / f"{name}-server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
         "-subj", f"/CN=moodcast {name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "2", "-extfile", ext],
    ]  # fmt: skip
    for step in steps:
        subprocess.run([str(arg) for arg in step], check=True, capture_output=True, timeout=30)
    return TlsFiles(ca=ca_crt, cert=crt, key=key)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool


class Subscriber:
    """A paho client that records what it receives; ``persistent`` keeps its session across reconnects."""

    def __init__(self, broker: Broker, topics: list[str], client_id: str, persistent: bool = False) -> None:
        self.topics = topics
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber did not subscribe"

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata, mid, reasons, properties) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(message.topic, message.payload.decode(), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(messages so far)`` holds."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def on(self, topic: str) -> list[str]:
        """The payloads received on one topic, in order."""
        with self._cond:
            return [m.payload for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One plain broker for the whole run; tests keep apart by using their own device id."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Make brokers of a test's own (``persistent``, ``extra`` config lines, ``start``); all stopped after."""
    brokers: list[Broker] = []

    def make(persistent: bool = False, extra: list[str] | None = None, start: bool = True) -> Broker:
        workdir = tmp_path / f"broker{len(brokers)}"
        workdir.mkdir()
        broker = Broker(workdir, persistent=persistent, extra=list(extra or []))
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    """Open test subscribers on a broker; all closed after the test."""
    subscribers: list[Subscriber] = []

    def make(broker: Broker, topics: list[str], client_id: str = "", persistent: bool = False) -> Subscriber:
        sub = Subscriber(
            broker, topics, client_id or f"test-sub-{len(subscribers)}-{id(subscribers)}", persistent
        )
        subscribers.append(sub)
        return sub

    yield make
    for sub in subscribers:
        sub.close()


class Mqtt311OnlyBroker:
    """A broker that speaks only MQTT 3.1.1, as RabbitMQ's MQTT plugin before 3.13 and mosquitto before 1.6:
    a loopback proxy in front of a real mosquitto that answers an MQTT 5 CONNECT with the 3.1.1 CONNACK
    "unacceptable protocol version" (return code 1, MQTT 3.1.1 section 3.2.2.3) and relays any other
    connection to mosquitto byte for byte."""

    def __init__(self, upstream: Broker) -> None:
        self.upstream = upstream
        self.host = "127.0.0.1"
        self.refused_v5 = 0  # MQTT 5 CONNECTs answered with return code 1
        self.other_hellos = 0  # connections that did not open with an MQTT CONNECT (a TLS probe, say)
        self._server = socket.create_server((self.host, 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, name="mqtt311-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            connect = _read_packet(client)
            if connect[0] != 0x10:  # not a CONNECT: an old broker drops it
                self.other_hellos += 1
                return
            # CONNECT: fixed header, then the protocol name (2-byte length + "MQTT"), then the level byte
            header = 1 + next(i for i in range(1, 5) if connect[i] < 0x80)
            if connect[header + 6] == 5:
                self.refused_v5 += 1
                client.sendall(b"\x20\x02\x00\x01")
                return
            with socket.create_connection((self.upstream.host, self.upstream.port)) as upstream:
                upstream.sendall(connect)
                threading.Thread(target=_relay, args=(upstream, client), daemon=True).start()
                _relay(client, upstream)

    def close(self) -> None:
        self._server.close()


def _read_packet(sock: socket.socket) -> bytes:
    """One whole MQTT control packet: the fixed header with its variable-length remaining length, and the
    rest (MQTT 3.1.1 section 2.2.3)."""
    data = sock.recv(2)
    length, shift, index = 0, 0, 1
    while True:
        while len(data) <= index:
            data += sock.recv(1)
        length += (data[index] & 0x7F) << shift
        if data[index] < 0x80:
            break
        shift, index = shift + 7, index + 1
    while len(data) < index + 1 + length:
        data += sock.recv(index + 1 + length - len(data))
    return data


def _relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass
