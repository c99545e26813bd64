"""A real ``python -m device`` with HTTP on, for the web tests and the web-load benchmark: started on a sample
video, stopped cleanly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ONE_FACE = ROOT / "samples" / "one-face.mp4"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the tests' servers and daemons use it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample_frame(index: int = 45, video: Path = ONE_FACE) -> np.ndarray:
    """One frame of a sample video (BGR)."""
    capture = cv2.VideoCapture(str(video))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"{video}: no frame {index}"
        return frame
    finally:
        capture.release()


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    events_path: Path
    token: str = ""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        token = self.token if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def json(self, path: str) -> Any:
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def events(self) -> list[dict[str, Any]]:
        text = self.events_path.read_text() if self.events_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def metric(self, name: str) -> float:
        _, _, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def stop(self) -> str:
        terminate(self.process)
        return self.log_path.read_text()


def terminate(process: subprocess.Popen[AnyStr], timeout_s: float = 20.0) -> None:
    """Stop a daemon as systemd does: SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_daemon(tmp: Path, *args: str, token: str = "", realtime: bool = True) -> Daemon:
    """Start the daemon on the one-face clip (looping), HTTP on a free loopback port; wait till healthy."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log_path, events_path = tmp / "daemon.log", tmp / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODCAST_")}
    if token:
        env["MOODCAST_HTTP__TOKEN"] = token
    command = [
        sys.executable, "-m", "device", "--input", str(ONE_FACE), "--camera-loop",
        "--realtime" if realtime else "--no-realtime", "--http-enabled", "--http-port", str(port),
        "--events", str(events_path), "--history-path", str(tmp / "history.sqlite"), *args,
    ]  # fmt: skip
    log = log_path.open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    daemon = Daemon(process, port, log_path, events_path, token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited {process.returncode}: {log_path.read_text()}")
        try:
            if daemon.request("GET", "/healthz", timeout=2)[0] == 200:
                return daemon
        except OSError:
            pass
        time.sleep(0.3)
    daemon.stop()
    raise AssertionError(f"the daemon never became healthy: {log_path.read_text()}")
