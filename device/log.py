"""Logging setup: journald-friendly (priority prefix, no time) under systemd, readable on a terminal."""

from __future__ import annotations

import logging
import os
import sys

from device.const import QUIET_LOGGERS, SYSLOG_PRIORITY


class JournalFormatter(logging.Formatter):
    """``<N>logger: message`` with no time: journald adds its own and maps N to the priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record).replace("\n", "\n" + f"<{priority}>")
        return f"<{priority}>{text}"


def setup_logging(level: str = "info") -> None:
    """Send our log lines to stderr in the format that suits where we run."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet_level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet_level, root.level))
