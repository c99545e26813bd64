"""train, convert and tools/ print through ``device.console``: a reader gone, or no stdout or stderr, ends
them as it ends the daemon's ``--check-config`` (tests/test_version.py): no traceback, their own status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.broken_pipes import ROOT, run_with_stderr_gone, run_with_stdout_gone


# A module run as `python -m <module>` runs it, with an uncaught exception told on stdout: stderr, where
# Python prints its traceback, is the broken pipe under test.
@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["train", "--data", "{tmp}/missing", "--out", "{tmp}/run"], 2),
        (["train", "--epochs", "0"], 2),  # argparse's own error: argparse drops a failed write itself
        (["convert", "--model", "{tmp}/missing.keras", "--out", "{tmp}/x.tflite"], 2),
        (["convert", "--out", "{tmp}/folder/"], 2),  # argparse's parser.error
        (["tools.compare_events", "{tmp}/missing.jsonl", "{tmp}/missing.jsonl"], 2),
        (["tools.make_scene_clips", "--data", "{tmp}"], 1),
    ],
    ids=["train", "train usage", "convert", "convert usage", "compare_events", "make_scene_clips"],
)
def test_an_error_on_a_stderr_whose_reader_is_gone_keeps_the_status(
    args: list[str], status: int, tmp_path: Path
) -> None:
    """``python -m train --data missing 2>&1 | head -c1`` ended in a BrokenPipeError traceback (on the same
    broken stderr) and exit 1, not the 2 of a bad argument; convert's and the tools' one-line errors the same.
    Now the line is dropped, as the daemon's is, and the status alone says what happened."""
    result = run_with_stderr_gone(*(arg.format(tmp=tmp_path) for arg in args), timeout_s=120)
    assert (result.returncode, result.stdout) == (status, "")


def test_an_error_with_stderr_closed_is_not_printed_on_stdout(tmp_path: Path) -> None:
    """With ``2>&-`` Python has no sys.stderr, and print(file=None) writes on stdout: train's error went into
    the output a script reads. Now it goes nowhere (as the daemon's does) and the status says it."""
    command = [sys.executable, "-m", "train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]
    closed = ["sh", "-c", 'exec "$0" "$@" 2>&-', *command]
    result = subprocess.run(closed, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert (result.returncode, result.stdout) == (2, "")


def events_file(path: Path) -> Path:
    """One face's events, enough for compare_events to PASS the file against itself."""
    events = [
        {"type": "new", "face_id": 1, "frame": 0, "box": [10, 10, 40, 40], "emotion": "happy"},
        {"type": "end", "face_id": 1, "frame": 5, "box": [10, 10, 40, 40]},
    ]
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return path


def test_a_report_on_a_stdout_whose_reader_is_gone_keeps_the_status(tmp_path: Path) -> None:
    """``python -m tools.compare_events a b | head -c1`` ended in a BrokenPipeError traceback and exit 1 for
    two runs that agree. The verdict is its exit status: a reader gone drops the line quietly; a closed stdout
    (``>&-``, where print() printed nothing) is said on stderr, as the daemon says it."""
    events = str(events_file(tmp_path / "events.jsonl"))
    command = [sys.executable, "-m", "tools.compare_events", events, events]
    assert run_with_stdout_gone(command, timeout_s=60) == (0, "")  # | true
    closed = ["sh", "-c", 'exec "$0" "$@" >&-', *command]
    result = subprocess.run(closed, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (result.returncode, result.stderr) == (0, "compare_events: cannot write to stdout: it is closed\n")


def test_a_closed_stdout_is_said_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """convert prints its summary and then its extras: with no stdout (``>&-``) each print said so."""
    from device.console import print_out

    monkeypatch.setattr(sys, "stdout", None)
    assert print_out("summary", "convert") == 1
    assert print_out("extras", "convert") == 0  # to /dev/null: nothing more to say
    assert capsys.readouterr().err == "convert: cannot write to stdout: it is closed\n"


@pytest.mark.slow  # two short trainings: make test-slow
@pytest.mark.parametrize("stdout", ["reader gone", "closed"])
def test_a_training_whose_stdout_is_lost_trains_to_its_end(stdout: str, tmp_path: Path) -> None:
    """Keras prints each epoch on stdout itself: ``python -m train ... | head -c1`` stopped at the first
    epoch's line in a BrokenPipeError traceback, exit 1, and ``>&-`` in an AttributeError on None, before
    training a step. The run's outcome is its files: it trains to its end and exits 0, a closed stdout said
    once on stderr."""
    from tests.fixtures_model import FER_MINI, TRAIN_ARGS

    out = tmp_path / "run"
    command = [sys.executable, "-m", "train", "--data", str(FER_MINI), "--out", str(out), *TRAIN_ARGS]
    if stdout == "closed":
        closed = ["sh", "-c", 'exec "$0" "$@" >&-', *command]
        result = subprocess.run(closed, capture_output=True, text=True, timeout=300, cwd=ROOT)
        status, stderr = result.returncode, result.stderr
        assert "train: cannot write to stdout: it is closed\n" in stderr
    else:
        status, stderr = run_with_stdout_gone(command, timeout_s=300)  # gone before the first epoch's line
    assert status == 0 and "Traceback" not in stderr, stderr[-2000:]
    assert (out / "model.keras").is_file() and (out / "report.json").is_file()
    assert not (out / "backup").exists()  # trained to its end


@pytest.mark.slow  # the placeholder model and two int8 conversions: make test-slow
@pytest.mark.parametrize("stderr", ["reader gone", "closed"])
def test_a_conversion_whose_stderr_is_lost_keeps_its_status(
    stderr: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The converter's own line on stderr ('fully_quantize: 0, ...', LLVM's errs()) failed with the reader
    gone (``2>&1 | head -c1``) or no stderr (``2>&-``); LLVM remembers that and, at exit, said 'LLVM ERROR: IO
    failure on output stream' and exited 1, after a conversion that wrote its model and card."""
    from tests.fixtures_model import FER_MINI

    out = tmp_path / "m.tflite"
    args = ["convert", "--model", str(tiny_model_dir / "train" / "model.keras"), "--data", str(FER_MINI)]
    args += ["--out", str(out)]
    if stderr == "closed":
        closed = ["sh", "-c", 'exec "$0" "$@" 2>&-', sys.executable, "-m", *args]
        result = subprocess.run(closed, capture_output=True, text=True, timeout=300, cwd=ROOT)
    else:
        result = run_with_stderr_gone(*args, timeout_s=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "uncaught" not in result.stdout and out.is_file()


@pytest.mark.parametrize(
    ("module", "flag"),
    [
        ("train", "--votes"),
        ("train", "--teacher"),
        ("train", "--init"),
        ("convert", "--model"),
        ("convert", "--training"),
        ("convert", "--votes"),
        ("convert", "--crop"),
    ],
)
def test_an_option_naming_a_file_refuses_a_folders_spelling_and_an_empty_path(
    module: str, flag: str, tmp_path: Path
) -> None:
    """'model.keras/' was quietly used as model.keras (Path drops the '/'), though --out refused the same
    spelling, and '' became '.', 'is a folder'; both are now argparse's one usage error, before TensorFlow."""
    given = tmp_path / "model.keras"
    given.write_bytes(b"")
    for raw, said in (
        (f"{given}/", f"'{given}/' names a folder (it ends in '/'), expected a file; write it as {given}"),
        ("", "expected a file's path, got an empty path"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", module, flag, raw], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines()[-1].endswith(f"error: argument {flag}: {said}"), result.stderr
