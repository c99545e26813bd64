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
    if root.level > logging.DEBUG:
        quiet_opencv()


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own stderr lines out of the log: each failed open of a camera or stream
    printed ``[ WARN:…] cap.cpp … can't be used to capture by name`` and FFmpeg's ``Connection refused`` on
    every retry, beside our one warning. Both levels come from the environment, read when OpenCV is first
    imported (``OPENCV_LOG_LEVEL``) and at the first FFmpeg open (``OPENCV_FFMPEG_LOGLEVEL``, an FFmpeg
    ``AV_LOG_*`` level, -8 quiet): so this runs before ``run`` imports OpenCV. The environment wins when it
    sets them, and both stay as they are at ``log.level = debug``."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
