"""The HTTP server on a real loopback socket: health, Prometheus metrics, snapshot and MJPEG stream; the Host
and Origin checks; the analyser's admission and multipart limits on real images."""

from __future__ import annotations

import http.client
import json
import logging
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from device.config import HttpConfig, load_config
from device.const import ANALYZE_ADMITTED, MAX_STREAMS
from device.errors import ConfigError
from device.metrics import Metrics
from device.web.analyze import Analyzer
from device.web.http import HttpServer, is_loopback
from tests.fixtures_broker import free_port
from tools.web_daemon import encode

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FakePipeline:
    """Stands in for the app: hands out a freshly encoded annotated frame each time it is asked."""

    has_frame: bool = True
    healthy: bool = True
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def latest_jpeg(self) -> bytes | None:
        if not self.has_frame:
            return None
        with self.lock:
            self.frames += 1
            frame = np.zeros((48, 64, 3), np.uint8)
            cv2.putText(frame, str(self.frames), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 215, 255), 2)
            ok, jpeg = cv2.imencode(".jpg", frame)
            assert ok
            return jpeg.tobytes()

    def is_healthy(self) -> bool:
        return self.healthy


@pytest.fixture
def pipeline() -> FakePipeline:
    return FakePipeline()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(pipeline: FakePipeline, metrics: Metrics) -> Iterator[HttpServer]:
    server = HttpServer(
        HttpConfig(enabled=True, host="127.0.0.1", port=0), metrics, pipeline.latest_jpeg, pipeline.is_healthy
    )
    server.start()
    yield server
    server.stop()


def get(server: HttpServer, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def read_part(response: http.client.HTTPResponse) -> bytes:
    """One part of a multipart/x-mixed-replace body: boundary line, headers, then Content-Length bytes."""
    line = response.fp.readline()
    while line in (b"\r\n", b"\n"):
        line = response.fp.readline()
    assert line.strip() == b"--frame", line
    headers = {}
    while (line := response.fp.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("ascii").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    return response.fp.read(int(headers["content-length"]))


def test_default_config_is_off_and_loopback() -> None:
    config = HttpConfig()
    assert config.enabled is False
    assert is_loopback(config.host)
    assert not is_loopback("0.0.0.0") and not is_loopback("") and is_loopback("::1")


def test_serves_in_a_thread_named_http(server: HttpServer) -> None:
    assert server.port > 0
    assert "http" in {thread.name for thread in threading.enumerate()}


def test_healthz_follows_healthy(server: HttpServer, pipeline: FakePipeline) -> None:
    assert get(server, "/healthz") == (200, "text/plain; charset=utf-8", b"ok\n")
    pipeline.healthy = False
    status, _, _ = get(server, "/healthz")
    assert status == 503
    pipeline.healthy = True
    assert get(server, "/healthz")[0] == 200


def test_metrics_are_prometheus_text(server: HttpServer, metrics: Metrics) -> None:
    metrics.frames_total.inc(3)
    metrics.observe_stage("detect", 0.02)
    metrics.events_total.labels(type="new").inc()
    metrics.mqtt_connected.set(1)
    status, content_type, body = get(server, "/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain")
    text = body.decode()
    assert "moodcast_frames_total 3.0" in text
    assert 'moodcast_stage_seconds_bucket{le="0.025",stage="detect"} 1.0' in text
    assert 'moodcast_stage_seconds_bucket{le="0.0001",stage="classify"} 0.0' in text
    assert 'moodcast_events_total{type="new"} 1.0' in text
    assert "moodcast_mqtt_connected 1.0" in text
    for name in ("frames_dropped_total", "faces", "events_queued", "events_dropped_total", "fps"):
        assert f"moodcast_{name} " in text


def test_metrics_have_no_created_series(server: HttpServer, metrics: Metrics) -> None:
    """No ``*_created`` line (noise on dashboards), while the counters and histograms are still there, and
    other registries of the process keep theirs: the daemon's choice is not a process-wide switch."""
    metrics.frames_total.inc()
    metrics.observe_stage("detect", 0.02)
    status, _, body = get(server, "/metrics")
    assert status == 200
    text = body.decode()
    assert [line for line in text.splitlines() if "_created" in line] == []
    assert "moodcast_frames_total 1.0" in text
    assert 'moodcast_stage_seconds_count{stage="detect"} 1.0' in text
    assert 'moodcast_events_total{type="end"} 0.0' in text
    other = CollectorRegistry()
    Counter("other", "Another registry's counter", registry=other)
    assert b"other_created" in generate_latest(other)


def test_snapshot_is_a_jpeg_or_503_before_the_first_frame(server: HttpServer, pipeline: FakePipeline) -> None:
    pipeline.has_frame = False
    status, content_type, body = get(server, "/snapshot.jpg")
    assert (status, content_type) == (503, "application/json")  # was text/plain, unlike every other error
    assert json.loads(body)["error"] == "no frame drawn yet"
    pipeline.has_frame = True
    status, content_type, body = get(server, "/snapshot.jpg")
    assert (status, content_type) == (200, "image/jpeg")
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (48, 64, 3)


def test_unknown_path_is_404(server: HttpServer) -> None:
    assert get(server, "/admin")[0] == 404


def test_mjpeg_stream_yields_frames_until_the_server_stops(server: HttpServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    parts = [read_part(response) for _ in range(3)]
    assert len(set(parts)) == 3  # each part is a newer frame
    for part in parts:
        image = cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (48, 64, 3)
    server.stop()
    rest = response.fp.read()  # returns at EOF: the stream ends instead of hanging until the timeout
    assert rest.count(b"--frame") <= 2
    connection.close()


def test_a_viewer_over_the_limit_gets_a_json_503_saying_when_to_retry(server: HttpServer) -> None:
    """The fifth viewer got a text/plain "too many viewers", unlike every other error of the API."""
    viewers = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=5) for _ in range(MAX_STREAMS)]
    try:
        for viewer in viewers:
            viewer.request("GET", "/stream.mjpg")
            assert viewer.getresponse().status == 200
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        assert response.status == 503 and response.getheader("Content-Type") == "application/json"
        assert response.getheader("Retry-After") == "5"
        assert "viewers already" in json.loads(response.read())["error"]
        connection.close()
    finally:
        for viewer in viewers:
            viewer.close()


def test_non_loopback_bind_warns(
    pipeline: FakePipeline, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    server = HttpServer(
        HttpConfig(enabled=True, host="0.0.0.0", port=0), metrics, pipeline.latest_jpeg, pipeline.is_healthy
    )
    with caplog.at_level(logging.INFO, logger="device.web.http"):
        server.start()
        server.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "personal data" in warnings[0].getMessage()


def test_loopback_bind_does_not_warn(
    pipeline: FakePipeline, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """The server starts inside the test, so caplog holds its start-up log: the INFO line and no warning."""
    server = HttpServer(
        HttpConfig(enabled=True, host="127.0.0.1", port=0), metrics, pipeline.latest_jpeg, pipeline.is_healthy
    )
    with caplog.at_level(logging.INFO, logger="device.web.http"):
        server.start()
        port = server.port
        server.stop()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "device.web.http"]
    assert (logging.INFO, f"http: serving on http://127.0.0.1:{port} (no token)") in logged
    assert not [message for level, message in logged if level >= logging.WARNING]


def test_port_in_use_is_a_config_error(server: HttpServer, pipeline: FakePipeline, metrics: Metrics) -> None:
    second = HttpServer(
        HttpConfig(enabled=True, host="127.0.0.1", port=server.port),
        metrics,
        pipeline.latest_jpeg,
        pipeline.is_healthy,
    )
    with pytest.raises(ConfigError, match=rf"^http.port: cannot listen on 127.0.0.1:{server.port}"):
        second.start()


# -- the real daemon ----------------------------------------------------------------------------------


def test_the_daemon_serves_its_own_frames_and_metrics(shipped_model: Path) -> None:
    """``python -m device`` on the one-face clip with HTTP on: the app's own JPEG and metrics, no fake."""
    port = free_port()
    sample = ROOT / "samples" / "one-face.mp4"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "device", "--input", str(sample), "--realtime", "--camera-loop",
         "--model-path", str(shipped_model), "--http-enabled", "--http-host", "127.0.0.1",
         "--http-port", str(port), "--display-backend", "none"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log: list[str] = []
    try:
        assert daemon.stderr is not None
        started = threading.Event()

        def read_log() -> None:
            assert daemon.stderr is not None
            for line in daemon.stderr:
                log.append(line)
                if f"serving on http://127.0.0.1:{port}" in line:
                    started.set()

        threading.Thread(target=read_log, daemon=True).start()
        assert started.wait(60), "".join(log)
        deadline = time.monotonic() + 30
        status, kind, body = fetch(port, "/snapshot.jpg")
        while status == 503 and time.monotonic() < deadline:  # no frame drawn yet
            daemon_alive = daemon.poll() is None
            assert daemon_alive, "".join(log)
            threading.Event().wait(0.1)
            status, kind, body = fetch(port, "/snapshot.jpg")
        assert (status, kind) == (200, "image/jpeg")
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        capture = cv2.VideoCapture(str(sample))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        capture.release()
        assert image is not None and (image.shape[1], image.shape[0]) == size

        assert fetch(port, "/healthz")[::2] == (200, b"ok\n")
        status, kind, body = fetch(port, "/metrics")
        assert (status, kind) == (200, CONTENT_TYPE_LATEST)
        samples = dict(line.rsplit(" ", 1) for line in body.decode().splitlines() if not line.startswith("#"))
        assert float(samples["moodcast_frames_total"]) > 0
        assert float(samples['moodcast_stage_seconds_count{stage="draw"}']) > 0  # the JPEG is drawn
        assert float(samples["moodcast_mqtt_connected"]) == 0
    finally:  # stop it whatever happened; judge its exit only after, so a failure above is not hidden
        daemon.send_signal(signal.SIGTERM)
        try:
            returncode: int | None = daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
            returncode = None
    assert returncode == 0, "".join(log)


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


# -- requests of our own making ------------------------------------------------------------------------


def ask(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; a ``Host`` in ``headers`` replaces http.client's."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_head(port: int, head: str) -> socket.socket:
    """A connection that has sent ``head`` (request line and headers) and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode("latin-1") + b"\r\n")
    return sock


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


# -- Host and Origin ----------------------------------------------------------------------------------


def test_without_a_token_only_this_servers_names_are_served(server: HttpServer) -> None:
    port = server.port
    for host in (f"127.0.0.1:{port}", "localhost", f"LocalHost:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert ask(port, "GET", "/api/v1/info", headers={"Host": host})[0] == 200, host
    for host in (f"evil.example:{port}", "127.0.0.1.nip.io", "evil.example@127.0.0.1", "127.0.0.1:x"):
        status, headers, body = ask(port, "GET", "/api/v1/info", headers={"Host": host})
        error = json.loads(body)["error"]
        assert status == 421 and headers["content-type"] == "application/json", host
        assert error.startswith(f"Host {host!r} is not this server's name") and "\n" not in error
    with raw_head(port, "GET /api/v1/info HTTP/1.1\r\n") as sock:  # no Host at all
        assert answer_of(sock)[0] == 421


def test_with_a_token_other_names_are_left_to_the_token(pipeline: FakePipeline, metrics: Metrics) -> None:
    token = "0123456789abcdef-token"
    server = HttpServer(
        HttpConfig(enabled=True, host="127.0.0.1", port=0, token=token),
        metrics, pipeline.latest_jpeg, pipeline.is_healthy,
    )  # fmt: skip
    server.start()
    try:
        host = {"Host": "moodcast.lan:8480"}
        assert ask(server.port, "GET", "/api/v1/info", headers=host)[0] == 401
        auth = {**host, "Authorization": f"Bearer {token}"}
        assert ask(server.port, "GET", "/api/v1/info", headers=auth)[0] == 200
    finally:
        server.stop()


def test_a_post_from_another_origin_is_refused(server: HttpServer) -> None:
    port = server.port
    feedback = json.dumps({"face_id": 1, "label": "sad"}).encode()
    kind = {"Content-Type": "application/json"}
    for origin in (
        f"http://127.0.0.1:{free_port()}",
        "http://evil.example",
        "null",
        f"ftp://127.0.0.1:{port}",
    ):
        for path, body in (("/api/v1/feedback", feedback), ("/api/v1/analyze", b"x"), ("/login", b"token=x")):
            status, _, data = ask(port, "POST", path, body, {**kind, "Origin": origin})
            error = json.loads(data)["error"]
            assert status == 403 and error.startswith(f"Origin {origin!r} is not this server's"), (
                origin,
                path,
            )
    # the page itself, and scripts that send no Origin, go on to the route (feedback is off here: 404)
    assert (
        ask(port, "POST", "/api/v1/feedback", feedback, {**kind, "Origin": f"http://127.0.0.1:{port}"})[0]
        == 404
    )
    assert ask(port, "POST", "/api/v1/feedback", feedback, kind)[0] == 404
    # whatever the body: a form or text with feedback off was a 415 about its Content-Type
    status, _, data = ask(port, "POST", "/api/v1/feedback", b"a=1", {"Content-Type": "text/plain"})
    assert status == 404 and "feedback is off" in json.loads(data)["error"]
    assert (
        ask(port, "GET", "/api/v1/info", headers={"Origin": "http://evil.example"})[0] == 200
    )  # reads: CORS


# -- the analyser's admission and limits ----------------------------------------------------------------


@pytest.fixture
def analyzing(pipeline: FakePipeline, metrics: Metrics, shipped_model: Path) -> Iterator[HttpServer]:
    """The server with a real analyser on the committed model (stop() closes it)."""
    analyzer = Analyzer(load_config(environ={}, cli={"model.path": str(shipped_model)}))
    server = HttpServer(
        HttpConfig(enabled=True, host="127.0.0.1", port=0),
        metrics, pipeline.latest_jpeg, pipeline.is_healthy, analyzer=analyzer,
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_a_full_analyser_answers_429_before_reading_the_body(analyzing: HttpServer) -> None:
    port = analyzing.port
    image = encode(np.full((120, 160, 3), 128, np.uint8), ".png")
    head = f"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
    # these send their headers and then nothing: each holds a slot while its body is awaited
    holders = [raw_head(port, head + "Content-Length: 1000\r\n") for _ in range(ANALYZE_ADMITTED)]
    # one kept-alive connection: its handler leaves each request's slot before it reads the next, so a 429
    # means the holders have them all
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        deadline = time.monotonic() + 10
        while True:
            for number, sock in enumerate(holders):
                if select.select([sock], [], [], 0)[0]:  # answered: it came while our request had a slot
                    sock.close()
                    holders[number] = raw_head(port, head + "Content-Length: 1000\r\n")
            connection.request("POST", "/api/v1/analyze", image)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                break
            assert time.monotonic() < deadline, "the waiting requests never filled the analyser"
        assert response.status == 429
        with raw_head(port, head + f"Content-Length: {5 * 2**20}\r\n") as probe:  # 5 MB never sent
            status, headers, body = answer_of(probe)
        assert (status, headers["retry-after"]) == (429, "1")
        assert json.loads(body)["error"] == "busy analysing other images; retry shortly"
    finally:
        connection.close()
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := ask(port, "POST", "/api/v1/analyze", image)[0]) == 429 and time.monotonic() < deadline:
        threading.Event().wait(0.05)  # the holders' handlers see their connections close
    assert status == 200


def test_a_multipart_body_of_many_tiny_parts_is_refused_unparsed(analyzing: HttpServer) -> None:
    part = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n'
    body = part * (10 * 2**20 // len(part)) + b"--b--\r\n"  # about 200,000 parts in 10 MB
    started = time.monotonic()
    status, _, data = ask(
        analyzing.port, "POST", "/api/v1/analyze", body, {"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert status == 413, data
    assert (
        json.loads(data)["error"]
        == "the multipart body has more than 4 parts; send the image as one file part"
    )
    assert time.monotonic() - started < 5


def test_a_client_that_resets_mid_request_is_no_traceback(
    server: HttpServer, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """socketserver printed its ConnectionResetError traceback on stderr (the daemon's log) each time."""
    with caplog.at_level(logging.DEBUG, logger="device.web.http"):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /healthz HT")  # the server waits for the rest of the line
        time.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not a close
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if "dropped the connection" in r.getMessage()]:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
    assert get(server, "/healthz")[0] == 200
    assert "Traceback" not in capfd.readouterr().err
