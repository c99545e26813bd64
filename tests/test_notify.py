"""sd_notify: the daemon tells systemd READY=1 once up and WATCHDOG=1 from its frame loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # 1.6-4 s on an idle 2-core machine: make test-slow
def test_ready_and_watchdog_messages(tmp_path, shipped_model):
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"}
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "device",
            "--input",
            str(ROOT / "samples" / "one-face.mp4"),
            "--realtime",
            "--camera-max-frames",
            "45",
            "--model-path",
            str(shipped_model),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    try:
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
    finally:
        _, stderr = daemon.communicate(timeout=60)
        listener.close()
    assert daemon.returncode == 0, stderr
    assert messages[0] == "READY=1"
    # 45 frames at 15 fps take 3 s; with a 0.1 s watchdog the loop pings many times.
    assert messages.count("WATCHDOG=1") >= 10
    assert messages.index("STOPPING=1") > messages.index("READY=1")
