"""Why a file the config names cannot be read, or written where the daemon writes it: one line each;
``file_argument``, the one check of a command-line option naming a file; ``write_whole``, the one way files
are written whole or not at all; and ``discard_writes``, the one way an
output whose writes failed for good (a pipe whose reader went away) is silenced.

The wording is shared by ``--check-config`` (``device/preflight.py``) and the parts that open the files at
start, so both say the same thing for the same cause. ``write_whole`` is shared by the feedback store, the
outbox's ``.seq`` file and ``python -m convert`` (which may import device/, never the other way round).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import stat
from pathlib import Path
from typing import IO


def file_problem(path: Path, what: str) -> str:
    """One line naming ``path`` and what is wrong with it as ``what``, or "" when it is a readable file."""
    if path.is_dir():
        return f"{path}: is a folder, expected the {what}"
    if not path.exists():
        return f"{path}: {what} not found"
    if not os.access(path, os.R_OK):
        return f"{path}: {what} is not readable by this user (permission denied)"
    return ""


def file_argument(raw: str) -> Path:
    """argparse's ``type=`` for an option that names a file: ``raw`` as a Path. Raises
    argparse.ArgumentTypeError (argparse's one usage line) when ``raw`` is empty, which Path makes '.', or is
    written as a folder's (``named_as_folder``), which Path would quietly turn into the file's own name
    ("model.keras/" into "model.keras")."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("expected a file's path, got an empty path")
    if spelled := named_as_folder(raw):
        raise argparse.ArgumentTypeError("; ".join(spelled))
    return Path(raw)


def named_as_folder(raw: str) -> tuple[str, str] | None:
    """What is wrong, and what to do, when ``raw``, a setting that must name a file, is written as a folder's
    path: it ends in '/' or '/.', which Path drops ("clip.mp4/" becomes "clip.mp4"), so the file was used (or
    written) though open() refuses the spelling (ENOTDIR), or in '/..' (a folder even where the one before
    it does not exist yet), or it is '.' or '..'; None when it is not. The one wording for every setting
    that names a file: where a file is there without the '/', the line says to write its name without it,
    else to add the file's name."""
    last = os.path.basename(raw)
    if raw.endswith(("/", os.sep)):
        how = "it ends in '/'"
    elif last not in (".", ".."):
        return None
    elif raw in (".", ".."):
        how = "the working folder" if raw == "." else "the working folder's parent"
    else:
        how = f"it ends in '/{last}'"
    path = Path(raw)
    return f"{raw!r} names a folder ({how}), expected a file", (
        f"write it as {path}" if path.is_file() else "add the file's name"
    )


def video_file_problem(path: Path) -> str:
    """``file_problem`` for ``camera.device`` naming a video file: the one wording of a folder, a missing
    or an unreadable video, which ``--check-config`` and the daemon's file source both give."""
    return file_problem(path, "video file")


def discard_writes(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at /dev/null, as Python's signal docs advise for a broken pipe
    ("Note on SIGPIPE"): what is still buffered, and the interpreter's flush of stdout and stderr at exit,
    then go nowhere instead of raising again. Nothing for a stream with no descriptor of its own; never
    raises."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):  # no descriptor (io.UnsupportedOperation is a ValueError), or closed
        pass
    finally:
        os.close(devnull)


def output_problem(path: Path, what: str) -> str:
    """One line naming ``path`` and why the daemon cannot write the ``what`` there (a folder in its place, a
    file where its folder should be, a folder that does not exist, a read-only mount, no permission), or ""
    when it can. A symbolic link is judged by the file it names: its folder, its mount (a link that names
    nothing yet, or whose folder is gone, passed, and the writer failed later with another cause)."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=False)
        except (OSError, RuntimeError):  # a loop of links: ELOOP, or RuntimeError before Python 3.13
            return f"{path}: a link that cannot be followed (a loop?); fix the link"
        problem = output_problem(target, what)
        return f"{path}: a link to {problem}" if problem else ""
    if path.is_dir():
        return f"{path}: is a folder, expected the {what}'s path"
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        return f"{path}: {folder} is a file, not a folder"
    if not folder.is_dir():
        return f"{path}: folder {folder} does not exist; create it"
    if on_read_only_mount(folder):
        return f"{path}: {folder} is on a read-only mount ('ro' in mount's list); write the {what} elsewhere"
    writable = os.access(path, os.W_OK) if path.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        return f"{path}: the {what} cannot be written by this user (permission denied)"
    return ""


def temp_name(path: Path) -> Path:
    """Where ``write_whole`` writes ``path`` before moving it into place: a hidden ``.<name>.tmp`` beside it,
    which ``train``'s image loader skips (``.tmp`` is not an image suffix) and a glob of ``*.png`` does not
    match."""
    return path.with_name(f".{path.name}.tmp")


def write_whole(contents: dict[Path, bytes], durable: bool = False) -> None:
    """Write each of ``contents``'s files whole or not at all: each is written beside its path under
    ``temp_name(path)``, then all are moved into place (``os.replace``), so a full disk, a file-size limit or
    no permission leaves the files that were there whole, never a truncated one (nor a new file beside an old
    one when the second of two cannot be written). With ``durable`` each file and, once moved, its folder is
    fsynced, so a power cut leaves the old file or the new, never an empty one. The folders must exist.

    A regular file left at a temp path (a power cut) is written over; anything else there (a folder, a pipe,
    whose open would block for good) is refused. Raises OSError whose ``filename`` is the path in ``contents``
    that could not be written (its ``strerror`` says why); the temp files this call made are removed first.
    """
    made: list[Path] = []
    target: Path | None = None
    try:
        for target, data in contents.items():
            if target.is_dir():  # its os.replace would fail after the files before it were replaced
                raise OSError(errno.EISDIR, "is a folder")
            temp = temp_name(target)
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISREG(os.lstat(temp).st_mode):
                    raise OSError(errno.EEXIST, f"{temp} is in the way and is not a regular file")
                temp.unlink()  # a leftover of a write cut short
            # O_EXCL: whatever appeared there since (a pipe, a link) is refused, never opened or followed;
            # 0o666 less the umask, as open(path, "w") makes it
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
            made.append(temp)
            with open(fd, "wb") as file:
                file.write(data)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
        for target in contents:
            os.replace(temp_name(target), target)
    except OSError as err:
        for temp in made:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(target)) from err
    if durable:
        for folder in {target.parent for target in contents}:
            _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """fsync ``folder``, so the renames in it survive a power cut; quietly not where it cannot be (the files
    are in place by then, and saying they were not written would be wrong)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_size_limit_bytes() -> int | None:
    """This process's file size limit in bytes (RLIMIT_FSIZE's soft limit: ``ulimit -f``, systemd's
    ``LimitFSIZE=``), or None when there is none. A write past it fails with EFBIG."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def on_read_only_mount(path: Path) -> bool:
    """Whether ``path`` (an existing file or folder) is on a mount made read-only (``ro`` in mount's list;
    a card the kernel remounted read-only after errors): no user may write it, root neither, and
    ``os.access`` says only "permission denied". Raises OSError when it cannot be looked at."""
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
