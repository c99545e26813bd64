"""Whether a recording can still grow: its file still at its path, room on its disk, the file size limit."""

from __future__ import annotations

import logging
import math
import os
import resource
from pathlib import Path

from device.const import RECORDING_INDEX_BYTES_PER_FRAME, RECORDING_MIN_ROOM_BYTES

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


def _room_left_bytes(path: Path, size_bytes: int) -> int:
    """What the file at ``path``, ``size_bytes`` long, may still grow by: its disk's bytes free for this user
    or, when nearer, the room under the file size limit. Raises OSError when its disk cannot be looked at."""
    disk = os.statvfs(path.parent)
    free_bytes = disk.f_bavail * disk.f_frsize
    limit_bytes = _size_limit_bytes()
    return free_bytes if limit_bytes is None else min(free_bytes, limit_bytes - size_bytes)


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

    The writer says each file frame it wrote (``frame_written``), and the watch looks after the first one.
    A look asks for the room the file needs for the frames up to the next look and for its close: twice what
    it wrote a frame (a busier scene writes more) for each of those frames, ``RECORDING_MIN_ROOM_BYTES`` for
    the block FFmpeg holds not written yet, and the index of its frames (``RECORDING_INDEX_BYTES_PER_FRAME``)
    that closing it writes; it stops the recording when the room left (its disk's free bytes or the room
    under the file size limit, the smaller) cannot take even one more frame. The next look is after
    ``frames_per_look`` frames (``RECORDING_CHECK_S`` of recording) or, where the room left takes fewer,
    after as many as it takes (at least the next): a look that asked for 5 s of frames stopped the recording
    as soon as the room left was under 5 s of twice its frames, which under a 1.5 MiB file size limit was at
    17 % of it, where looks that come sooner as the room shrinks record up to the last frame it can take.
    Before the file has grown nothing measures what it writes a frame (under a block: the file would have
    grown), so it is taken to be a block and the next look is the next frame's: a recording that starts on a
    nearly full disk is looked at from its first frames, not first after 5 s that can write several MiB (a
    busy 640x480 scene at 30 fps writes 8.5 MiB).

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

    def frame_written(self) -> str:
        """Count a file frame the writer wrote, and look (``check``) when it is time: the kind of problem
        now ("" for none)."""
        self._written += 1
        if self._written < self._next_look:
            return self._kind
        return self.check()

    def check(self) -> str:
        """Look at the file and its disk (two stats and two statvfs, ~10 us) and log if what stops it changed;
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
        """What stops the file now (``recording_problem``), asked for the room it needs up to the next look,
        which this sets by the room left. Raises OSError as that does."""
        stat = _stat(self.path)
        if stat is not None and self._identity is None:
            self._identity = stat.st_dev, stat.st_ino
        size_bytes = 0
        if stat is not None and (stat.st_dev, stat.st_ino) == self._identity:
            size_bytes = stat.st_size
            self._measure_growth(size_bytes)
        frames = self._frames_to_next_look(_room_left_bytes(self.path, size_bytes))
        self._next_look = self._written + frames
        return recording_problem(self.path, self._identity, self._room_bytes(frames))

    def _frames_to_next_look(self, room_left_bytes: int) -> int:
        """After how many more frames to look again: one until the file has grown, then as many as
        ``room_left_bytes`` takes (``_room_bytes``), at least one and at most ``frames_per_look``."""
        if self._bytes_per_frame is None:
            return 1
        spare_bytes = room_left_bytes - self._room_bytes(0)
        frames = spare_bytes // (2 * self._bytes_per_frame + RECORDING_INDEX_BYTES_PER_FRAME)
        return min(max(int(frames), 1), self._frames_per_look)

    def _room_bytes(self, frames: int) -> int:
        """The bytes the file needs for ``frames`` more frames and its close: twice what it wrote a frame
        (until it has grown, a block) for each, the block FFmpeg holds not written yet, and the index of
        every frame."""
        per_frame = RECORDING_MIN_ROOM_BYTES if self._bytes_per_frame is None else self._bytes_per_frame
        index_bytes = RECORDING_INDEX_BYTES_PER_FRAME * (self._written + frames)
        return math.ceil(2 * per_frame * frames) + RECORDING_MIN_ROOM_BYTES + index_bytes

    def _measure_growth(self, size_bytes: int) -> None:
        """Take the file's size after ``_written`` frames: what it wrote a frame since the last look that
        found it grown or, until it has grown at all, since the first look that found it. A writer writes in
        blocks, FFmpeg 256 KiB at a time: a look that finds the same size measures nothing (its 0 bytes a
        frame would ask for no room for the frames to come), so the measure stays the one before."""
        if self._since is None:
            self._since = (self._written, size_bytes)
            return
        frames, was_bytes = self._since
        if size_bytes == was_bytes:
            return
        self._bytes_per_frame = max(size_bytes - was_bytes, 0) / max(self._written - frames, 1)
        self._since = (self._written, size_bytes)
