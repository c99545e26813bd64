"""The web page's stores on real files and frames: the history's retention and its disk-full warning, the
feedback store under a frame loop that keeps appending, and a feedback folder that cannot be written."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device.config import FeedbackConfig
from device.const import SERIES_S
from device.errors import ConfigError
from device.outputs.mood import RoomMood
from device.paths import temp_name
from device.vision.preprocess import CropSpec
from device.web.analyze import AnalyzeError
from device.web.dashboard import Dashboard
from device.web.feedback import FeedbackStore
from device.web.history import HistoryStore
from tools.web_daemon import ROOT, sample_frame
from train.data import load_extra

LABELS = ("happy", "sad")


def rows_older_than(path: Path, ts: float) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM samples WHERE ts < ?", (ts,)).fetchone()[0])


def test_history_past_the_retention_is_pruned_at_open(tmp_path: Path) -> None:
    path, now = tmp_path / "history.sqlite", time.time()
    store = HistoryStore(str(path), 24.0, LABELS)
    store.add([(now - 3 * 3600, 1, "happy", 0.9), (now - 60, 2, "sad", 0.8)])
    store.flush()
    store.close()
    assert rows_older_than(path, now - 3600) == 1
    store = HistoryStore(str(path), 1.0, LABELS)  # retention lowered: pruned before any write
    try:
        assert rows_older_than(path, now - 3600) == 0 and rows_older_than(path, now) == 1
    finally:
        store.close()


def test_history_written_while_the_clock_was_ahead_is_not_shown_and_is_pruned(tmp_path: Path) -> None:
    """A Pi without a real-time clock can write rows dated days ahead before its clock is corrected: they are
    no part of the page's last 24 h and go at the next prune (they outlived the retention before)."""
    path, now = tmp_path / "history.sqlite", time.time()
    store = HistoryStore(str(path), 24.0, LABELS)
    store.add([(now + 2 * 86400, 1, "happy", 0.9), (now - 60, 2, "sad", 0.8)])
    store.flush()
    buckets = store.buckets(now, 24.0)["buckets"]
    store.close()
    assert [bucket["shares"] for bucket in buckets] == [{"happy": 0.0, "sad": 1.0}]
    store = HistoryStore(str(path), 24.0, LABELS)  # pruned at open
    try:
        assert rows_older_than(path, now + 3 * 86400) == 1
    finally:
        store.close()


def test_the_page_keeps_sampling_after_a_clock_that_ran_ahead_is_set_back(tmp_path: Path) -> None:
    """A day ahead, then corrected: the history gets the corrected samples at once (not a day later), and the
    live series keep only what was observed before the corrected time (they grew without bound before)."""
    store = HistoryStore(str(tmp_path / "history.sqlite"), 24.0, LABELS)
    dashboard = Dashboard(LABELS, RoomMood(LABELS, 60.0), store)
    try:
        now = time.time()
        for second in range(120):  # two minutes a day ahead
            dashboard.observe(now + 86400 + second, [(1, "happy", [0.9, 0.1])])
        for second in range(0, 600, 5):  # ten minutes at the corrected time
            dashboard.observe(now + second, [(1, "sad", [0.2, 0.8])])
        store.flush()
        buckets = store.buckets(now + 600, 1.0)["buckets"]
        assert sum(bucket["shares"]["sad"] for bucket in buckets) >= 1
        series = dashboard.mood_json()["series"]
        assert all(t <= now + 600 for t, _faces, _shares in series)
        assert len(series) <= 1 + SERIES_S // 5
    finally:
        dashboard.close()


def test_history_is_pruned_on_a_timer_without_writes(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(str(path), 1.0, LABELS, prune_interval_s=0.1)
    try:
        store.add([(time.time() - 3600 + 0.3, 1, "happy", 0.9)])  # past the retention 0.3 s from now
        store.flush()
        deadline = time.monotonic() + 5
        while rows_older_than(path, time.time()) and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        assert rows_older_than(path, time.time()) == 0
        assert store.buckets(time.time(), 24.0)["hours"] == 1.0  # asked past the retention: capped
    finally:
        store.close()


def test_a_full_disk_is_logged_once_and_again_when_writing_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore(str(tmp_path / "history.sqlite"), 24.0, LABELS)
    with store._lock:  # a full disk, as SQLite reports it (SQLITE_FULL): no page past the current ones
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
    now = time.time()
    try:
        with caplog.at_level(logging.INFO, logger="device.web.history"):
            for batch in range(20):  # the frame loop's every-5-s samples
                store.add([(now + batch, face, "happy", 0.9) for face in range(500)])
            store.flush()
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "cannot write" in warnings[0] and "full" in warnings[0], warnings
            with store._lock:
                store._db.execute("PRAGMA max_page_count = 1073741823")
            store.add([(now, 1, "sad", 0.5)])
            store.flush()
        infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert len(infos) == 1 and "again" in infos[0] and "10000 samples were lost" in infos[0], infos
    finally:
        store.close()


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


SAVE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from device.config import FeedbackConfig
from device.vision.preprocess import CropSpec
from device.web.analyze import AnalyzeError
from device.web.feedback import FeedbackStore
from tools.web_daemon import sample_frame

store = FeedbackStore(FeedbackConfig(enabled=True, dir=Path(sys.argv[1])), CropSpec(), ("happy", "sad"))
store.keep(sample_frame()[:120, :160], {1: (10, 10, 60, 60)})
resource.setrlimit(resource.RLIMIT_FSIZE, (128, 128))  # as `ulimit -f`; this 48x48 PNG is 370 bytes
try:
    store.save(1, "sad")
except AnalyzeError as err:
    print(int(err.status), err.message)
else:
    print(201)
"""


def test_a_failed_feedback_write_is_a_500_and_leaves_no_file(tmp_path: Path) -> None:
    """A write cut short (here a file-size limit, as a full disk would) is answered 500, and no half PNG is
    left where ``python -m train --extra-data`` would stop at it: cv2.imwrite had said it was saved."""
    folder = tmp_path / "feedback"
    child = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_A_FILE_SIZE_LIMIT, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("500 feedback.dir: cannot write"), child.stdout
    assert "File too large" in child.stdout, child.stdout
    assert [p for p in folder.rglob("*") if p.is_file()] == []


def test_a_leftover_temporary_feedback_file_is_not_read_as_a_face(tmp_path: Path) -> None:
    """A power cut between write and rename leaves ``temp_name(path)``: train's loader skips it."""
    store = FeedbackStore(FeedbackConfig(enabled=True, dir=tmp_path / "feedback"), CropSpec(), LABELS)
    store.keep(sample_frame()[:120, :160], {1: (10, 10, 60, 60)})
    path = store.save(1, "happy")
    shutil.copyfile(path, temp_name(path.with_name("next.png")))
    temp_name(path.with_name("half.png")).write_bytes(path.read_bytes()[:100])
    extra = load_extra(tmp_path / "feedback")
    assert extra.names == (f"happy/{path.name}",)


def test_a_face_corrected_again_on_the_same_kept_frame_is_one_file_under_the_newest_label(
    tmp_path: Path,
) -> None:
    """20 picks for one face on one kept frame, alternating, had left 20 files (10 identical in each folder),
    all trained on. A mis-pick is corrected by picking again, on a newer frame too: the newest label wins."""
    folder, counted = tmp_path / "feedback", []
    store = FeedbackStore(
        FeedbackConfig(enabled=True, dir=folder), CropSpec(), LABELS, on_saved=lambda: counted.append(1)
    )
    store.keep(sample_frame()[:120, :160], {1: (10, 10, 60, 60), 2: (70, 40, 50, 50)})
    names = {store.save(1, label).name for label in ("happy", "sad") * 10}
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert len(names) == 1 and files == [f"sad/{names.pop()}"]
    assert store.save(1, "sad").parent.name == "sad" and store.save(2, "happy").parent.name == "happy"
    store.keep(sample_frame()[:120, :160], {1: (12, 10, 60, 60)})  # a newer frame, the last save's still kept
    store.save(1, "happy")  # a mis-pick corrected a moment later: still one file, from the newest frame
    assert sorted(p.parent.name for p in folder.rglob("*.png")) == ["happy", "happy"]
    assert store.saved == len(counted) == 2  # what /metrics counts: faces, not requests


def test_a_face_kept_longer_ago_than_the_window_is_not_in_view(tmp_path: Path) -> None:
    """In an empty room no frame was kept, so the last ones with faces stayed: a face gone 20 s was saved."""
    store = FeedbackStore(
        FeedbackConfig(enabled=True, dir=tmp_path / "feedback"), CropSpec(), LABELS, kept_s=0.5
    )
    frame = sample_frame()[:120, :160]
    store.keep(frame, {1: (10, 10, 60, 60)})
    store.keep(frame, {})  # the face left; the frame loop goes on
    assert store.save(1, "sad").is_file()  # within the window
    time.sleep(0.6)
    with pytest.raises(AnalyzeError, match="face 1 is not in view") as err:
        store.save(1, "happy")
    assert err.value.status == 404
    store.keep(frame, {})
    assert not store._frames  # dropped, not only skipped: the memory goes too
