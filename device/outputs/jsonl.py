"""The JSON-lines output: one event per line on stdout (``-``) or appended to a file (``events.path``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from device.errors import MoodcastError
from device.outputs.sink import EventSink, SinkStats


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
            # The sink owns the file for its whole life and closes it in close().
            self._out: IO[str] = Path(path).open("a", buffering=1) if self._owned else sys.stdout  # noqa: SIM115
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
        try:
            self._out.write(json.dumps(event, separators=(",", ":")) + "\n")
        except OSError as err:
            raise self._failure(err) from None
        self._written += 1

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
        OSError (a full disk, ENOSPC) by its cause. The file's descriptor is pointed at /dev/null first, as
        Python's signal docs advise for a broken pipe ("Note on SIGPIPE"), so that what is still buffered,
        and the interpreter's flush of stdout at exit, go nowhere instead of raising again."""
        self._failed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._out.fileno())
        except (OSError, ValueError):  # a stream with no descriptor of its own: nothing left to flush there
            pass
        finally:
            os.close(devnull)
        if isinstance(err, BrokenPipeError):
            return MoodcastError(f"events.path: the reader of {self._where} went away (broken pipe); stopped")
        return MoodcastError(f"events.path: cannot write {self._where}: {err.strerror or err}; stopped")
