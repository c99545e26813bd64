"""Slow: POST /api/v1/analyze at 5 requests a second is answered or shed and never starves the frame loop,
and feedback crops feed a tiny ``python -m train --extra-data`` run.

The cost target itself (the loop loses at most 10 %) is a figure for a quiet machine, measured by
``make bench`` (``tools.web_load``), not asserted here: on a shared CI machine it swung from 0.89 to 1.05.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.config import FeedbackConfig
from device.vision.classify import load_card
from device.web.feedback import FeedbackStore
from tools.web_daemon import ROOT, Daemon, sample_frame, start_daemon
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


def test_feedback_crops_feed_a_tiny_training_run(tmp_path: Path) -> None:
    card = load_card(ROOT / "models" / "emotion-int8.json")
    store = FeedbackStore(FeedbackConfig(enabled=True, dir=tmp_path / "feedback"), card.crop, card.labels)
    frame = sample_frame()
    store.keep(frame, {1: (432, 104, 140, 140)})
    for label in ("happy", "happy", "sad"):
        store.save(1, label)
    out = tmp_path / "run"
    fer_mini = ROOT / "tests" / "fixtures" / "fer-mini"
    run = subprocess.run(
        [sys.executable, "-m", "train", "--data", str(fer_mini), "--extra-data", str(tmp_path / "feedback"),
         "--out", str(out), "--epochs", "1", "--width", "8", "--precision", "float32", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((out / "training.json").read_text())["extra_faces"] == 3
