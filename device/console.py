"""What a command line prints: a line on stdout or stderr that ends quietly when its reader went away.

The daemon's ``--version``, ``--print-config`` and ``--check-config``, and the reports and one-line errors of
``python -m train``, ``python -m convert`` and ``tools/`` all print through these two, so ``| head -c1``,
``2>&1 | head -c1`` and ``2>&-`` behave alike everywhere (train/, convert/ and tools/ may import device/).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from device.paths import discard_writes


def print_out(text: str, prog: str) -> int:
    """Print ``text`` (and a newline) on stdout: 0 once it is flushed, else 1. A reader that went away
    (``| head -n1``) ends it quietly, as Python's signal docs advise ("Note on SIGPIPE"): stdout is pointed at
    /dev/null (``discard_writes``), so later prints and the interpreter's flush at exit raise nothing. Any
    other write error (``>/dev/full``), or no stdout at all (``>&-``, None in Python), is one line on stderr
    beginning ``prog:``, said once: the prints after it go to /dev/null too."""
    if sys.stdout is None:
        print_err(f"{prog}: cannot write to stdout: it is closed")
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (stdout from now on: said once)
        return 1
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError as err:
        _stdout_lost(sys.stdout, err, prog)
        return 1
    return 0


def _stdout_lost(stream: TextIO, err: OSError, prog: str) -> None:
    """After a failed write to stdout (``stream``): point it at /dev/null (``discard_writes``), and say why
    on stderr unless its reader went away (a broken pipe is how a reader that has what it wanted ends)."""
    discard_writes(stream)
    if not isinstance(err, BrokenPipeError):
        print_err(f"{prog}: cannot write to stdout: {err.strerror or err}")


def print_err(text: str) -> None:
    """Print ``text`` (and a newline) on stderr: an error, or a verdict. A reader that went away
    (``2>&1 | head -c1``), or any other write error, leaves nowhere to say so: stderr is pointed at /dev/null
    (``discard_writes``), as for stdout in :func:`print_out`, so neither this line nor the interpreter's flush
    at exit raises, and the exit status still tells the outcome. Nothing is printed without a stderr
    (``2>&-``, None in Python); never raises."""
    if sys.stderr is None:
        return
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except OSError:
        discard_writes(sys.stderr)


class _LossTolerantStdout:
    """``sys.stdout`` for a command whose libraries print on it themselves (Keras's progress lines in
    ``model.fit``): a write that fails (a reader gone, ``>/dev/full``) is dropped as :func:`print_out` drops
    it, the stream pointed at /dev/null (``discard_writes``) and any error other than a broken pipe said once
    on stderr, rather than raised out of the library into the work."""

    def __init__(self, stream: TextIO, prog: str) -> None:
        self._stream = stream
        self._prog = prog
        self._lost = False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as err:
            self._lose(err)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as err:
            self._lose(err)

    def _lose(self, err: OSError) -> None:
        if self._lost:  # a stream with no descriptor of its own keeps failing: said once
            discard_writes(self._stream)
        else:
            _stdout_lost(self._stream, err, self._prog)
        self._lost = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


@contextmanager
def tolerating_lost_stdout(prog: str) -> Iterator[None]:
    """Within it, ``sys.stdout`` is safe for libraries that print on it while the command works (Keras's
    ``model.fit``): a reader that goes away (``| head -c1``, ``2>&1 | head -c1``) or a failed write no longer
    raises out of them and stops the work, and with no stdout (``>&-``, None in Python, where their
    ``sys.stdout.write`` raised AttributeError) it is said once on stderr, as :func:`print_out` says it, and
    the prints go to /dev/null. The command's status is then its work's. ``sys.stdout`` is put back after."""
    saved = sys.stdout
    if saved is None:
        print_out("", prog)  # says it once and points sys.stdout at /dev/null
    else:
        sys.stdout = _LossTolerantStdout(saved, prog)
    try:
        yield
    finally:
        if saved is None:
            sys.stdout.close()
        sys.stdout = saved
