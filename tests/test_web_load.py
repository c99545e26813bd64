"""Slow: POST /api/v1/analyze at 5 requests a second is answered or shed and never starves the frame loop,
and feedback crops feed a tiny ``python -m train --extra-data`` run.

The cost target itself (the loop loses at most 10 %) is a figure for a quiet machine, measured by
``make bench`` (``tools.web_load``), not asserted here: on a shared CI machine it swung from 0.89 to 1.05.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.web_daemon import ROOT, Daemon, start_daemon
from tools.web_load import measure

pytestmark = pytest.mark.slow
STARVED_RATIO = 0.5  # a loop held up behind the analyses falls far below this, whatever the machine's load


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path, "--model-threads", "1", realtime=False)
    yield running
    running.stop()


def test_analyze_at_5_per_second_is_answered_or_shed_and_never_starves_the_frame_loop(daemon: Daemon) -> None:
    result = measure(daemon, rate=5.0, window_s=6.0, rounds=2)
    print(result)
    assert not result["other"], result  # analysed, or shed at once with 429 and Retry-After
    answered = result["answered_200"] + result["shed_429"]
    assert answered >= 0.8 * 5.0 * 2 * 6.0, result  # every request got an answer
    assert result["answered_200"] >= answered // 2, result
    assert min(result["fps_loaded"]) > 0 and result["ratio"] >= STARVED_RATIO, result


def test_corrections_sent_as_the_page_sends_them_feed_a_tiny_training_run(tmp_path: Path) -> None:
    """The page's correction (POST /api/v1/feedback on a live face) saves a crop that ``train --extra-data``
    reads: the household's loop from the screen back to the model."""
    feedback = tmp_path / "feedback"
    daemon = start_daemon(tmp_path / "daemon", "--feedback-enabled", "--feedback-dir", str(feedback))
    try:
        saved = [correct_a_live_face(daemon, label) for label in ("happy", "happy", "sad")]
    finally:
        daemon.stop()
    # One face corrected three times within the kept window (5 s) is one file, under the newest label.
    assert [Path(name).parent.name for name in saved] == ["happy", "happy", "sad"]
    assert len({Path(name).name for name in saved}) == 1
    assert [p.relative_to(feedback).as_posix() for p in feedback.rglob("*.png")] == [saved[-1]]
    out = tmp_path / "run"
    fer_mini = ROOT / "tests" / "fixtures" / "fer-mini"
    run = subprocess.run(
        [sys.executable, "-m", "train", "--data", str(fer_mini), "--extra-data", str(feedback),
         "--out", str(out), "--epochs", "1", "--width", "8", "--precision", "float32", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((out / "training.json").read_text())["extra_faces"] == 1


def correct_a_live_face(daemon: Daemon, label: str, timeout_s: float = 30.0) -> str:
    """Send the page's correction for the first face on screen; the saved crop's path in the feedback dir.
    A face shows in /faces with its first event, maybe before a kept frame has it (404): try again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        faces = daemon.json("/api/v1/faces")["faces"]
        if faces:
            body = json.dumps({"face_id": faces[0]["id"], "label": label}).encode()
            status, _, data = daemon.request(
                "POST", "/api/v1/feedback", body, {"Content-Type": "application/json"}
            )
            if status == 201:
                return str(json.loads(data)["saved"])
            assert status == 404, (status, data)
        time.sleep(0.3)
    raise AssertionError(f"no correction saved in {timeout_s} s: {daemon.log_path.read_text()[-2000:]}")
