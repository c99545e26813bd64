"""Why a file the config names cannot be read, or written where the daemon writes it: one line each.

Shared by ``--check-config`` (``device/preflight.py``) and the parts that open the files at start, so both say
the same thing for the same cause.
"""

from __future__ import annotations

import os
from pathlib import Path


def file_problem(path: Path, what: str) -> str:
    """One line naming ``path`` and what is wrong with it as ``what``, or "" when it is a readable file."""
    if path.is_dir():
        return f"{path}: is a folder, expected the {what}"
    if not path.exists():
        return f"{path}: {what} not found"
    if not os.access(path, os.R_OK):
        return f"{path}: {what} is not readable by this user (permission denied)"
    return ""


def output_problem(path: Path, what: str) -> str:
    """One line naming ``path`` and why the daemon cannot write the ``what`` there (a folder in its place, a
    file where its folder should be, a folder that does not exist, no permission), or "" when it can."""
    if path.is_dir():
        return f"{path}: is a folder, expected the {what}'s path"
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        return f"{path}: {folder} is a file, not a folder"
    if not folder.is_dir():
        return f"{path}: folder {folder} does not exist; create it"
    writable = os.access(path, os.W_OK) if path.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        return f"{path}: the {what} cannot be written by this user (permission denied)"
    return ""
