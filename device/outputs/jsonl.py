"""The JSON-lines output: one event per line on stdout (``-``) or appended to a file (``events.path``)."""

from __future__ import annotations

import json
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
        self._written = 0
        try:
            # The sink owns the file for its whole life and closes it in close().
            self._out: IO[str] = Path(path).open("a", buffering=1) if self._owned else sys.stdout  # noqa: SIM115
        except OSError as err:
            problem = f"events.path: cannot open {path} ({err.strerror}); fix the path"
            raise MoodcastError(problem) from None

    def publish_event(self, event: dict[str, Any]) -> None:
        self._out.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._written += 1

    def publish_state(self, state: dict[str, Any]) -> None:
        """Nothing: the file holds events only."""

    def stats(self) -> SinkStats:
        return SinkStats(published=self._written)

    def close(self) -> None:
        self._out.flush()
        if self._owned:
            self._out.close()
