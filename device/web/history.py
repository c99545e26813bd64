"""The page's 24 h history: a small SQLite store of labels, confidences and times (never images)."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from typing import Any

from device.const import HISTORY_BUCKET_S, HISTORY_PRUNE_S, HISTORY_WARN_EVERY_S

logger = logging.getLogger(__name__)


class HistoryStore:
    """One row per face per sample: ``(ts, face_id, emotion, confidence)``; rows older than
    ``retention_h``, and rows more than a bucket ahead of the clock (written while the clock was ahead: a Pi
    without a real-time clock, corrected later), are deleted at open and every ``prune_interval_s``
    (seconds), written to or not. Writes go
    through a queue to the thread 'history', so the frame loop never waits for the disk; reads (the page) take
    the lock. A failing write (disk full) is logged once, again at most every HISTORY_WARN_EVERY_S, and once
    when writing works again."""

    def __init__(
        self,
        path: str,
        retention_h: float,
        labels: tuple[str, ...],
        prune_interval_s: float = HISTORY_PRUNE_S,
    ) -> None:
        """Open (or create) the SQLite file ``path`` ('' for memory) and prune it; ConfigError
        (history.path) when it cannot be opened."""
        self.path = path or ":memory:"
        self.retention_h = retention_h
        self.prune_interval_s = prune_interval_s
        self._lock = threading.Lock()
        self.labels = labels
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS samples (ts REAL NOT NULL, "
                "face_id INTEGER NOT NULL, emotion TEXT NOT NULL, confidence REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts)")
            self._prune()
            self._db.commit()
        except sqlite3.Error as err:
            from device.errors import ConfigError

            raise ConfigError(
                "history.path", f"{path}: cannot be opened as SQLite ({err})", "fix the path"
            ) from None
        self._failing_since: float | None = None  # monotonic seconds of the first failed write of a run
        self._warned_at = 0.0
        self._lost = 0
        self._writes: queue.SimpleQueue[list[tuple[float, int, str, float]] | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._write_loop, name="history", daemon=True)
        self._thread.start()

    def add(self, rows: list[tuple[float, int, str, float]]) -> None:
        """Queue ``(epoch seconds, face id, emotion, confidence)`` rows for writing."""
        if rows:
            self._writes.put(rows)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        done = threading.Event()
        self._writes.put(done)
        done.wait(timeout_s)

    def _prune(self) -> None:
        now = time.time()
        self._db.execute(
            "DELETE FROM samples WHERE ts < ? OR ts > ?",
            (now - self.retention_h * 3600.0, now + HISTORY_BUCKET_S),
        )

    def _write_loop(self) -> None:
        pruned_at = time.monotonic()
        while True:
            wait_s = max(0.0, pruned_at + self.prune_interval_s - time.monotonic())
            try:
                item = self._writes.get(timeout=wait_s)
            except queue.Empty:  # time to prune, with nothing to write
                item = []
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            prune = time.monotonic() - pruned_at >= self.prune_interval_s
            try:
                with self._lock:
                    self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", item)
                    if prune:
                        self._prune()
                    self._db.commit()
            except sqlite3.Error as err:
                self._failed(err, len(item))
            else:
                self._recovered()
            if prune:
                pruned_at = time.monotonic()

    def _failed(self, err: sqlite3.Error, rows: int) -> None:
        self._lost += rows
        now = time.monotonic()
        if self._failing_since is None or now - self._warned_at >= HISTORY_WARN_EVERY_S:
            logger.warning(
                "history: cannot write %s (%s); the page's history misses samples (%d so far) until it can",
                self.path, err, self._lost,
            )  # fmt: skip
            self._warned_at = now
        if self._failing_since is None:
            self._failing_since = now

    def _recovered(self) -> None:
        if self._failing_since is None:
            return
        logger.info(
            "history: writing %s again after %.0f s; %d samples were lost",
            self.path, time.monotonic() - self._failing_since, self._lost,
        )  # fmt: skip
        self._failing_since, self._lost = None, 0

    def buckets(self, now_s: float, hours: float = 24.0) -> dict[str, Any]:
        """Each HISTORY_BUCKET_S bucket of the last ``hours`` up to ``now_s`` (at most the retention, which
        the answer's ``hours`` then says): its start, the faces seen and each emotion's share of samples."""
        hours = min(hours, self.retention_h)
        since = now_s - hours * 3600.0
        with self._lock:
            counts = self._db.execute(
                "SELECT CAST(ts / ? AS INTEGER) AS b, emotion, COUNT(*) FROM samples "
                "WHERE ts >= ? AND ts <= ? GROUP BY b, emotion",
                (HISTORY_BUCKET_S, since, now_s),
            ).fetchall()
            faces = dict(
                self._db.execute(
                    "SELECT CAST(ts / ? AS INTEGER) AS b, COUNT(DISTINCT face_id) FROM samples "
                    "WHERE ts >= ? AND ts <= ? GROUP BY b",
                    (HISTORY_BUCKET_S, since, now_s),
                ).fetchall()
            )
        by_bucket: dict[int, dict[str, int]] = {}
        for bucket, emotion, count in counts:
            by_bucket.setdefault(bucket, {})[emotion] = count
        rows = []
        for bucket in sorted(by_bucket):
            total = sum(by_bucket[bucket].values())
            rows.append(
                {
                    "start": bucket * HISTORY_BUCKET_S,
                    "faces": faces.get(bucket, 0),
                    "shares": {
                        label: round(by_bucket[bucket].get(label, 0) / total, 3) for label in self.labels
                    },
                }
            )
        return {"bucket_s": HISTORY_BUCKET_S, "hours": hours, "labels": list(self.labels), "buckets": rows}

    def close(self) -> None:
        """Write what is queued, then close the database."""
        self._writes.put(None)
        self._thread.join(timeout=5.0)
        with self._lock:
            self._db.close()
