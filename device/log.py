"""Logging setup: journald-friendly (priority prefix, no time) under systemd, readable on a terminal."""

from __future__ import annotations

import logging
import os
import sys

# Third-party loggers held quieter than ours.
QUIET_LOGGERS = {"paho": logging.WARNING, "picamera2": logging.WARNING, "PIL": logging.WARNING}

# syslog priorities for the "<N>" prefix that journald reads (sd-daemon(3)).
SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


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
