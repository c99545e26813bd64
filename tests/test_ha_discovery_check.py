"""``python -m tools.ha_discovery_check`` run as a user runs it: one line and exit 1 when Home Assistant is
not installed or fails to import, argparse's usage error and exit 2 for a wrong command line, and a verdict
line per payload. Home Assistant cannot be installed here (no network): stand-ins of its modules play it."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROG = "ha_discovery_check"


def run_check(*args: str, site: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The tool run with this venv's Python, with the packages in ``site`` importable when given."""
    path = [str(ROOT)] + ([str(site)] if site else [])
    return subprocess.run(
        [sys.executable, "-m", f"tools.{PROG}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
    )


def home_assistant(tmp_path: Path, modules: dict[str, str]) -> Path:
    """A site folder holding a stand-in ``homeassistant`` package: each module (dotted name under it) with
    its source, every package between them empty."""
    site = tmp_path / "site"
    for dotted, source in {"const": "__version__ = '2023.7.0'\n", **modules}.items():
        path = site.joinpath("homeassistant", *dotted.split("."))
        for folder in [site / "homeassistant", *path.parents]:
            if folder.is_relative_to(site / "homeassistant"):
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "__init__.py").touch()
        path.with_suffix(".py").write_text(source)
    return site


CORE = "class HomeAssistant:\n    def __init__(self, config_dir):\n        pass\n"


def test_without_home_assistant_it_says_so_in_one_line_and_exits_1() -> None:
    if find_spec("homeassistant") is not None:
        pytest.skip("homeassistant is installed here")
    result = run_check()
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"{PROG}: Home Assistant is not installed for {sys.executable}; "
        "run this tool with the Python of a venv that has it "
        "(pip install homeassistant; see tools/ha_discovery_check.py)"
    ], result.stderr
    assert result.stdout == ""


def test_a_wrong_command_line_is_a_usage_error() -> None:
    result = run_check("--url", "http://localhost:1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].endswith("error: unrecognized arguments: --url http://localhost:1")
    assert "Traceback" not in result.stderr


def test_a_home_assistant_failing_to_import_is_one_line(tmp_path: Path) -> None:
    """A dependency missing from its venv, or a component raising at import: the module and its error."""
    missing = run_check(site=home_assistant(tmp_path / "dep", {"core": "import aiohttp_not_here\n"}))
    assert (missing.returncode, missing.stderr.splitlines()) == (1, [
        f"{PROG}: Home Assistant cannot be imported: homeassistant.core: ModuleNotFoundError: "
        "No module named 'aiohttp_not_here'; reinstall it"
    ]), missing.stderr  # fmt: skip
    broken = home_assistant(
        tmp_path / "broken",
        {"core": CORE, "components.mqtt.sensor": "raise RuntimeError('half installed')\n"},
    )
    result = run_check(site=broken)
    assert (result.returncode, result.stderr.splitlines()) == (1, [
        f"{PROG}: Home Assistant cannot be imported: homeassistant.components.mqtt.sensor: RuntimeError: "
        "half installed; reinstall it"
    ]), result.stderr  # fmt: skip


def test_each_payload_gets_its_verdict_and_any_failure_exits_1(tmp_path: Path) -> None:
    """Sensors kept less the key the release does not know, a binary sensor refused, and no MQTT event
    platform (before 2023.8): one line each on stdout, nothing on stderr, exit 1."""
    site = home_assistant(tmp_path, {
        "core": CORE,
        "components.mqtt.sensor": (
            "def DISCOVERY_SCHEMA(payload):\n"
            "    return {k: v for k, v in payload.items() if k != 'default_entity_id'}\n"
        ),
        "components.mqtt.binary_sensor": (
            "def DISCOVERY_SCHEMA(payload):\n    raise ValueError(\"extra keys not allowed @ data['x']\")\n"
        ),
    })  # fmt: skip
    result = run_check(site=site)
    assert (result.returncode, result.stderr) == (1, ""), result.stderr
    lines = result.stdout.splitlines()
    verdicts = {line.split(": ")[1].split("/")[1]: line.split(": ", 2)[2] for line in lines}
    assert verdicts == {
        "sensor": "valid; dropped ['default_entity_id']",
        "binary_sensor": "INVALID: extra keys not allowed @ data['x']",
        "event": "UNSUPPORTED: this release has no MQTT event discovery",
    }, result.stdout
    assert all(line.startswith("Home Assistant 2023.7.0: homeassistant/") for line in lines)
