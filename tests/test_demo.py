"""``make demo``: its exit status is the daemon's, and it never presents a previous run's output as new."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_failed_demo_fails_and_leaves_no_stale_or_empty_output(tmp_path: Path) -> None:
    """A failed demo must not present the previous run's video as new, nor the empty events.jsonl that tee
    created before the daemon refused to start."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "annotated.mp4").write_bytes(b"the previous run's video")
    missing = tmp_path / "missing.mp4"
    result = subprocess.run(
        ["make", "-s", "demo", f"VIDEO={missing}", f"OUT={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "annotated video:" not in result.stdout
    assert not (out / "annotated.mp4").exists()
    assert not (out / "events.jsonl").exists()
    assert str(missing) in result.stderr


def test_the_readme_check_config_command_works_on_a_fresh_clone() -> None:
    import re
    import sys

    readme = (ROOT / "README.md").read_text()
    (line,) = re.findall(r"^\.venv/bin/moodcast (--config \S+ .*--check-config)", readme, re.MULTILINE)
    result = subprocess.run(
        [sys.executable, "-m", "device", *line.split()], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_bare_make_lists_the_targets() -> None:
    """`make help` did not exist, and a bare `make` only built the daemon's virtual environment."""
    result = subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    targets = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"help", "setup", "demo", "test", "test-slow", "train", "convert", "bench", "deploy"} <= targets


def test_a_bare_make_lists_every_phony_target() -> None:
    """README: `make` lists every target. Its pattern took no digit, so `arm64-check` was missing, and `clean`
    had no description."""
    phony: set[str] = set()
    for makefile in (ROOT / "Makefile", ROOT / "deploy" / "deploy.mk"):
        for line in makefile.read_text().splitlines():
            if line.startswith(".PHONY:"):
                phony |= set(line.split(":", 1)[1].split())
    result = subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    targets = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert phony and phony <= targets, sorted(phony - targets)
