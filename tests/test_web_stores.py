"""The web page's feedback store on real frames: under a frame loop that keeps appending, and with a folder
that cannot be written."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.config import FeedbackConfig
from device.errors import ConfigError
from device.vision.preprocess import CropSpec
from device.web.analyze import AnalyzeError
from device.web.feedback import FeedbackStore
from tools.web_daemon import sample_frame

LABELS = ("happy", "sad")


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond, so a race shows in a short run."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fast_switching")
def test_feedback_looks_through_the_kept_frames_while_the_loop_keeps_more(tmp_path: Path) -> None:
    store = FeedbackStore(FeedbackConfig(enabled=True, dir=tmp_path / "feedback"), CropSpec(), LABELS)
    frame = sample_frame()[:120, :160]
    stop = threading.Event()

    def frame_loop() -> None:
        while not stop.is_set():
            store.keep(frame, {1: (10, 10, 60, 60)})

    loop = threading.Thread(target=frame_loop)
    loop.start()
    try:
        for _ in range(2000):  # a face that is not in view: every kept frame is looked through
            with pytest.raises(AnalyzeError, match="not in view"):
                store.save(99, "sad")
        assert store.save(1, "sad").is_file()
    finally:
        stop.set()
        loop.join(5)


def test_a_feedback_dir_that_cannot_be_made_is_refused_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^feedback\.dir: .*a-file/feedback: cannot write there"):
        FeedbackStore(FeedbackConfig(enabled=True, dir=blocker / "feedback"), CropSpec(), LABELS)
