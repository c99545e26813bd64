"""make arm64-check: the Pi install in an arm64 Debian root under qemu; its events match this machine's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.required import missing

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_arm64_install_runs_the_daemon_with_the_same_events() -> None:
    # Builds .cache/arm64-bookworm/ on the first run (about 8 minutes), then reuses it.
    if os.geteuid() != 0:
        missing("make arm64-check needs root (debootstrap, chroot and mounts)")
    for tool, package in (("debootstrap", "debootstrap"), ("qemu-aarch64-static", "qemu-user-static")):
        if shutil.which(tool) is None:
            missing(f"{tool} not found: apt-get install {package}")
    proc = subprocess.run(
        ["bash", "deploy/arm64-check.sh"],
        cwd=REPO,
        env={**os.environ, "ARM64_HOST_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=2700,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "aarch64" in output
    assert "vs arm64 on samples/one-face.mp4: PASS" in output, output[-4000:]
