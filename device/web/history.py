"""The page's 24 h history: a small SQLite store of labels, confidences and times (never images)."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from typing import Any

from device.const import HISTORY_BUCKET_S

logger = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 60.0


class HistoryStore:
    """One row per face per sample: ``(ts, face_id, emotion, confidence)``; rows older than
    ``retention_h`` are deleted. Writes go through a queue to the thread 'history', so the frame loop never
    waits for the disk; reads (the page) take the lock."""

    def __init__(self, path: str, retention_h: float, labels: tuple[str, ...]) -> None:
        self.path = path or ":memory:"
        self.retention_s = retention_h * 3600.0
        self.labels = labels
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS samples (ts REAL NOT NULL, "
                "face_id INTEGER NOT NULL, emotion TEXT NOT NULL, confidence REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts)")
            self._db.commit()
        except sqlite3.Error as err:
            from device.errors import ConfigError

            raise ConfigError(
                "history.path", f"{path}: cannot be opened as SQLite ({err})", "fix the path"
            ) from None
        self._pruned_at = 0.0
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

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                with self._lock:
                    self._db.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", item)
                    now = time.time()
                    if now - self._pruned_at >= PRUNE_INTERVAL_S:
                        self._db.execute("DELETE FROM samples WHERE ts < ?", (now - self.retention_s,))
                        self._pruned_at = now
                    self._db.commit()
            except sqlite3.Error as err:
                logger.warning(
                    "history: cannot write %s (%s); the page's history misses these samples", self.path, err
                )

    def buckets(self, now_s: float, hours: float = 24.0) -> dict[str, Any]:
        """Each HISTORY_BUCKET_S bucket of the last ``hours``: its start, the faces seen and each
        emotion's share of the samples."""
        since = now_s - hours * 3600.0
        with self._lock:
            counts = self._db.execute(
                "SELECT CAST(ts / ? AS INTEGER) AS b, emotion, COUNT(*) FROM samples WHERE ts >= ? "
                "GROUP BY b, emotion",
                (HISTORY_BUCKET_S, since),
            ).fetchall()
            faces = dict(
                self._db.execute(
                    "SELECT CAST(ts / ? AS INTEGER) AS b, COUNT(DISTINCT face_id) FROM samples WHERE ts >= ? "
                    "GROUP BY b",
                    (HISTORY_BUCKET_S, since),
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
