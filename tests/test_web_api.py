"""The web API of a real daemon on the one-face clip: analyse real images, each bad request's 4xx, the
token, the page's JSON, feedback crops; the room mood and the Home Assistant discovery payloads."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import load_config
from device.const import ANALYZE_ADMITTED, BODY_READ_S
from device.errors import ConfigError
from device.outputs.discovery import discovery_configs
from device.outputs.mood import RoomMood
from tools.web_daemon import ROOT, Daemon, encode, sample_frame, start_daemon

TOKEN = "t0k-" + uuid.uuid4().hex
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("web")
    running = start_daemon(
        tmp,
        "--feedback-enabled",
        "--feedback-dir",
        str(tmp / "feedback"),
        "--log-level",
        "debug",
        token=TOKEN,
    )
    yield running
    log = running.stop()
    assert TOKEN not in log, "the token reached the log"


def analyze_head(length: object) -> bytes:
    """The head of a raw POST /api/v1/analyze with the token, announcing ``length`` as its Content-Length."""
    return (
        f"POST /api/v1/analyze HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    ).encode("latin-1")


def multipart(data: bytes, name: str = "face.png", kind: str = "image/png") -> tuple[bytes, str]:
    boundary = "moodcast-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_analyze_finds_and_classifies_the_face_in_a_jpeg(daemon: Daemon) -> None:
    status, headers, body = daemon.request(
        "POST", "/api/v1/analyze", encode(sample_frame()), {"Content-Type": "image/jpeg"}
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["model"]["name"] == "moodcast-emotion" and len(answer["model"]["version"]) == 12
    assert (answer["width"], answer["height"]) == (640, 480)
    assert len(answer["faces"]) == 1
    face = answer["faces"][0]
    assert len(face["box"]) == 4 and face["box"][2] >= 48
    assert set(face["scores"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert abs(sum(face["scores"].values()) - 1.0) < 0.02


def test_analyze_takes_a_png_in_a_multipart_form_and_annotates(daemon: Daemon) -> None:
    frame = sample_frame()
    body, kind = multipart(encode(frame, ".png"))
    status, headers, data = daemon.request(
        "POST", "/api/v1/analyze?annotate=true", body, {"Content-Type": kind}
    )
    assert status == 200, data
    assert headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == frame.shape
    assert not np.array_equal(image, frame)  # something was drawn


def test_analyze_refuses_an_annotate_word_that_is_neither_yes_nor_no(daemon: Daemon) -> None:
    """``?annotate=maybe`` was taken for false: a caller that asked for a picture got JSON, unsaid."""
    image = encode(sample_frame())
    status, _, data = daemon.request("POST", "/api/v1/analyze?annotate=maybe", image)
    assert status == 400 and json.loads(data)["error"] == "annotate: expected true or false, got 'maybe'"
    status, headers, _ = daemon.request("POST", "/api/v1/analyze?annotate=ON", image)
    assert status == 200 and headers["content-type"] == "image/jpeg"
    status, headers, _ = daemon.request("POST", "/api/v1/analyze?annotate=0", image)
    assert status == 200 and headers["content-type"] == "application/json"


@pytest.mark.parametrize("query", ["annotate", "annotate=", "annotate=%20"])
def test_analyze_refuses_an_annotate_without_a_word(daemon: Daemon, query: str) -> None:
    """A bare ``?annotate`` (a flag, as a caller asking for a picture may write it) or ``?annotate=`` was
    dropped as blank and taken for false: JSON came back where a picture was asked for, unsaid."""
    status, _, data = daemon.request("POST", f"/api/v1/analyze?{query}", encode(sample_frame()))
    assert status == 400 and json.loads(data)["error"].startswith("annotate: expected true or false, got"), (
        data
    )


def test_analyze_an_image_without_faces_gives_none(daemon: Daemon) -> None:
    blank = np.full((240, 320, 3), 128, np.uint8)
    status, _, body = daemon.request("POST", "/api/v1/analyze", encode(blank, ".png"))
    assert status == 200 and json.loads(body)["faces"] == []


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("POST", b"hello, not an image", 415),
        ("POST", b"", 400),
        ("POST", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, 400),  # a JPEG with no frame header
        ("GET", None, 405),
        ("PUT", b"x", 405),
    ],
)
def test_each_bad_request_gets_its_4xx_as_json(
    daemon: Daemon, method: str, body: bytes | None, expected: int
) -> None:
    status, headers, data = daemon.request(method, "/api/v1/analyze", body)
    assert status == expected, data
    assert headers["content-type"] == "application/json"
    assert json.loads(data)["error"]


def test_an_image_over_4096_px_a_side_is_413(daemon: Daemon) -> None:
    wide = np.zeros((8, 4097, 3), np.uint8)
    status, _, data = daemon.request("POST", "/api/v1/analyze", encode(wide, ".png"))
    assert status == 413 and "4096" in json.loads(data)["error"]


def test_a_body_over_10_mb_is_refused_before_it_is_read(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(analyze_head(11 * 2**20))
        answer = ""
        while '"error"' not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"error"' in answer


@pytest.mark.parametrize("expect", [{}, {"Expect": "100-continue"}])
def test_a_client_that_sends_all_of_a_body_over_10_mb_still_reads_the_413(
    daemon: Daemon, expect: dict[str, str]
) -> None:
    """Python's http.client (as requests) sends the whole body before it reads: the server reads it to the end
    and drops it, so the answer arrives instead of a connection reset. So too when it asked Expect:
    100-continue and sent the body without waiting for the 100 (RFC 9110 lets it): that body was not
    drained, and the client got a broken pipe."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/analyze",
            body=bytes(11 * 2**20),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/jpeg", **expect},
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "the body is over 10304 kB"
    finally:
        connection.close()


def test_refused_oversize_uploads_that_trickle_on_do_not_keep_the_analyser_busy(daemon: Daemon) -> None:
    """As many uploads as the analyser admits at once, each announcing 20 MB and then sending a byte now and
    then, are answered 413 at once and hold none of its places: a real image is still analysed (it was 429,
    busy, while they trickled)."""
    head = analyze_head(20 * 2**20)
    held = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(ANALYZE_ADMITTED)]
    try:
        for sock in held:
            sock.sendall(head + bytes(2**16))
            assert sock.recv(65536).startswith(b"HTTP/1.1 413")
        for sock in held:
            sock.sendall(b"\0")  # still sending
        status, _, data = daemon.request("POST", "/api/v1/analyze", encode(sample_frame()))
        assert status == 200, data
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow  # waits out BODY_READ_S (30 s): make test-slow
def test_uploads_that_trickle_in_are_cut_off_and_free_the_analyser(daemon: Daemon) -> None:
    """As many uploads of a real image's size as the analyser admits, each sending a byte now and then, held
    every place for as long as they went on (a real image got 429 throughout): after BODY_READ_S each is
    answered 408 and a real image is analysed again."""
    image = encode(sample_frame())
    head = analyze_head(len(image))
    held = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(ANALYZE_ADMITTED)]
    try:
        for sock in held:
            sock.sendall(head + image[:100])
        started = time.monotonic()
        answers = [b""] * len(held)
        while time.monotonic() - started < BODY_READ_S + 10 and not all(answers):
            for i, sock in enumerate(held):
                if not answers[i]:
                    sock.sendall(image[100 + i : 101 + i])  # a byte now and then, never the whole body
            threading.Event().wait(2.0)
            for i, sock in enumerate(held):
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError):  # no answer yet
                    answers[i] = answers[i] or sock.recv(65536)
        assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers
        status, _, data = daemon.request("POST", "/api/v1/analyze", image)
        assert status == 200, data
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    ("length", "status"),
    [("\u00b2", "400"), ("9" * 4301, "413"), ("0" * 5000 + "20000000", "413"), ("5, 6", "400")],
)
def test_a_content_length_that_is_no_plain_number_is_answered(
    daemon: Daemon, length: str, status: str
) -> None:
    """'²' is a digit to str.isdigit, and int() refuses over 4300 digits: the handler crashed and the client
    got no answer. Leading zeros are only zeros (20 MB here). A length that is not one number is a 400
    (RFC 9112, 6.3); '5, 6' was read as 5."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(analyze_head(length))
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith(f"HTTP/1.1 {status}"), answer


def test_differing_content_length_headers_are_refused_and_equal_ones_accepted(daemon: Daemon) -> None:
    """Two Content-Length headers that differ frame the body two ways (request smuggling behind a proxy):
    the first one was used. The same length twice is one length (RFC 9110, 8.6)."""
    image = encode(sample_frame())
    head = analyze_head(len(image))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(head[:-2] + f"Content-Length: {len(image) - 1}\r\n\r\n".encode() + image)
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400") and "Content-Length" in answer, answer
    assert "Connection: close" in answer  # the body's end is not known: the connection cannot go on
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(head[:-2] + f"Content-Length: {len(image)}\r\n\r\n".encode() + image)
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 200"), answer


def test_a_body_framed_two_ways_is_refused_and_nothing_after_it_is_served(daemon: Daemon) -> None:
    """Transfer-Encoding beside Content-Length (RFC 9112, 6.3: request smuggling): the body was framed by
    Content-Length and its chunked remainder served as the next request on the connection."""
    chunked = b"0\r\n\r\nGET /api/v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
    head = analyze_head(3)[:-2] + b"Transfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(head + chunked + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 411") and b"Connection: close" in answer, answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer


def test_a_get_with_a_body_is_answered_once_and_its_body_is_no_request(daemon: Daemon) -> None:
    """A GET's body is never read: it was parsed as the next request on the connection."""
    inner = f"GET /api/v1/faces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    head = (
        f"GET /api/v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {len(inner)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(head + inner)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1 ") == 1, answer


def test_expect_100_continue_gets_the_100_only_for_a_body_that_is_accepted(daemon: Daemon) -> None:
    """curl asks before it uploads over 1 MB (Expect: 100-continue): an upload over the limit is refused at
    once, before its body is sent (it got 100 Continue, then 413 after the body); an image the analyser
    takes gets the 100, then its analysis."""
    expect = b"Expect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(analyze_head(20 * 2**20)[:-2] + expect)
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    image = encode(sample_frame())
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(analyze_head(len(image))[:-2] + b"Connection: close\r\n" + expect)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(image)
        answer = b""
        while chunk := sock.recv(65536):  # to the end: the server closes after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert "faces" in json.loads(answer.partition(b"\r\n\r\n")[2])


def test_every_route_but_healthz_needs_the_token(daemon: Daemon) -> None:
    assert daemon.request("GET", "/healthz", token="")[0] == 200
    for path in ("/api/v1/faces", "/metrics", "/snapshot.jpg", "/api/v1/history"):
        status, headers, _ = daemon.request("GET", path, token="")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
        status, _, data = daemon.request("GET", path, token="wrong")
        assert status == 401 and "not this daemon's http.token" in json.loads(data)["error"], path
        assert daemon.request("GET", path)[0] == 200, path
    status, _, page = daemon.request("GET", "/", token="")
    assert status == 401 and b'name="token"' in page  # the login form
    status, headers, _ = daemon.request("POST", "/api/v1/analyze", b"x", token="")
    assert status == 401 and headers["connection"] == "close"  # its body is dropped, the connection closed


def test_the_login_form_sets_a_cookie_the_page_then_uses(daemon: Daemon) -> None:
    status, headers, _ = daemon.request(
        "POST",
        "/login",
        f"token={TOKEN}".encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
        token="",
    )
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"]
    status, _, page = daemon.request("GET", "/", headers={"Cookie": cookie}, token="")
    assert status == 200 and b"/static/app.js" in page
    assert daemon.request("POST", "/login", b"token=nope", token="")[0] == 401


def test_the_page_and_its_json(daemon: Daemon) -> None:
    status, headers, page = daemon.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"https://" not in page  # offline: nothing from elsewhere
    for name in ("app.js", "style.css"):
        status, _, data = daemon.request("GET", f"/static/{name}")
        assert status == 200 and b"https://" not in data
    assert daemon.request("GET", "/static/../http.py")[0] == 404
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not daemon.json("/api/v1/faces")["faces"]:
        time.sleep(0.5)
    faces = daemon.json("/api/v1/faces")
    assert faces["faces"] and {"id", "emotion", "confidence", "on_screen_s"} <= set(faces["faces"][0])
    mood = daemon.json("/api/v1/mood")
    assert mood["window_s"] == 60.0 and mood["series"]
    info = daemon.json("/api/v1/info")
    assert info["feedback"] is True and info["model"]["name"] == "moodcast-emotion"


def test_feedback_saves_the_face_crop_under_its_label(
    daemon: Daemon, tmp_path_factory: pytest.TempPathFactory
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not daemon.json("/api/v1/faces")["faces"]:
        time.sleep(0.5)
    face_id = daemon.json("/api/v1/faces")["faces"][0]["id"]
    # a face shows in /faces with its first event, maybe before a kept frame has it (then 404): try again
    deadline = time.monotonic() + 30
    while True:
        status, _, data = daemon.request(
            "POST", "/api/v1/feedback", json.dumps({"face_id": face_id, "label": "sad"}).encode(), JSON
        )
        if status != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 201, data
    saved = json.loads(data)["saved"]
    folder = Path(daemon.log_path.parent / "feedback")
    crop = cv2.imread(str(folder / saved), cv2.IMREAD_UNCHANGED)
    assert crop is not None and crop.shape == (48, 48)
    assert daemon.metric("moodcast_feedback_saved_total") >= 1
    bad = daemon.request(
        "POST", "/api/v1/feedback", json.dumps({"face_id": face_id, "label": "bored"}).encode(), JSON
    )
    assert bad[0] == 400
    unknown = json.dumps({"face_id": 99999, "label": "sad"}).encode()
    assert daemon.request("POST", "/api/v1/feedback", unknown, JSON)[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"face_id": 1e400, "label": "sad"}',
            "face_id",
        ),  # json reads it as inf: int() raised OverflowError
        (b'{"face_id": true, "label": "sad"}', "face_id"),
        (b'{"face_id": 25.7, "label": "sad"}', "face_id"),
        (b'{"face_id": "1", "label": "sad"}', "face_id"),
        (b'{"label": "sad"}', "face_id"),
        (b'{"face_id": 1, "label": 7}', "label"),
        (b"[1, 2]", "face_id"),
        (b"not json", "face_id"),
        (b"[" * 2000 + b"]" * 2000, "face_id"),  # deeper than Python's recursion limit: RecursionError
    ],
)
def test_feedback_takes_only_a_json_integer_face_id(daemon: Daemon, body: bytes, field: str) -> None:
    status, headers, data = daemon.request("POST", "/api/v1/feedback", body, JSON)
    assert status == 400, data
    assert headers["content-type"] == "application/json"
    assert field in json.loads(data)["error"]


@pytest.mark.parametrize(
    "kind", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_feedback_needs_a_json_content_type(daemon: Daemon, kind: str | None) -> None:
    # a browser sends these cross-site without a preflight; the page itself sends application/json
    body = json.dumps({"face_id": 1, "label": "sad"}).encode()
    status, headers, data = daemon.request(
        "POST", "/api/v1/feedback", body, {"Content-Type": kind} if kind else {}
    )
    assert status == 415, data
    assert "application/json" in json.loads(data)["error"]
    page = daemon.request("GET", "/static/app.js")[2].decode()
    assert '"/api/v1/feedback"' in page and '"Content-Type": "application/json"' in page


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "DELETE", "PATCH", "FROB"])
@pytest.mark.parametrize(("path", "allow"), [("/api/v1/feedback", "POST"), ("/api/v1/faces", "GET, HEAD")])
def test_each_unsupported_method_is_a_json_405(daemon: Daemon, method: str, path: str, allow: str) -> None:
    status, headers, data = daemon.request(method, path)
    assert status == 405, data
    assert headers["content-type"] == "application/json" and headers["allow"] == allow
    assert method in json.loads(data)["error"]


@pytest.mark.parametrize("hours", ["nan", "inf", "-inf", "-1", "0", "1e9", "soon"])
def test_history_refuses_hours_that_are_not_a_finite_number_in_range(daemon: Daemon, hours: str) -> None:
    status, headers, data = daemon.request("GET", f"/api/v1/history?hours={hours}")
    assert status == 400, data
    assert "hours" in json.loads(data)["error"]  # and the body is valid JSON
    status, _, data = daemon.request("GET", "/api/v1/history?hours=0.5")
    assert status == 200 and json.loads(data)["hours"] == 0.5


def test_history_hours_past_the_retention_are_capped_at_it(daemon: Daemon) -> None:
    status, _, data = daemon.request("GET", "/api/v1/history?hours=100")
    assert status == 200 and json.loads(data)["hours"] == 24.0  # history.retention_h


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_burst_of_large_images_is_answered_every_time_and_costs_little_memory(daemon: Daemon) -> None:
    image = np.full((2048, 4096, 3), 128, np.uint8)  # 25 MB decoded, a few kB as PNG
    image[:480, :640] = sample_frame()
    png = encode(image, ".png")
    kind = {"Content-Type": "image/png"}
    assert daemon.request("POST", "/api/v1/analyze", png, kind, timeout=60)[0] == 200  # what one image takes
    before = peak_rss_mb(daemon.process.pid)

    def post(_: int) -> int | str:
        try:
            return daemon.request("POST", "/api/v1/analyze", png, kind, timeout=60)[0]
        except OSError as err:  # a connection reset or closed without an answer
            return repr(err)

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(post, range(40)))
    assert set(answers) <= {200, 429} and 200 in answers, answers
    grown = peak_rss_mb(daemon.process.pid) - before
    assert grown < 100, (
        f"the burst raised the daemon's peak memory by {grown:.0f} MB"
    )  # 40 decoded at once: 1 GB


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listening socket's accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    raise AssertionError("no TcpExt ListenOverflows")


def test_a_burst_of_connections_waits_for_the_busy_daemon_instead_of_being_dropped(daemon: Daemon) -> None:
    overflows = listen_overflows()
    answers: list[int | str] = []

    def ask() -> None:
        try:
            answers.append(daemon.request("GET", "/healthz", timeout=30)[0])
        except OSError as err:
            answers.append(repr(err))

    clients = [threading.Thread(target=ask) for _ in range(40)]
    daemon.process.send_signal(signal.SIGSTOP)  # too busy to accept: the connections queue in the kernel
    try:
        for client in clients:
            client.start()
        threading.Event().wait(0.5)  # their handshakes reach the listening socket
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    for client in clients:
        client.join(30)
    assert answers == [200] * 40
    assert listen_overflows() == overflows, "connections were dropped: the listen backlog is too short"


def test_the_sign_in_page_says_when_the_token_is_wrong_and_has_an_icon(daemon: Daemon) -> None:
    status, _, page = daemon.request("GET", "/", token="")
    assert status == 401 and b'rel="icon"' in page and b"wrong" not in page
    status, _, page = daemon.request(
        "POST", "/login", b"token=nope", {"Content-Type": "application/x-www-form-urlencoded"}, token=""
    )
    assert status == 401 and b'name="token"' in page and b"token is wrong" in page


def test_off_loopback_without_a_token_the_daemon_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http.token") as err:
        load_config(environ={}, cli={"http.enabled": True, "http.host": "0.0.0.0"})
    assert "MOODCAST_HTTP__TOKEN" in str(err.value) and "\n" not in str(err.value)
    assert load_config(
        environ={"MOODCAST_HTTP__TOKEN": TOKEN}, cli={"http.enabled": True, "http.host": "0.0.0.0"}
    )
    run = subprocess.run(
        [sys.executable, "-m", "device", "--http-enabled", "--http-host", "0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1 and "http.token" in run.stderr


def test_print_config_masks_the_token() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "device", "--print-config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "MOODCAST_HTTP__TOKEN": TOKEN},
    )  # fmt: skip
    assert run.returncode == 0 and TOKEN not in run.stdout
    assert json.loads(run.stdout)["http.token"] == "***"


def test_room_mood_is_the_share_across_faces_over_the_window() -> None:
    mood = RoomMood(("happy", "sad"), window_s=10)
    mood.observe(0.0, ["happy", "sad"])
    mood.observe(1.0, ["happy", "happy"])
    mood.observe(2.0, [])  # no face: does not count
    assert mood.shares() == {"happy": 0.75, "sad": 0.25} and mood.dominant() == "happy"
    mood.observe(20.0, ["sad"])
    assert mood.shares() == {"happy": 0.0, "sad": 1.0}


def test_discovery_has_a_room_mood_sensor_and_a_face_event_entity() -> None:
    configs = discovery_configs(
        "homeassistant",
        "pi-hall",
        "moodcast/pi-hall/state",
        "moodcast/pi-hall/status",
        "moodcast/pi-hall/events",
    )
    mood = configs["homeassistant/sensor/pi-hall/room_mood/config"]
    assert mood["state_topic"] == "moodcast/pi-hall/state" and "value_json.mood" in mood["value_template"]
    assert mood["json_attributes_topic"] == "moodcast/pi-hall/state"
    event = configs["homeassistant/event/pi-hall/face/config"]
    assert event["state_topic"] == "moodcast/pi-hall/events"
    assert event["event_types"] == ["new", "update", "end"]
    assert "event_type" in event["value_template"] and "confidence" in event["value_template"]
    assert "value_template" in event and "unique_id" in event and "device" in event


def test_the_mqtt_docs_list_every_discovery_topic_and_state_and_event_field() -> None:
    topics = discovery_configs("homeassistant", "DEVICE", "s", "st", "e")
    fields = ('"faces"', '"dominant"', '"fps"', '"camera"', '"mood"', '"mood_shares"', '"run"')
    for doc in (ROOT / "README.md", ROOT / "docs" / "MQTT.md"):
        text = doc.read_text()
        for topic in topics:
            written = topic.replace("/DEVICE/", "/<device_id>/")
            assert f"`{written}`" in text, (doc.name, written)
        for field in fields:
            assert field in text, (doc.name, field)


def test_device_ids_that_home_assistant_cannot_take_as_they_are_keep_apart() -> None:
    """'Pi.Hall' and 'Pi_Hall' (and any two non-ASCII ids of one length) gave one discovery topic, unique id
    and device: the second daemon on a broker hid the first in Home Assistant."""
    ids = ["Pi_Hall", "Pi.Hall", "Pi Hall", "é€", "€é"]
    configs = [discovery_configs("homeassistant", i, f"m/{i}/state", f"m/{i}/status") for i in ids]
    topics = [next(t for t in c if t.endswith("/faces/config")) for c in configs]
    unique_ids = [c[t]["unique_id"] for c, t in zip(configs, topics, strict=True)]
    devices = [c[t]["device"]["identifiers"][0] for c, t in zip(configs, topics, strict=True)]
    assert len(set(topics)) == len(set(unique_ids)) == len(set(devices)) == len(ids), topics
    assert topics[0] == "homeassistant/sensor/Pi_Hall/faces/config"  # a plain id is used as it is


def test_a_failed_feedback_save_is_a_500_and_one_warning_in_the_log(daemon: Daemon) -> None:
    folder = daemon.log_path.parent / "feedback"
    blocker = folder / "fear"  # a file where the label's folder would be: the save cannot write
    folder.mkdir(exist_ok=True)
    blocker.write_text("")
    before = daemon.log_path.read_text().count("\n")
    try:
        deadline = time.monotonic() + 30
        while True:  # until a kept frame holds a face: 404 before that
            faces = daemon.json("/api/v1/faces")["faces"]
            body = json.dumps({"face_id": faces[0]["id"] if faces else 0, "label": "fear"}).encode()
            status, headers, data = daemon.request("POST", "/api/v1/feedback", body, JSON)
            if status != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        blocker.unlink()
    assert status == 500 and headers["content-type"] == "application/json", data
    assert "feedback.dir: cannot write" in json.loads(data)["error"]
    logged = daemon.log_path.read_text().splitlines()[before:]
    warnings = [line for line in logged if " WARNING " in line and "feedback" in line]
    assert len(warnings) == 1 and "fear" in warnings[0] and "feedback.dir" in warnings[0], logged
    assert TOKEN not in "\n".join(logged)
