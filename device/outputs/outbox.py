"""The bounded, ordered store of MQTT events waiting for the broker: in memory or in a SQLite file."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from device.errors import ConfigError

logger = logging.getLogger(__name__)


class Outbox(Protocol):
    """Events keyed by ``seq``, oldest first, at most ``max_items`` of them."""

    max_items: int

    def put(self, seq: int, payload: str, keep: Collection[int] = ()) -> list[int]:
        """Add one event; past the bound drop the oldest not in ``keep`` and return the dropped seqs."""
        ...

    def head(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        """The oldest ``count`` events whose seq is not in ``skip``, in seq order."""
        ...

    def remove(self, seq: int) -> bool:
        """Forget one delivered event; False if it was not there."""
        ...

    def last_seq(self) -> int:
        """The highest seq ever put (0 if none), even when that event is gone."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryOutbox:
    """The outbox in memory: lost when the process ends."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[int, str] = OrderedDict()
        self._last_seq = 0
        self._lock = threading.Lock()

    def put(self, seq: int, payload: str, keep: Collection[int] = ()) -> list[int]:
        with self._lock:
            self._items[seq] = payload
            self._last_seq = max(self._last_seq, seq)
            dropped: list[int] = []
            if len(self._items) > self.max_items:
                for old in list(self._items):
                    if old not in keep:
                        del self._items[old]
                        dropped.append(old)
                        if len(self._items) <= self.max_items:
                            break
            return dropped

    def head(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        with self._lock:
            out: list[tuple[int, str]] = []
            for seq, payload in self._items.items():
                if len(out) >= count:
                    break
                if seq not in skip:
                    out.append((seq, payload))
            return out

    def remove(self, seq: int) -> bool:
        with self._lock:
            return self._items.pop(seq, None) is not None

    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        """Nothing to release."""


class SqliteOutbox:
    """The outbox in one SQLite table, so queued events survive a restart of the daemon.

    ``seq INTEGER PRIMARY KEY AUTOINCREMENT`` makes SQLite remember the highest seq ever inserted (in
    ``sqlite_sequence``), which is what :meth:`last_seq` reads after every event has been delivered.
    """

    def __init__(self, path: str | Path, max_items: int) -> None:
        self.max_items = max_items
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox"
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)"
            )
            count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                "mqtt.outbox_path", f"{self.path}: cannot open as an SQLite outbox ({err})", "fix the path"
            ) from None
        if count:
            logger.info("MQTT outbox %s holds %d undelivered events from before", self.path, count)

    def put(self, seq: int, payload: str, keep: Collection[int] = ()) -> list[int]:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO outbox (seq, payload) VALUES (?, ?)", (seq, payload))
            excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_items
            dropped: list[int] = []
            if excess > 0:
                rows = self._db.execute(
                    "SELECT seq FROM outbox ORDER BY seq LIMIT ?", (excess + len(keep),)
                ).fetchall()
                dropped = [row[0] for row in rows if row[0] not in keep][:excess]
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq_,) for seq_ in dropped])
            return dropped

    def head(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (count + len(skip),)
            ).fetchall()
        return [(seq, payload) for seq, payload in rows if seq not in skip][:count]

    def remove(self, seq: int) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount > 0

    def last_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_outbox(path: str, max_items: int) -> MemoryOutbox | SqliteOutbox:
    """A SQLite outbox at ``path``, or one in memory when ``path`` is empty."""
    return SqliteOutbox(path, max_items) if path else MemoryOutbox(max_items)
