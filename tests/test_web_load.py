"""Slow: POST /api/v1/analyze at 5 requests a second must not starve the frame loop (fps drops <= 10 %),
and feedback crops feed a tiny ``python -m train --extra-data`` run."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.config import FeedbackConfig
from device.vision.classify import load_card
from device.web.feedback import FeedbackStore
from tests.web_daemon import ROOT, Daemon, encode, sample_frame, start_daemon

pytestmark = pytest.mark.slow
WINDOW_S = 8.0
RATE = 5.0


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path, "--model-threads", "1", realtime=False)
    yield running
    running.stop()


def frames_per_second(daemon: Daemon) -> float:
    before, start = daemon.metric("moodcast_frames_total"), time.monotonic()
    time.sleep(WINDOW_S)
    return (daemon.metric("moodcast_frames_total") - before) / (time.monotonic() - start)


def test_analyze_at_5_per_second_costs_the_frame_loop_at_most_10_percent(daemon: Daemon) -> None:
    image = encode(sample_frame())
    stop = threading.Event()
    answered: list[int] = []

    def one() -> None:
        answered.append(daemon.request("POST", "/api/v1/analyze", image)[0])

    def load() -> None:  # 5 a second whatever the answers take: the server must shed what it cannot do
        next_at = time.monotonic()
        while not stop.is_set():
            threading.Thread(target=one, daemon=True).start()
            next_at += 1.0 / RATE
            stop.wait(max(0.0, next_at - time.monotonic()))

    time.sleep(3)  # past start-up
    idle, loaded = [], []
    for _ in range(2):  # alternate, so a change in the machine's other load hits both alike
        idle.append(frames_per_second(daemon))
        stop.clear()
        worker = threading.Thread(target=load)
        worker.start()
        loaded.append(frames_per_second(daemon))
        stop.set()
        worker.join()
    time.sleep(2)
    assert set(answered) <= {200, 429}, set(answered)  # analysed, or shed at once with Retry-After
    ratio = statistics.mean(loaded) / statistics.mean(idle)
    ok = answered.count(200) / (2 * WINDOW_S)
    print(f"fps idle {idle} loaded {loaded}: loaded/idle {ratio:.3f}; {ok:.1f} analyses/s answered 200, "
          f"{answered.count(429)} shed with 429")  # fmt: skip
    assert answered.count(200) >= len(answered) // 2
    assert ratio >= 0.9, f"fps idle {idle}, with 5 analyses/s {loaded}"


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
