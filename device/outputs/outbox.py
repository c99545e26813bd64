"""The bounded, ordered store of MQTT events waiting for the broker: in memory or in a SQLite file."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Protocol

from device.config import folder_problem
from device.const import (
    OUTBOX_BUSY_TIMEOUT_S,
    OUTBOX_WAL_LIMIT_BYTES,
    OUTBOX_WAL_PAGES,
    SEQ_FILE_DIGITS,
    STORE_RETRY_S,
)
from device.errors import ConfigError
from device.paths import file_size_limit_bytes, write_whole

logger = logging.getLogger(__name__)

OUTBOX_FIX = "give a file path in a folder the daemon can write"
CARD_FIX = "check the SD card (the kernel log, dmesg) and replace it if it fails"
LOCK_FIX = "another program holds the file in a transaction (an sqlite3 shell?); end it or close it"


class Outbox(Protocol):
    """Events keyed by ``seq``, oldest first, at most ``max_items`` of them."""

    max_items: int
    lost: int  # undelivered events given up: in a damaged or unreadable outbox file, in memory at close
    damaged_files: int  # damaged outbox files moved aside at start
    close_problem: str  # why close() lost events, and what to do; "" when it lost none

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

    def close(self) -> int:
        """Release the store; return how many undelivered events are lost with it that its file would have
        kept (also counted in ``lost``): the caller reports them."""
        ...


class MemoryOutbox:
    """The outbox in memory: lost when the process ends."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.lost = 0
        self.damaged_files = 0
        self.close_problem = ""
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
            return _first(self._items.items(), count, skip)

    def remove(self, seq: int) -> bool:
        with self._lock:
            return self._items.pop(seq, None) is not None

    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> int:
        """Nothing to release; 0: no file would have kept the events (the caller says they are lost)."""
        return 0


class SqliteOutbox:
    """The outbox in one SQLite table, so queued events survive a restart of the daemon.

    ``seq INTEGER PRIMARY KEY AUTOINCREMENT`` makes SQLite remember the highest seq ever inserted (in
    ``sqlite_sequence``), which is what :meth:`last_seq` reads after every event has been delivered. The
    highest seq, the oldest one waiting and the highest the file took are also kept apart from the queue, in
    ``<path>.seq`` ("<last> <oldest> <stored>", 0 for none), so that numbering never goes back when the queue
    file is emptied, deleted or found damaged, and so that events lost with the file's last writes (a power
    cut: the WAL kept in part) are counted at the next start (:meth:`_count_lost_writes`). A damaged file (not
    a database, or cut short by a power loss) is moved aside to ``<path>.damaged-<time>`` and an empty outbox
    takes its place (an empty file too, while ``.seq`` says events were waiting: SQLite takes it for an empty
    database): ``lost`` counts its undelivered events, now gone: those still readable in it or, when none can
    be read, ``last - oldest + 1`` from the ``.seq`` file (an estimate: deliveries since its last write are
    not in it), none when it says none was waiting (an older daemon's, with the highest only, says nothing of
    that); the ``.seq`` file then says that none is waiting, for they are counted. So does a :meth:`close`
    with the file given up (below): it counted the events in memory as lost, the give-up those in the file,
    and a start that finds the file damaged must not count them again.

    A write that fails while running (a full disk: "database or disk is full"; a card remounted read-only:
    "disk I/O error") never raises: the events that cannot be stored wait in memory, after those in the
    file and within the same bound, and the delivered or dropped ones that cannot be deleted are
    remembered as gone. One WARNING says so, with what to do for SQLite's error (``write_fix``); a
    :meth:`put` tries to write them again once ``STORE_RETRY_S`` has passed since the last try (each try
    writes them all), and one INFO line says when that worked.

    A file that cannot be read while running (an I/O error from a failing card, the file overwritten under
    the daemon) never raises either: the events waiting in it are given up, counted in ``lost`` (but those
    handed out by :meth:`head` and not yet removed, which wait in memory from then on), new events wait in
    memory within the same bound and are handed out in seq order, and one WARNING says so. The file is
    tried again as a full one is (and at :meth:`close`); once that works the given-up events are deleted
    from it (a jump in seq, as for any drop) and the events in memory are stored, with one INFO line. A file
    that reads again only after a restart still holds them: they are delivered then, late.
    """

    def __init__(self, path: str | Path, max_items: int) -> None:
        self.max_items = max_items
        self.path = Path(path)
        self.seq_path = self.path.with_name(self.path.name + ".seq")
        self.lost = 0  # undelivered events in a damaged file that was moved aside
        self.damaged_files = 0
        self.close_problem = ""
        self._lock = threading.Lock()
        self._seq_write_failed = False
        self._unstored: OrderedDict[int, str] = OrderedDict()  # events the file could not take, oldest first
        self._gone: set[int] = set()  # delivered or dropped events still in the file: DELETE failed
        self._handed_out: dict[int, str] = {}  # events head() gave, not yet removed or dropped
        self._given_up: int | None = None  # the file unreadable: its events up to this seq are given up
        self._store_failed = False
        self._store_tried_at = 0.0  # time.monotonic() of the last failed write
        self._seq_in_place_since: float | None = None  # <path>.seq written in place: no whole write worked
        try:
            problem = outbox_path_problem(self.path)  # before mkdir, which fails on a read-only card
            if problem:  # never taken for damage: moving it aside would move a folder or fail again
                raise ConfigError("mqtt.outbox_path", problem, OUTBOX_FIX)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # what <path>.seq holds, read before _move_aside, which counts by it
            self._written = self._read_seq_file()
            self._saved_seq, self._oldest, stored = self._written
            self._stored_seq = 0  # the highest seq the file took: its sqlite_sequence, once opened
            existed = self.path.exists()
            try:
                if self._cut_to_nothing():
                    raise sqlite3.DatabaseError("empty (0 bytes), cut short")
                self._db, count = self._open()
            except sqlite3.DatabaseError as err:  # not a database, or malformed: keep the daemon running
                if not _is_damage(err):  # a full disk, an I/O error: the file may be whole
                    raise
                self._move_aside(err)
                self._db, count = self._open()
                self._save_marks(0)  # its events are counted lost: a next start must not count them again
            self._rows = count  # rows in the file when last counted or written: what a give-up counts
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            self._stored_seq = int(row[0]) if row else 0
            self._saved_seq = max(self._stored_seq, self._saved_seq)
            if existed and not self.damaged_files:
                self._count_lost_writes(stored)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                "mqtt.outbox_path",
                f"{self.path}: cannot open as an SQLite outbox ({err})",
                LOCK_FIX if _is_lock(err) else "fix the path",  # the path is right: another program holds it
            ) from None
        if count:
            logger.info("MQTT outbox %s holds %d undelivered events from before", self.path, count)

    def _count_lost_writes(self, stored: int) -> None:
        """Count as lost, with one WARNING, the events waiting that ``<path>.seq`` says the file took
        (``stored``, the highest seq) while the file's own highest is lower: its last writes never reached
        the card (a power cut keeps only part of the WAL, which SQLite does not sync at each commit with
        synchronous=NORMAL), or its rows were deleted by hand, sqlite_sequence too. Then writes the marks as
        the file has them: a next start counts them no more."""
        first = max(self._oldest, self._stored_seq + 1)
        if not self._oldest or stored < first:
            return
        lost = min(stored - first + 1, self.max_items)
        self.lost += lost
        logger.warning(
            "MQTT outbox %s lacks the %d undelivered events seq %d-%d that %s names as stored in it: its "
            "last writes never reached the card (a power cut) or were deleted; counted as lost",
            self.path,
            lost,
            first,
            stored,
            self.seq_path,
        )
        self._save_marks(self._oldest_waiting())

    def _cut_to_nothing(self) -> bool:
        """True when the file is there but empty (``truncate -s 0``, a copy cut short, a power cut with the
        file just created again) while ``<path>.seq`` says events were waiting: SQLite opens an empty file
        as an empty database, and the events would be lost without a word."""
        try:
            return self._oldest > 0 and self.path.stat().st_size == 0
        except FileNotFoundError:  # deleted by hand: the backlog cleared on purpose
            return False

    def _open(self) -> tuple[sqlite3.Connection, int]:
        db = sqlite3.connect(
            str(self.path), timeout=OUTBOX_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint={OUTBOX_WAL_PAGES}")  # a WAL of bounded size: see const
            db.execute(f"PRAGMA journal_size_limit={OUTBOX_WAL_LIMIT_BYTES}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS outbox"
                " (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL)"
            )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            count = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.Error:
            db.close()
            raise
        return db, count

    def _move_aside(self, err: sqlite3.Error) -> None:
        """Rename the damaged file (and its WAL) out of the way, counting the events still readable in it."""
        readable = _readable_rows(self.path)
        if readable is None and self._oldest:
            readable = min(self._saved_seq - self._oldest + 1, self.max_items)
            how_many = f"about {readable} (from {self.seq_path})"
        elif readable is None and self._seq_names_oldest:  # none waiting, or all counted lost before
            readable = 0
            how_many = f"no (from {self.seq_path})"
        else:
            how_many = "an unknown number of" if readable is None else str(readable)
        self.lost = readable or 0
        self.damaged_files += 1
        aside = self._aside_path()
        for suffix in SQLITE_SUFFIXES:
            if (part := _part(self.path, suffix)).exists():
                os.replace(part, _part(aside, suffix))
        logger.warning(
            "MQTT outbox %s is damaged (%s): moved it to %s and started an empty outbox "
            "(%s undelivered events lost); delete the moved file once you no longer need it",
            self.path,
            err,
            aside,
            how_many,
        )

    def _aside_path(self) -> Path:
        """``<path>.damaged-<time>``, or ``<path>.damaged-<time>-<n>`` when a file moved aside in the same
        second has that name (a daemon restarted at once, its new file damaged too): never one to replace."""
        stamp = f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        aside, n = self.path.with_name(stamp), 1
        while any(_part(aside, suffix).exists() for suffix in SQLITE_SUFFIXES):
            n += 1
            aside = self.path.with_name(f"{stamp}-{n}")
        return aside

    def _read_seq_file(self) -> tuple[int, int, int]:
        """The highest seq, the oldest waiting one (0: none) and the highest the file took from
        ``<path>.seq``, zero-padded or not (an older daemon wrote them unpadded); 0 for each it lacks (an
        older daemon wrote the first only, or the first two), all three without it, and with a WARNING when
        it cannot be read. ``_seq_names_oldest`` says whether it held the oldest."""
        self._seq_names_oldest = False
        try:
            numbers = [int(word) for word in self.seq_path.read_text().split()]
        except FileNotFoundError:
            return 0, 0, 0
        except (OSError, ValueError) as err:
            logger.warning(
                "MQTT outbox: cannot read the last seq from %s (%s); ignoring it", self.seq_path, err
            )
            return 0, 0, 0
        self._seq_names_oldest = len(numbers) >= 2
        last, oldest, stored = (numbers + [0, 0, 0])[:3]
        return last, oldest, stored

    def _save_marks(self, oldest: int) -> None:
        """Remember the highest seq, the oldest waiting and the highest the file took apart from the queue
        when they differ from what the file holds: whole or not at all (``write_whole``), or, when that
        fails (a full card: no room for a new file), written over the old file in place
        (``_overwrite_seq_file``); while that works, the whole write is tried again only every
        ``STORE_RETRY_S``. Warn once while both fail. Not fsynced: it is written with every event, and the
        SQLite file beside it is not fsynced per event either (WAL, synchronous NORMAL)."""
        self._oldest = oldest
        marks = (self._saved_seq, oldest, self._stored_seq)
        if marks == self._written:
            return
        data = (" ".join(f"{mark:0{SEQ_FILE_DIGITS}d}" for mark in marks) + "\n").encode()
        now = time.monotonic()
        in_place_since = self._seq_in_place_since
        if in_place_since is None or now - in_place_since >= STORE_RETRY_S:
            try:
                write_whole({self.seq_path: data})
                self._seq_in_place_since = None
            except OSError as err:
                if not self._overwrite_seq_file(data):
                    self._seq_in_place_since = None
                    if not self._seq_write_failed:
                        logger.warning(
                            "MQTT outbox: cannot write %s (%s); seq may go back if the outbox file is lost; "
                            "make its folder writable by the daemon",
                            self.seq_path,
                            err.strerror or err,
                        )
                    self._seq_write_failed = True
                    return
                self._seq_in_place_since = now
        elif not self._overwrite_seq_file(data):
            self._seq_in_place_since = None  # the next put tries the whole write, and warns if that fails
            return
        self._written = marks
        if self._seq_write_failed:
            logger.info("MQTT outbox: %s written again", self.seq_path)
            self._seq_write_failed = False

    def _overwrite_seq_file(self, data: bytes) -> bool:
        """Write ``data`` over ``<path>.seq`` in place, which needs no new block on a full card; only when
        the file is a regular file of that very length (written fixed-width before: one of an older daemon
        is not). A power cut in the middle of these few bytes (one sector) could leave them torn; the
        reader then warns and ignores the file. False when it cannot be done; never raises."""
        try:
            fd = os.open(self.seq_path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # no create, no truncate
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
                return False
            return os.pwrite(fd, data, 0) == len(data)
        except OSError:
            return False
        finally:
            os.close(fd)

    def _stored(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        """The oldest ``count`` events in the file that are neither gone nor in ``skip``, in seq order; none
        once the file is given up. Raises sqlite3.Error when the file cannot be read."""
        if self._given_up is not None:
            return []
        rows = self._db.execute(
            "SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (count + len(skip) + len(self._gone),)
        ).fetchall()
        return _first(((seq, payload) for seq, payload in rows if seq not in self._gone), count, skip)

    def _waiting(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        """The oldest ``count`` events waiting, those in the file first (all older than those in memory).
        Gives the file up when it cannot be read (:meth:`_give_up`)."""
        try:
            out = self._stored(count, skip)
        except sqlite3.Error as err:
            self._give_up(err)
            out = []
        return out + _first(self._unstored.items(), count - len(out), skip)

    def _count(self) -> int:
        """The events waiting, counted in the file each time (another process may delete rows from it, as
        one clearing a backlog by hand). Gives the file up when it cannot be read (:meth:`_give_up`)."""
        if self._given_up is None:
            try:
                self._rows = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            except sqlite3.Error as err:
                self._give_up(err)
        in_file = 0 if self._given_up is not None else self._rows - len(self._gone)
        return in_file + len(self._unstored)

    def _readable(self) -> bool:
        """Whether the file can be read now (one row of it), given up or not."""
        try:
            self._db.execute("SELECT seq FROM outbox LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def _oldest_waiting(self) -> int:
        oldest = self._waiting(1)
        return oldest[0][0] if oldest else 0

    def _write_pending(self) -> None:
        """Store the events waiting in memory and delete the gone ones (all those up to
        ``_given_up`` too), all or nothing (one transaction); raises sqlite3.Error when the file
        still cannot take it (a full disk) or cannot be read."""
        if not self._unstored and not self._gone and self._given_up is None:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._given_up is not None:
                self._db.execute("DELETE FROM outbox WHERE seq <= ?", (self._given_up,))
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in self._gone])
            self._db.executemany(
                "INSERT OR REPLACE INTO outbox (seq, payload) VALUES (?, ?)", list(self._unstored.items())
            )
            rows = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a full disk may have rolled it back already
                    self._db.execute("ROLLBACK")
            raise
        self._rows = rows
        self._stored_seq = max([self._stored_seq, *self._unstored])
        stored = len(self._unstored)
        self._unstored.clear()
        self._gone.clear()
        if self._store_failed:
            self._store_failed = False
            logger.info(
                "MQTT outbox %s: %s again (%d events kept in memory now stored)",
                self.path,
                "read and written" if self._given_up is not None else "written",
                stored,
            )
        self._given_up = None

    def _write_failed(self, what: str, err: sqlite3.Error) -> None:
        """``what`` failed: give the file up when it cannot be read either (:meth:`_give_up`), else warn
        once per spell of failures that events now wait in memory (a full card). The next try to store
        them waits ``STORE_RETRY_S`` from now."""
        try:
            self._stored(1)
        except sqlite3.Error as read_err:
            self._give_up(read_err)
            return
        self._store_tried_at = time.monotonic()
        if self._store_failed:
            return
        self._store_failed = True
        logger.warning(
            "MQTT outbox %s: cannot %s (%s); keeping the events in memory (at most "
            "mqtt.outbox_max = %d), lost if the daemon stops before they are delivered; %s",
            self.path,
            what,
            err,
            self.max_items,
            write_fix(err, self.path),
        )

    def _give_up(self, err: sqlite3.Error) -> None:
        """The file cannot be read: give up the events waiting in it, counted in ``lost``, but those handed
        out by :meth:`head` (still to be acknowledged), which wait in memory from now on, oldest first with
        the others there; the next write that works deletes them from it. They stay handed out: the file
        may be stored again and given up again before the broker acknowledges them. One WARNING."""
        handed = {seq: payload for seq, payload in self._handed_out.items() if seq not in self._unstored}
        given_up = self._rows - len(self._gone) - len(handed)
        self.lost += given_up
        self._unstored = OrderedDict(sorted([*handed.items(), *self._unstored.items()]))
        self._gone.clear()
        self._given_up = self._saved_seq
        self._store_failed = True
        self._store_tried_at = time.monotonic()
        logger.warning(
            "MQTT outbox %s: cannot read it (%s); gave up the %d events waiting in it (counted as lost), "
            "new events wait in memory (at most mqtt.outbox_max = %d) and are delivered, lost if the daemon "
            "stops before; %s",
            self.path,
            err,
            given_up,
            self.max_items,
            CARD_FIX,
        )

    def put(self, seq: int, payload: str, keep: Collection[int] = ()) -> list[int]:
        """Add one event; past the bound drop the oldest not in ``keep`` and return the dropped seqs. Never
        raises for a file that cannot be written or read: the event then waits in memory (see the class)."""
        with self._lock:
            self._saved_seq = max(self._saved_seq, seq)
            self._unstored[seq] = payload
            excess = self._count() - self.max_items
            dropped: list[int] = []
            if excess > 0:
                oldest = self._waiting(excess + len(keep))
                if self._given_up is not None:  # fewer wait if that read gave the file up (counted in memory)
                    excess = self._count() - self.max_items
                dropped = [seq_ for seq_, _ in oldest if seq_ not in keep][: max(excess, 0)]
                for seq_ in dropped:
                    self._handed_out.pop(seq_, None)
                    if self._unstored.pop(seq_, None) is None:
                        self._gone.add(seq_)
            if self._write_due():
                try:
                    self._write_pending()
                except sqlite3.Error as err:
                    self._write_failed(f"store event seq {seq}", err)
            self._save_marks(self._oldest_waiting())
            return dropped

    def head(self, count: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        """The oldest ``count`` events whose seq is not in ``skip``, in seq order; they count as handed out
        until removed or dropped (see the class). Never raises for a file that cannot be read."""
        with self._lock:
            events = self._waiting(count, skip)
            self._handed_out.update(events)
            return events

    def remove(self, seq: int) -> bool:
        """Forget one delivered event; False if it was not there. Never raises for a file that cannot be
        written, nor for one that cannot be read either (the event was handed out from it): the event is
        then remembered as gone, and deleted with the next write that works; one WARNING per spell. While
        writes fail, the file is not written again before ``STORE_RETRY_S`` has passed (as :meth:`put`):
        a file locked by another program would make each remove wait ``OUTBOX_BUSY_TIMEOUT_S``, with the
        Delivery lock held that the frame loop's put needs."""
        with self._lock:
            self._handed_out.pop(seq, None)
            if seq in self._unstored:
                del self._unstored[seq]
                removed = True
            elif seq in self._gone or self._given_up is not None:
                return False
            elif not self._write_due():
                removed = self._in_file(seq)
                if removed:
                    self._gone.add(seq)
            else:
                try:
                    deleted = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
                    self._rows -= deleted
                    removed = deleted > 0
                except sqlite3.Error as err:
                    removed = self._in_file(seq)
                    if removed:
                        self._gone.add(seq)
                        self._write_failed(f"delete delivered event seq {seq}", err)
            if removed and seq == self._oldest:
                self._save_marks(self._oldest_waiting())
            return removed

    def _in_file(self, seq: int) -> bool:
        """Whether the file holds event ``seq`` (a read, which a write lock of another program does not
        block in WAL mode); True when it cannot be read (an I/O error): it was handed out from the file."""
        try:
            return self._db.execute("SELECT 1 FROM outbox WHERE seq = ?", (seq,)).fetchone() is not None
        except sqlite3.Error:
            return True

    def _write_due(self) -> bool:
        """Whether to write the file now: no write failed, or ``STORE_RETRY_S`` has passed since one did."""
        return not self._store_failed or time.monotonic() - self._store_tried_at >= STORE_RETRY_S

    def last_seq(self) -> int:
        with self._lock:
            return self._saved_seq

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def close(self) -> int:
        """Store what waits in memory if the file takes it now, and close the file. Return how many
        undelivered events are lost because it does not (a full card), also counted in ``lost``: the
        caller reports them, with ``close_problem``: why, and what to do (``write_fix``; a file that cannot
        be read: check the card); ``len`` before less these is what the file keeps. Never raises for
        a file that cannot be written. With the file given up, ``<path>.seq`` then says that none is
        waiting (when it can be written): each event it held was counted lost once already."""
        with self._lock:
            lost = 0
            try:
                self._write_pending()
                self._save_marks(self._oldest_waiting())  # what the file took now: the highest stored
            except sqlite3.Error as err:
                lost = len(self._unstored)
                self.lost += lost
                if self._readable():  # the write failed, the file is there: SQLite's code says why
                    self.close_problem = f"the file could not take them; {write_fix(err, self.path)}"
                else:  # a failing card, the file overwritten: the advice of the give-up's WARNING
                    self.close_problem = f"the file could not be read; {CARD_FIX}"
                if self._given_up is not None:  # those in the file were counted when it was given up
                    self._save_marks(0)
            self._db.close()
            return lost


def _first(events: Iterable[tuple[int, str]], count: int, skip: Collection[int]) -> list[tuple[int, str]]:
    """The first ``count`` of ``events`` ((seq, payload), oldest first) whose seq is not in ``skip``."""
    kept = ((seq, payload) for seq, payload in events if seq not in skip)
    return list(itertools.islice(kept, max(count, 0)))


# SQLite's result codes (and their extended codes) for a file that is not a database or is malformed
# (https://sqlite.org/rescode.html); a full disk (SQLITE_FULL), an I/O error (SQLITE_IOERR) or a lock say
# nothing of the file's content.
DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
# A database in WAL mode is three files: the file itself, its write-ahead log and the log's shared-memory
# index (https://sqlite.org/wal.html), named by these suffixes; moved aside together.
WAL_SUFFIX = "-wal"
SQLITE_SUFFIXES = ("", WAL_SUFFIX, "-shm")
# A write of the outbox file adds at most about this much: a few pages and their WAL frames.
SIZE_LIMIT_MARGIN_BYTES = 64 * 1024


def write_fix(err: sqlite3.Error, path: Path) -> str:
    """What to do about a write of the outbox file at ``path`` that failed with ``err``, the file still
    readable, by SQLite's result code (https://sqlite.org/rescode.html), not by whether the file reads:
    SQLITE_FULL is a full card (the kernel's ENOSPC); SQLITE_BUSY or SQLITE_LOCKED another program holding
    the file in a transaction past ``OUTBOX_BUSY_TIMEOUT_S``; an I/O error with the file or its WAL within
    ``SIZE_LIMIT_MARGIN_BYTES`` of this process's file size limit that limit (EFBIG is an I/O error to
    SQLite); any other, SQLITE_IOERR above all, a card that fails or that the kernel remounted read-only
    after errors, which still reads (each write fails with EROFS: SQLITE_IOERR_WRITE to SQLite). A read-only
    card or file at start is refused before (``folder_problem``, ``outbox_path_problem``)."""
    if err.sqlite_errorname == "SQLITE_FULL":
        return f"free space on {path.parent}"
    if _is_lock(err):
        return LOCK_FIX
    limit = file_size_limit_bytes()
    if limit is not None and _largest_part_bytes(path) + SIZE_LIMIT_MARGIN_BYTES >= limit:
        return (
            f"it reached the file size limit of {limit} bytes (RLIMIT_FSIZE, systemd's LimitFSIZE=); raise "
            "the limit or lower mqtt.outbox_max"
        )
    return f"its card fails, or was remounted read-only after errors ('ro' in mount's list); {CARD_FIX}"


def _is_lock(err: BaseException) -> bool:
    """True when ``err`` is SQLite's SQLITE_BUSY or SQLITE_LOCKED (or an extended code of them): another
    connection held the file locked past ``OUTBOX_BUSY_TIMEOUT_S``."""
    name = getattr(err, "sqlite_errorname", None) or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _largest_part_bytes(path: Path) -> int:
    """The size of the outbox file or its WAL, whichever is larger (0 for parts not there)."""
    sizes = [0]
    for suffix in ("", WAL_SUFFIX):
        with contextlib.suppress(OSError):
            sizes.append(_part(path, suffix).stat().st_size)
    return max(sizes)


def _part(path: Path, suffix: str) -> Path:
    """The file SQLite keeps beside the database at ``path`` for ``suffix`` (``SQLITE_SUFFIXES``; "": the
    database itself)."""
    return path.with_name(path.name + suffix)


def _is_damage(err: sqlite3.DatabaseError) -> bool:
    """True when ``err`` says the file is damaged: SQLite's code is a corruption code, or there is none (the
    integrity check's own error, raised by ``_open``)."""
    name = getattr(err, "sqlite_errorname", None)
    return name is None or name.startswith(DAMAGE_CODES)


def _readable_rows(path: Path) -> int | None:
    """How many events a damaged outbox file still shows (None when its table cannot be read)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def outbox_path_problem(path: Path) -> str:
    """What keeps ``path`` from holding the outbox, or "" when nothing does: a folder or a device, pipe or
    socket in its place or its ``.seq`` file's (never to be moved aside as damage: ``/dev/null`` is one), a
    file that is no outbox (neither SQLite's header nor the ``.seq`` file an outbox that ever held an event
    has: a config file or an events log named by mistake, which was moved aside as a damaged outbox and
    replaced), or a folder the daemon cannot create or write in (SQLite writes its journal beside the file;
    ``device.config.folder_problem``)."""
    if path.is_dir():
        return f"{path} is a folder, expected the outbox file's path"
    seq_path = path.with_name(path.name + ".seq")
    for part in (path, seq_path):  # opening a pipe blocks the daemon for good, even against SIGTERM
        if part.exists() and not part.is_file():
            kind = "a folder" if part.is_dir() else "a device, pipe or socket"
            return f"{part} is not a regular file ({kind}), expected the outbox file's path"
    if path.is_file() and not seq_path.exists() and not _sqlite_or_empty(path):
        return (
            f"{path} holds something else (no SQLite header, and no {seq_path.name} beside it as an outbox "
            "of this daemon has), expected the outbox file's path"
        )
    folder = path.parent
    if problem := folder_problem(folder):  # created with its parents on first use: a file on the way stops it
        return f"{path}: {problem}"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path}: not readable and writable by this user (permission denied)"
    return ""


def _sqlite_or_empty(path: Path) -> bool:
    """True when ``path`` is empty or starts with SQLite's header string (the file format's first 16 bytes,
    "SQLite format 3\\0"); True too when it cannot be read, which the permission checks then report."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return True
    return not head or head == b"SQLite format 3\x00"


def open_outbox(path: str, max_items: int) -> MemoryOutbox | SqliteOutbox:
    """A SQLite outbox at ``path``, or one in memory when ``path`` is empty."""
    return SqliteOutbox(path, max_items) if path else MemoryOutbox(max_items)
