"""``python -m device --version``: the running tree's pyproject.toml (the project, a release that make deploy
copied to the Pi, installing nothing), else the installed distribution's version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.broken_pipes import run_with_stderr_gone, run_with_stdout_gone

ROOT = Path(__file__).resolve().parent.parent


def test_version_prints_the_trees_version_whatever_the_config(tmp_path: Path) -> None:
    """There was no --version; it answers before the config is read, so a broken config does not stop it."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for extra in ([], ["--config", str(tmp_path / "nosuch.toml")]):
        result = subprocess.run(
            [sys.executable, "-m", "device", "--version", *extra], capture_output=True, text=True, timeout=60
        )
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        assert result.stdout == f"moodcast {version}\n"


def test_a_tree_whose_version_changed_since_it_was_installed_says_its_own(tmp_path: Path) -> None:
    """An editable install's metadata keeps the version it was installed with: after a version bump in
    pyproject.toml, --version printed the old one until the project was installed again."""
    release, _ = deployed_tree(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "device", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=release,
        env={"PYTHONPATH": str(release), "PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.startswith("moodcast 9.8.7+")
    assert metadata.version("moodcast") != result.stdout.split()[1]  # the distribution is installed here


def deployed_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A release as make deploy uploads it (device/ and pyproject.toml, the version changed to tell it from
    the installed one), and this venv's site-packages without the moodcast distribution, as on the Pi."""
    release, site = tmp_path / "release", tmp_path / "site"
    shutil.copytree(ROOT / "device", release / "device", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    (release / "pyproject.toml").write_text(text.replace('version = "', 'version = "9.8.7+', 1))
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "moodcast" not in entry.name and entry.suffix != ".pth":
            (site / entry.name).symlink_to(entry)
    return release, site


def run_in_release(release: Path, site: Path) -> subprocess.CompletedProcess:
    # -S: no site-packages, so no moodcast distribution; the dependencies come from ``site`` instead
    return subprocess.run(
        [sys.executable, "-S", "-m", "device", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=release,
        env={"PYTHONPATH": f"{release}:{site}", "PATH": "/usr/bin:/bin"},
    )


def test_version_of_a_tree_that_is_not_installed_comes_from_its_pyproject(tmp_path: Path) -> None:
    release, site = deployed_tree(tmp_path)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run_in_release(release, site)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == f"moodcast 9.8.7+{version}\n"

    (release / "pyproject.toml").unlink()  # a tree copied without it: one line naming the file, exit 1
    result = run_in_release(release, site)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"moodcast: version unknown: no moodcast distribution is installed and there is no "
        f"{release / 'pyproject.toml'}; install the project (pip install .) or put its pyproject.toml there"
    ]


@pytest.mark.parametrize("flag", ["--version", "--print-config"])
def test_what_is_printed_on_stdout_fails_like_a_unix_tool(flag: str) -> None:
    """``--print-config | head -n1`` ended in a BrokenPipeError traceback, ``>/dev/full`` in an OSError one,
    and ``>&-`` in an AttributeError (or, for --version, nothing said and exit 0). A reader gone ends it
    quietly with exit 1, as Python's signal docs advise ("Note on SIGPIPE"); the others in one line."""
    command = [sys.executable, "-m", "device", flag]
    assert run_with_stdout_gone(command, timeout_s=60) == (1, "")  # | true
    with open("/dev/full", "w") as full:  # what >/dev/full gives it
        result = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (
        1,
        "moodcast: cannot write to stdout: No space left on device\n",
    )
    closed = ["sh", "-c", 'exec "$0" "$@" >&-', *command]
    result = subprocess.run(closed, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (1, "moodcast: cannot write to stdout: it is closed\n")


@pytest.mark.parametrize(
    ("args", "status"),
    [(["--check-config"], 0), (["--check-config", "--mqtt-port", "0"], 1), (["--mqtt-port", "0"], 1)],
    ids=["config OK", "check-config error", "config error"],
)
def test_what_is_printed_on_stderr_fails_like_a_unix_tool(args: list[str], status: int) -> None:
    """``--check-config 2>&1 | head -c1`` ended in a BrokenPipeError traceback and exit 1 for a good config:
    stderr's reader had gone. Now stderr is silenced as stdout is ("Note on SIGPIPE"), and the exit status
    alone says how it went. A real pipe whose reader is gone before the first write (| head -c0)."""
    result = run_with_stderr_gone("device", *args, timeout_s=60)
    assert (result.returncode, result.stdout) == (status, "")
