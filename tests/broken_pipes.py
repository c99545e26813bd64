"""Running a command line whose reader is gone: stdout or stderr a real pipe whose read end is closed before
the first write (what ``| true`` or ``2>&1 | head -c1`` becomes once the reader has what it wanted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ``python -m <module> <args>``, with an uncaught exception told on stdout: stderr, the usual place, is the
# broken pipe under test.
ON_BROKEN_STDERR = """
import runpy, sys
sys.excepthook = lambda kind, value, tb: print("uncaught", kind.__name__)
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run_with_stderr_gone(module: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the project's root with stderr a pipe whose reader is gone; stdout
    captured (an uncaught exception is told there as "uncaught <type>")."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-c", ON_BROKEN_STDERR, module, *args],
            stdout=subprocess.PIPE,
            stderr=write_end,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)


def run_with_stdout_gone(command: list[str], timeout_s: float) -> tuple[int, str]:
    """Run ``command`` from the project's root with stdout a pipe whose reader goes away before a line is
    read; its exit status and what it wrote on stderr."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    ) as run:
        assert run.stdout is not None and run.stderr is not None
        run.stdout.close()
        stderr = run.stderr.read()
        return run.wait(timeout=timeout_s), stderr
