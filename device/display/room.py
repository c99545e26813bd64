"""Whether a recording can still grow: its file still at its path, room on its disk, the file size limit."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path

from device.const import RECORDING_MIN_ROOM_BYTES

logger = logging.getLogger(__name__)


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``, or None when there is none."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _size_limit_bytes() -> int | None:
    """This process's file size limit (RLIMIT_FSIZE's soft limit, systemd's LimitFSIZE=), or None."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


# What stops a recording, the state ``RoomWatch`` logs the changes of: its words (a number of KiB free)
# change from one look to the next while the state stays the same.
REMOVED, DISK_FULL, SIZE_LIMIT, CANNOT_LOOK = "removed", "disk full", "size limit", "cannot look"
# The kinds on which the recording is stopped (``VideoFileDisplay``): its file cannot take much more, and
# FFmpeg writes nothing more to a file once a write of it failed, even once there is room again. A file that
# cannot be looked at may be a passing fault of the disk: the recording goes on.
STOPS_RECORDING = (REMOVED, DISK_FULL, SIZE_LIMIT)


def recording_problem(
    path: Path, identity: tuple[int, int] | None, room_bytes: int = RECORDING_MIN_ROOM_BYTES
) -> tuple[str, str]:
    """What stops the recording at ``path``, the file whose (device, inode) is ``identity`` (None: the writer
    has not created it yet), from growing (much) longer: the kind (``REMOVED``, ``DISK_FULL``,
    ``SIZE_LIMIT``) and the words saying it and what to do, or ("", "") when nothing does: the file was
    removed or replaced, its disk has under ``room_bytes`` free for this user, or it is within ``room_bytes``
    of the file size limit (``room_bytes``: what the recording may write before the next look, at least
    ``RECORDING_MIN_ROOM_BYTES``). Raises OSError when the file or its disk cannot be looked at."""
    if identity is not None and _identity(path) != identity:
        return REMOVED, (
            "the file was removed or replaced while recording, so the frames went to a deleted file; "
            "restart moodcast to record again"
        )
    disk = os.statvfs(path.parent)
    free_bytes = disk.f_bavail * disk.f_frsize
    if free_bytes < room_bytes:
        return DISK_FULL, (
            f"its disk is (nearly) full ({free_bytes // 1024} KiB free, under the {room_bytes // 1024} KiB "
            "it may write before the next look); free space, then restart moodcast to record again"
        )
    limit_bytes = _size_limit_bytes()
    size_bytes = 0 if identity is None else path.stat().st_size
    if limit_bytes is not None and limit_bytes - size_bytes < room_bytes:
        near = (
            "it reached"  # written full between two looks
            if size_bytes >= limit_bytes
            else f"it is {size_bytes // 1024} KiB, within the {room_bytes // 1024} KiB it may write before "
            "the next look of"
        )
        return SIZE_LIMIT, (
            f"{near} the file size limit of {limit_bytes} bytes (RLIMIT_FSIZE, systemd's LimitFSIZE=); raise "
            "the limit, then restart moodcast to record again"
        )
    return "", ""


class RoomWatch:
    """Logs once, when it changes, whether the recording at ``path`` can still grow: a WARNING with what,
    where and what to do when it cannot. The state is the kind of problem (``recording_problem``), not its
    words: a file or disk that cannot be looked at at several looks, its error changing, is one WARNING, and
    an INFO when it can be looked at again. A kind in ``STOPS_RECORDING`` ends the recording (its caller
    stops looking).

    The file is the one at ``path`` when the watch starts or, where the writer creates it only later (at its
    first write, or after buffering: FFmpeg creates it when it opens, another backend may not), when a look
    first finds it; until then only its disk and the size limit are looked at, and its absence is no
    problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._identity = _identity(path)  # None until the writer has created the file
        self._kind = ""  # the kind of problem last logged, "" for none
        self._size = 0  # the file's size at the last look
        self._room = RECORDING_MIN_ROOM_BYTES  # what the file may write before the next look

    def check(self) -> str:
        """Look at the file and its disk (a stat and a statvfs, ~10 us) and log if what stops it changed;
        return the kind of problem now ("" for none)."""
        try:
            if self._identity is None:
                self._identity = _identity(self.path)
            kind, problem = recording_problem(self.path, self._identity, self._room)
            if self._identity is not None and not kind:
                self._expect_growth()
        except OSError as err:
            kind = CANNOT_LOOK
            problem = f"the file or its disk cannot be looked at ({err.strerror}); check the disk"
        if kind == self._kind:
            return kind
        if kind in STOPS_RECORDING:
            logger.warning(
                "recording %s: %s; the recording stops here, its file closed with what it holds; events and "
                "MQTT go on",
                self.path,
                problem,
            )
        elif kind:
            logger.warning("recording %s: %s; events and MQTT go on", self.path, problem)
        else:
            logger.info(
                "recording %s: the file and its disk can be looked at again; the recording goes on",
                self.path,
            )
        self._kind = kind
        return kind

    def _expect_growth(self) -> None:
        """Size the room the next look asks for by what the file grew since this one's predecessor, twice
        over (a busier scene writes more): a recording writing more than ``RECORDING_MIN_ROOM_BYTES`` between
        two looks (a large or busy frame at 30 fps writes several MiB in ``RECORDING_CHECK_S``) filled the
        disk, or reached the size limit, between them, and its .mp4, cut off by the failed write, played no
        frame."""
        size = self.path.stat().st_size
        self._room = max(RECORDING_MIN_ROOM_BYTES, 2 * (size - self._size))
        self._size = size
