"""The JSON-lines output: one event per line on stdout (``-``) or appended to a file (``events.path``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from device.errors import MoodcastError
from device.outputs.sink import EventSink, SinkStats
from device.paths import discard_writes

logger = logging.getLogger(__name__)
_TAIL_CHUNK = 4096  # bytes read at a time, from the end, to find the last whole line


class JsonLinesSink(EventSink):
    """Writes one JSON object per line; the state summary is for dashboards and is not written."""

    name = "jsonl"

    def __init__(self, path: str) -> None:
        """Open ``path`` for appending, or take stdout for ``-``. Raises MoodcastError naming events.path
        when the file cannot be opened, or when ``-`` is given and the daemon has no stdout (``>&-``)."""
        self._owned = path != "-"
        self._where = path if self._owned else "- (stdout)"
        self._written = 0
        self._failed = False
        if not self._owned and sys.stdout is None:  # started with stdout closed (>&-): Python sets it to None
            problem = "events.path: - (stdout) is closed; start the daemon with a stdout, or name a file"
            raise MoodcastError(problem)
        try:
            # The sink owns the file for its whole life and closes it in close(); "a+": its tail is read.
            self._out: IO[str] = Path(path).open("a+", buffering=1) if self._owned else sys.stdout  # noqa: SIM115
            self._whole_bytes = _cut_to_whole_lines(self._out.fileno(), path) if self._owned else 0
        except OSError as err:
            problem = f"events.path: cannot open {path} ({err.strerror}); fix the path"
            raise MoodcastError(problem) from None

    def publish_event(self, event: dict[str, Any]) -> None:
        """Write ``event`` as one line. Raises MoodcastError, once, when the line cannot be written: the
        pipe's reader has gone away (``... | head -n 2``, a consumer that died), the disk is full, or any
        other OSError. The daemon stops as on any fatal error, with one line; from then on the lines go to
        /dev/null."""
        if self._failed:
            return
        line = json.dumps(event, separators=(",", ":")) + "\n"
        try:
            self._out.write(line)
        except OSError as err:
            raise self._failure(err) from None
        self._written += 1
        self._whole_bytes += len(line.encode())

    def publish_state(self, state: dict[str, Any]) -> None:
        """Nothing: the file holds events only."""

    def stats(self) -> SinkStats:
        return SinkStats(published=self._written)

    def close(self) -> None:
        """Flush and close. Raises MoodcastError when the last lines cannot be flushed (the pipe's reader
        gone, a full disk: any OSError), unless publish_event already said so; the file is closed all the
        same."""
        try:
            self._out.flush()
        except OSError as err:
            raise self._failure(err) from None
        finally:
            if self._owned:
                self._out.close()

    def _failure(self, err: OSError) -> MoodcastError:
        """The one-line error for a write that failed: a pipe whose reader went away (EPIPE), or another
        OSError (a full disk, ENOSPC) by its cause. The file's descriptor is pointed at /dev/null first
        (``discard_writes``), so that what is still buffered, and the interpreter's flush of stdout at exit,
        go nowhere instead of raising again."""
        self._failed = True
        if self._owned:  # a line cut off by a full disk: the file keeps whole lines only (no space needed)
            with contextlib.suppress(OSError, ValueError):
                os.ftruncate(self._out.fileno(), self._whole_bytes)
        discard_writes(self._out)
        if isinstance(err, BrokenPipeError):
            return MoodcastError(f"events.path: the reader of {self._where} went away (broken pipe); stopped")
        return MoodcastError(f"events.path: cannot write {self._where}: {err.strerror or err}; stopped")


def _cut_to_whole_lines(fd: int, path: str) -> int:
    """Cut the file open as ``fd`` back to its last whole line, with one warning, when it ends in part of a
    line (a run stopped mid-write: a power loss, or a full disk before this sink cut its own lines back),
    so that the first line appended is not glued onto it; return the file's size in bytes, then."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    whole = 0
    for start in range(size, 0, -_TAIL_CHUNK):
        chunk = os.pread(fd, min(_TAIL_CHUNK, start), max(start - _TAIL_CHUNK, 0))
        if (newline := chunk.rfind(b"\n")) >= 0:
            whole = max(start - _TAIL_CHUNK, 0) + newline + 1
            break
    os.ftruncate(fd, whole)
    logger.warning("events.path: %s ended in a cut-off line (%d bytes); removed it", path, size - whole)
    return whole
