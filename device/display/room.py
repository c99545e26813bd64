"""Whether a recording can still grow: its file still at its path, room on its disk, the file size limit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from device.const import RECORDING_INDEX_BYTES_PER_FRAME, RECORDING_MIN_ROOM_BYTES
from device.paths import file_size_limit_bytes

logger = logging.getLogger(__name__)


def _stat(path: Path) -> os.stat_result | None:
    """The status of the file at ``path``, or None when there is none. Raises OSError when it cannot be
    looked at."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _on_disk(path: Path, stat: os.stat_result | None) -> Path:
    """A path on the disk the frames for ``path`` land on (``stat``: its status, None when there is no file):
    the file itself once it is there (statvfs follows a link to it), else its folder once links are
    resolved (a link's target's folder when the link is there and its target not yet). The folder holding
    a link to a file on another disk is not on the disk that fills."""
    return path if stat is not None else path.resolve().parent


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``, or None when there is none."""
    stat = _stat(path)
    return None if stat is None else (stat.st_dev, stat.st_ino)


# What stops a recording, the state ``RoomWatch`` logs the changes of: its words (a number of KiB free)
# change from one look to the next while the state stays the same.
REMOVED, DISK_FULL, SIZE_LIMIT, CANNOT_LOOK = "removed", "disk full", "size limit", "cannot look"
# The kinds on which the recording is stopped (``VideoFileDisplay``): its file cannot take much more, and
# FFmpeg writes nothing more to a file once a write of it failed, even once there is room again. A file that
# cannot be looked at may be a passing fault of the disk: the recording goes on.
STOPS_RECORDING = (REMOVED, DISK_FULL, SIZE_LIMIT)


def recording_problem(path: Path, identity: tuple[int, int] | None, room_bytes: int) -> tuple[str, str]:
    """What stops the recording at ``path``, the file whose (device, inode) is ``identity`` (None: the writer
    has not created it yet), from growing (much) longer: the kind (``REMOVED``, ``DISK_FULL``,
    ``SIZE_LIMIT``) and the words saying it, what to do and what becomes of the file (``_stopped``), or
    ("", "") when nothing does: the file was moved, removed or replaced (the writer's frames go on into the
    file at its old inode until it is closed), its disk has under ``room_bytes`` free for this user, or it is
    within ``room_bytes`` of the file size limit (``room_bytes``: what the recording may write before the
    next look, at least ``RECORDING_MIN_ROOM_BYTES``). One stat and one statvfs. Raises OSError when the file
    or its disk cannot be looked at."""
    stat = _stat(path)
    if identity is not None and (stat is None or (stat.st_dev, stat.st_ino) != identity):
        return REMOVED, (
            "the file, or the link to it, was moved, removed or replaced while recording: its frames went "
            f"on into the file at its old inode, not to {path} (a moved file, or a link's file, holds them "
            "all; a removed or replaced file is deleted with them); restart moodcast to record again; "
            f"{_stopped(cut_short=False)}"
        )
    disk = os.statvfs(_on_disk(path, stat))
    free_bytes = disk.f_bavail * disk.f_frsize
    if free_bytes < room_bytes:
        return DISK_FULL, (
            f"its disk is (nearly) full ({free_bytes // 1024} KiB free, under the {room_bytes // 1024} KiB "
            "it may write before the next look); free space, then restart moodcast to record again; "
            + _stopped(cut_short=identity is not None and free_bytes < RECORDING_MIN_ROOM_BYTES)
        )
    limit_bytes = file_size_limit_bytes()
    size_bytes = 0 if identity is None or stat is None else stat.st_size
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
            "the limit, then restart moodcast to record again; "
            + _stopped(cut_short=identity is not None and limit_bytes - size_bytes < RECORDING_MIN_ROOM_BYTES)
        )
    return "", ""


def _stopped(cut_short: bool) -> str:
    """What becomes of a recording that stops: its file is closed with what it holds (and, closed with room
    left, an .mp4 gets its index and plays), or, ``cut_short``, the file is there with under the block FFmpeg
    holds not written yet (``RECORDING_MIN_ROOM_BYTES``) left on its disk or under the file size limit: a
    write of it has most likely failed already (another program filled the disk faster than a frame), after
    which FFmpeg writes nothing more, so the file may be cut short and not play (an .mp4 cut off has no
    index)."""
    if cut_short:
        return (
            f"the recording stops here, but with under FFmpeg's {RECORDING_MIN_ROOM_BYTES // 1024} KiB block "
            "left a write of it has most likely failed already: its file may be cut short and not play"
        )
    return "the recording stops here, its file closed with what it holds"


class RoomWatch:
    """Logs once, when it changes, whether the recording at ``path`` can still grow: a WARNING with what,
    where and what to do when it cannot. The state is the kind of problem (``recording_problem``), not its
    words: a file or disk that cannot be looked at at several looks, its error changing, is one WARNING, and
    an INFO when it can be looked at again. A kind in ``STOPS_RECORDING`` ends the recording (its caller
    stops looking).

    The writer says each file frame it wrote (``frame_written``), and the watch looks after every one. A
    look asks for the most the next frame and the close can write: the block FFmpeg holds not written yet
    (``RECORDING_MIN_ROOM_BYTES``), the next frame at its upper bound, ``frame_bytes``, and the index of the
    file's frames, the next one's included, that closing it writes (``RECORDING_INDEX_BYTES_PER_FRAME``
    each). It stops the recording when the room left (its disk's free bytes for this user or the room under
    the file size limit, the smaller) is less than that. That is in time only while nothing else fills the
    disk faster than a frame: no room is reserved, so another program's writes between two looks can fill
    it, FFmpeg's write fails, and the look after finds under FFmpeg's block left (its WARNING then says the
    file may be cut short and not play, ``_stopped``).

    ``frame_bytes`` is the raw frame the writer is given (width x height x 3 bytes of BGR). An encoded frame
    is not larger in practice: the encoder takes it as YUV 4:2:0, half those bytes, and quantises it; the
    largest frames measured, of pure noise (the least compressible picture) at 640x480, were 34 % of the raw
    frame in an .mp4 (MPEG-4, just after quiet frames, its rate control having bytes to spare) and 25 % in an
    .avi (MJPEG). What a frame writes cannot be foreseen from the frames before: a quiet scene (an empty room
    at night) writes a few hundred bytes a frame at 640x480, a busy one (people in the morning) 40 to 160 KiB,
    and looks scheduled by the growth measured so far let the disk fill between two of them (FFmpeg's write
    failed, and the .mp4 played nothing). A look is one stat and one statvfs: about 8 us with its Python
    (measured on an x86-64 VM, on ext4 and on tmpfs), where writing a busy 640x480 frame took 2.9 ms (.mp4)
    to 4.4 ms (.avi) there.

    The file is the one at ``path`` when the watch starts or, where the writer creates it only later (at its
    first write, or after buffering: FFmpeg creates it when it opens, another backend may not), when a look
    first finds it; until then only its disk and the size limit are looked at, and its absence is no
    problem."""

    def __init__(self, path: Path, frame_bytes: int) -> None:
        self.path = path
        self._identity = _identity(path)  # None until the writer has created the file
        self._kind = ""  # the kind of problem last logged, "" for none
        self._frame_bytes = frame_bytes  # the most one frame writes: its raw image's bytes
        self._written = 0  # file frames written

    def frame_written(self) -> str:
        """Count a file frame the writer wrote and look (``check``): the kind of problem now ("" for
        none)."""
        self._written += 1
        return self.check()

    def check(self) -> str:
        """Look at the file and its disk and log if what stops it changed; return the kind of problem now
        ("" for none)."""
        try:
            kind, problem = self._look()
        except OSError as err:
            kind = CANNOT_LOOK
            problem = f"the file or its disk cannot be looked at ({err.strerror}); check the disk"
        if kind == self._kind:
            return kind
        if kind:
            logger.warning("recording %s: %s; events and MQTT go on", self.path, problem)
        else:
            logger.info(
                "recording %s: the file and its disk can be looked at again; the recording goes on",
                self.path,
            )
        self._kind = kind
        return kind

    def _look(self) -> tuple[str, str]:
        """What stops the file now (``recording_problem``), asked for the most its next frame and its close
        can write. Raises OSError as that does."""
        if self._identity is None:  # a writer that creates the file later: watched from when it is there
            self._identity = _identity(self.path)
        index_bytes = RECORDING_INDEX_BYTES_PER_FRAME * (self._written + 1)
        room_bytes = RECORDING_MIN_ROOM_BYTES + self._frame_bytes + index_bytes
        return recording_problem(self.path, self._identity, room_bytes)
