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
        self._owned = path != "-"
        self._where = path if self._owned else "- (stdout)"
        self._written = 0
        self._reader_gone = False
        try:
            # The sink owns the file for its whole life and closes it in close().
            self._out: IO[str] = Path(path).open("a", buffering=1) if self._owned else sys.stdout  # noqa: SIM115
        except OSError as err:
            problem = f"events.path: cannot open {path} ({err.strerror}); fix the path"
            raise MoodcastError(problem) from None

    def publish_event(self, event: dict[str, Any]) -> None:
        """Write ``event`` as one line. Raises MoodcastError, once, when the pipe's reader has gone away
        (``... | head -n 2``, a consumer that died): the daemon stops as on any fatal error, with one line;
        from then on the lines go to /dev/null."""
        if self._reader_gone:
            return
        try:
            self._out.write(json.dumps(event, separators=(",", ":")) + "\n")
        except BrokenPipeError:
            raise self._gone() from None
        self._written += 1

    def publish_state(self, state: dict[str, Any]) -> None:
        """Nothing: the file holds events only."""

    def stats(self) -> SinkStats:
        return SinkStats(published=self._written)

    def close(self) -> None:
        """Flush and close. Raises MoodcastError when the pipe's reader went away before the last lines
        were flushed (unless publish_event already said so); the file is closed all the same."""
        try:
            self._out.flush()
        except BrokenPipeError:
            raise self._gone() from None
        finally:
            if self._owned:
                self._out.close()

    def _gone(self) -> MoodcastError:
        """The error for a pipe whose reader went away (EPIPE). The file's descriptor is pointed at
        /dev/null first, as Python's signal docs advise ("Note on SIGPIPE"), so that what is still
        buffered, and the interpreter's flush of stdout at exit, go nowhere instead of raising again."""
        self._reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._out.fileno())
        except (OSError, ValueError):  # a stream with no descriptor of its own: nothing left to flush there
            pass
        finally:
            os.close(devnull)
        return MoodcastError(f"events.path: the reader of {self._where} went away (broken pipe); stopped")
