"""Benchmark: what ``POST /api/v1/analyze`` at a steady request rate costs the daemon's frame loop.

Starts the real daemon on the one-face sample (looping, not realtime, one model thread, HTTP on loopback) and
alternates windows without and with the load, so a change in the machine's other work hits both alike. Reports
the frame loop's fps in each window, the loaded/idle ratio (target >= 0.9: the analyses cost the loop at most
10 %), and how many requests were answered 200 or shed with 429. A figure measured on a shared machine; run it
with nothing else working.

    python -m tools.web_load --out runs/bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from device.console import print_out
from tools.web_daemon import Daemon, encode, sample_frame, start_daemon

TARGET_RATIO = 0.9


def frames_per_second(daemon: Daemon, window_s: float) -> float:
    """The frame loop's rate over ``window_s`` seconds, from the ``moodcast_frames_total`` counter."""
    before, start = daemon.metric("moodcast_frames_total"), time.monotonic()
    time.sleep(window_s)
    return (daemon.metric("moodcast_frames_total") - before) / (time.monotonic() - start)


class SteadyLoad:
    """POST one image to ``/api/v1/analyze`` ``rate`` times a second, each on its own thread, whatever the
    answers take (the server must shed what it cannot do); collects the status codes."""

    def __init__(self, daemon: Daemon, image: bytes, rate: float) -> None:
        self.daemon, self.image, self.rate = daemon, image, rate
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def _one(self) -> None:
        self.statuses.append(self.daemon.request("POST", "/api/v1/analyze", self.image)[0])

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            threading.Thread(target=self._one, daemon=True).start()
            next_at += 1.0 / self.rate
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> SteadyLoad:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run)
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join()


def measure(daemon: Daemon, rate: float, window_s: float, rounds: int) -> dict[str, Any]:
    """Alternate ``rounds`` idle and loaded windows; return fps lists, the ratio and the answers."""
    load = SteadyLoad(daemon, encode(sample_frame()), rate)
    time.sleep(3)  # past start-up
    idle, loaded = [], []
    for _ in range(rounds):
        idle.append(frames_per_second(daemon, window_s))
        with load:
            loaded.append(frames_per_second(daemon, window_s))
    time.sleep(2)  # the last answers
    return {
        "rate_per_s": rate,
        "window_s": window_s,
        "fps_idle": idle,
        "fps_loaded": loaded,
        "ratio": statistics.mean(loaded) / statistics.mean(idle),
        "answered_200": load.statuses.count(200),
        "shed_429": load.statuses.count(429),
        "other": sorted({s for s in load.statuses if s not in (200, 429)}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.web_load", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="writes web-load.json here")
    parser.add_argument("--rate", type=float, default=5.0, help="analyses a second (default 5)")
    parser.add_argument("--window-s", type=float, default=8.0, help="seconds in each window (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="idle/loaded pairs (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = start_daemon(Path(tmp), "--model-threads", "1", realtime=False)
        try:
            result = measure(daemon, args.rate, args.window_s, args.rounds)
        finally:
            daemon.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web-load.json").write_text(json.dumps(result, indent=2) + "\n")
    met = "met" if result["ratio"] >= TARGET_RATIO else "NOT met"
    print_out(
        f"analyze at {args.rate:g}/s: frame loop {statistics.mean(result['fps_loaded']):.1f} fps loaded vs "
        f"{statistics.mean(result['fps_idle']):.1f} idle, ratio {result['ratio']:.3f} "
        f"(target >= {TARGET_RATIO}: {met}); {result['answered_200']} answered 200, "
        f"{result['shed_429']} shed with 429",
        "web_load",
    )  # a summary of web-load.json: a reader gone leaves the status as it is
    return 0 if not result["other"] else 1


if __name__ == "__main__":
    sys.exit(main())
