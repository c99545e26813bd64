"""Whether a recording can still grow: its file still at its path, room on its disk, the file size limit."""

from __future__ import annotations

import logging
import math
import os
import resource
from pathlib import Path

from device.const import RECORDING_MIN_ROOM_BYTES

logger = logging.getLogger(__name__)


def _stat(path: Path) -> os.stat_result | None:
    """The status of the file at ``path``, or None when there is none. Raises OSError when it cannot be
    looked at."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``, or None when there is none."""
    stat = _stat(path)
    return None if stat is None else (stat.st_dev, stat.st_ino)


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
        if identity is None:  # a writer that creates the file at its first write
            near = (
                f"it is not written yet, and the {room_bytes // 1024} KiB it may write before the next look "
                "exceed"
            )
        elif size_bytes >= limit_bytes:  # written full between two looks
            near = "it reached"
        else:
            near = (
                f"it is {size_bytes // 1024} KiB, within the {room_bytes // 1024} KiB it may write before "
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

    The writer says each file frame it wrote (``frame_written``), and the watch looks after the first one,
    then after each one until the file has grown, then after every ``frames_per_look``-th
    (``RECORDING_CHECK_S`` of recording). A look asks for the room the file may take before the next look:
    twice what it wrote a frame since the look before (a busier scene writes more), for as many frames, and at
    least ``RECORDING_MIN_ROOM_BYTES``. Before the file has grown nothing measures it, so the next look is the
    next frame's: a recording that starts on a nearly full disk stops within its first frames, not after 5 s
    that can write several MiB (a busy 640x480 scene at 30 fps writes 8.5 MiB).

    The file is the one at ``path`` when the watch starts or, where the writer creates it only later (at its
    first write, or after buffering: FFmpeg creates it when it opens, another backend may not), when a look
    first finds it; until then only its disk and the size limit are looked at, and its absence is no
    problem."""

    def __init__(self, path: Path, frames_per_look: int) -> None:
        self.path = path
        self._identity = _identity(path)  # None until the writer has created the file
        self._kind = ""  # the kind of problem last logged, "" for none
        self._frames_per_look = frames_per_look  # once the file has grown
        self._written = 0  # file frames written
        self._next_look = 1  # the file frame after which the next look is
        self._since: tuple[int, int] | None = None  # (frames written, bytes) growth is measured from
        self._bytes_per_frame: float | None = None  # what the file wrote a frame; None until it grew
        self._room = RECORDING_MIN_ROOM_BYTES  # what the file may write before the next look

    def frame_written(self) -> str:
        """Count a file frame the writer wrote, and look (``check``) when it is time: the kind of problem
        now ("" for none)."""
        self._written += 1
        if self._written < self._next_look:
            return self._kind
        return self.check()

    def check(self) -> str:
        """Look at the file and its disk (two stats and a statvfs, ~10 us) and log if what stops it changed;
        return the kind of problem now ("" for none)."""
        try:
            kind, problem = self._look()
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

    def _look(self) -> tuple[str, str]:
        """What stops the file now (``recording_problem``), asked for the room it may take before the next
        look, which this sets from what it grew since the look before. Raises OSError as that does."""
        stat = _stat(self.path)
        if stat is not None and self._identity is None:
            self._identity = stat.st_dev, stat.st_ino
        if stat is not None and (stat.st_dev, stat.st_ino) == self._identity:
            self._measure_growth(stat.st_size)
        if self._bytes_per_frame is None:
            self._next_look = self._written + 1
            self._room = RECORDING_MIN_ROOM_BYTES
        else:  # the first, then every frames_per_look-th frame
            self._next_look = (
                self._written + self._frames_per_look - (self._written - 1) % self._frames_per_look
            )
            frames = self._next_look - self._written
            self._room = max(RECORDING_MIN_ROOM_BYTES, math.ceil(2 * self._bytes_per_frame * frames))
        return recording_problem(self.path, self._identity, self._room)

    def _measure_growth(self, size_bytes: int) -> None:
        """Take the file's size after ``_written`` frames: what it wrote a frame since the look before or,
        until it has grown at all, since the first look that found it (a writer writes in blocks, FFmpeg
        256 KiB at a time, so a file that has not grown yet has no measure)."""
        if self._since is None:
            self._since = (self._written, size_bytes)
            return
        frames, was_bytes = self._since
        if self._bytes_per_frame is None and size_bytes == was_bytes:
            return
        self._bytes_per_frame = max(size_bytes - was_bytes, 0) / max(self._written - frames, 1)
        self._since = (self._written, size_bytes)
