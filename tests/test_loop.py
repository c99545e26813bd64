"""device.loop.FrameRate: the frame rate shown on the screen, in the MQTT state and at /metrics."""

from __future__ import annotations

import pytest

from device.loop import FrameRate


def rate_after(intervals_s: list[float]) -> float:
    rate = FrameRate()
    shown = 0.0
    for interval_s in intervals_s:
        shown = rate.update(interval_s)
    return shown


def test_a_steady_clip_shows_its_rate() -> None:
    assert rate_after([1 / 15] * 50) == pytest.approx(15.0)


def test_frames_that_catch_up_after_a_slow_one_do_not_inflate_the_rate() -> None:
    """A 15 fps file in real time: a whole-frame search makes one frame late and the next comes 1 ms after
    it. Averaging 1 / interval showed 107-115 fps for it (and 1090 for a run that took 90 fps)."""
    intervals_s = [0.1323, 0.001] * 40  # two frames every 2 / 15 s
    assert rate_after(intervals_s) == pytest.approx(15.0, rel=0.1)


def test_no_interval_yet_is_no_rate() -> None:
    assert rate_after([]) == 0.0 and rate_after([0.0, -1.0]) == 0.0
