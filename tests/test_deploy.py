"""`make deploy` end to end: real sshd and rsync, a throwaway root, stand-ins for systemctl and apt-get."""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import required
from tools.web_daemon import free_port

REPO = Path(__file__).resolve().parents[1]
IMPORT_CHECK = "import cv2, paho.mqtt.client, device.config; print(device.config.__file__)"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# Stands in for systemctl, apt-get, useradd, usermod and journalctl: records its name and arguments.
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> {log}
case "$(basename "$0") $1" in
  "systemctl is-active") echo active ;;
  "systemctl is-failed") exit 1 ;;
esac
exit 0
"""


def _requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(("#", "-"))]


def test_device_requirements_match_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [dep.replace(" ", "") for dep in pyproject["project"]["dependencies"]]
    got = [dep.replace(" ", "") for dep in _requirement_lines((REPO / "requirements/device.txt").read_text())]
    assert got == wanted, "requirements/device.txt and pyproject.toml [project.dependencies] differ"
    assert not any("tensorflow" in dep.lower() for dep in got), "the Pi must never install TensorFlow"


@pytest.mark.parametrize("target", ["deploy", "deploy-check", "rollback"])
def test_deploy_without_pi_says_what_to_do(target: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PI"}
    result = subprocess.run(
        ["make", "-s", "-f", "deploy/deploy.mk", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    first = result.stderr.splitlines()[0]  # make adds its own "Error 1" line after ours
    assert first.startswith("deploy: error:") and f"make {target} PI=user@host" in first


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A throwaway sshd on a free loopback port that lets the current user in with a throwaway key."""
    if not (Path(SSHD).exists() and shutil.which("rsync") and shutil.which("ssh-keygen")):
        required.missing(
            "needs openssh-server, openssh-client and rsync (apt-get install openssh-server rsync)"
        )
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    shutil.copy(keys / "client_key.pub", keys / "authorized_keys")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = free_port()
    (keys / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel INFO\n"
    )
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(keys / "sshd_config")], stderr=subprocess.PIPE, text=True
    )
    listening = threading.Event()

    def watch() -> None:
        for line in proc.stderr:
            if "Server listening" in line:
                listening.set()

    threading.Thread(target=watch, name="sshd-log", daemon=True).start()
    try:
        assert listening.wait(10), "sshd did not start listening"
        yield {
            "PI": f"{getpass.getuser()}@127.0.0.1",
            "PI_PORT": str(port),
            "PI_KEY": str(keys / "client_key"),
            "PI_SSH_OPTS": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
            " -o BatchMode=yes",
        }
    finally:
        proc.terminate()
        proc.wait(10)


def apt_stand_ins(tmp_path: Path) -> Path:
    """A folder holding stand-ins for apt's picamera2 and libcamera: they import (as --check-config imports
    them), and hold the two classes the daemon imports, which open no camera."""
    site = tmp_path / "apt-site"
    for name, held in (("picamera2", "Picamera2"), ("libcamera", "Transform")):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(f"class {held}:  # a stand-in\n    pass\n")
    return site


@pytest.mark.slow
def test_deploy_redeploy_rollback(sshd: dict[str, str], tmp_path: Path) -> None:
    root, bin_dir, calls = tmp_path / "root", tmp_path / "bin", tmp_path / "calls.log"
    root.mkdir()
    bin_dir.mkdir()
    for name in ("systemctl", "apt-get", "useradd", "usermod", "journalctl"):
        (bin_dir / name).write_text(RECORDER.format(log=calls))
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        **sshd,
        "PI_ROOT": str(root),
        "PI_STAGING": str(tmp_path / "upload"),
        **{
            f"PI_{name.upper().replace('-', '_')}": str(bin_dir / name)
            for name in ("systemctl", "apt-get", "useradd", "usermod", "journalctl")
        },
        # The venv is made from this interpreter, and this environment's site-packages stands in for the
        # apt-installed packages (python3-picamera2 and friends on the Pi): pip finds everything installed,
        # so the test needs no network. Picamera2 itself, which --check-config imports with the shipped
        # config's camera.source = "picamera2", is a stand-in that opens no camera.
        "PI_PYTHON": sys.executable,
        "PI_EXTRA_SITE": os.pathsep.join([sysconfig.get_paths()["purelib"], str(apt_stand_ins(tmp_path))]),
    }

    def make(target: str) -> str:
        result = subprocess.run(
            ["make", "-s", "-f", "deploy/deploy.mk", target],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"make {target} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    app, etc = root / "opt/moodcast", root / "etc/moodcast"
    out = make("deploy")
    assert "pi: systemd: moodcast.service is active" in out
    first = app / os.readlink(app / "current")
    names = {path.name for path in first.iterdir()}
    assert {"device", "models", "systemd", "requirements", "venv", "RELEASE"} <= names
    assert not names & {"train", "convert", "tests", "runs", "data", ".venv", "tools", "Makefile"}
    assert (first / "device/config.py").is_file() and (first / "requirements/device.txt").is_file()
    shipped = {p.name for p in (REPO / "models").glob("*") if p.suffix in (".tflite", ".json")}
    assert shipped <= {p.name for p in (first / "models").iterdir()}
    imported = subprocess.run(
        ["./venv/bin/python", "-c", IMPORT_CHECK], cwd=first, capture_output=True, text=True, timeout=60
    )
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).resolve().is_relative_to(first.resolve())
    # --version reads the release's pyproject.toml on a Pi, where nothing is installed: it must be uploaded
    assert (first / "pyproject.toml").read_text() == (REPO / "pyproject.toml").read_text()
    version = subprocess.run(
        ["./venv/bin/python", "-m", "device", "--version"],
        cwd=first,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.startswith("moodcast "), version.stderr
    assert (root / "etc/systemd/system/moodcast.service").read_text() == (
        REPO / "systemd/moodcast.service"
    ).read_text()
    assert (etc / "moodcast.toml").read_text() == (REPO / "systemd/moodcast.toml").read_text()
    assert stat.S_IMODE((etc / "moodcast.env").stat().st_mode) == 0o600
    log = calls.read_text()
    for call in (
        "systemctl daemon-reload",
        "systemctl enable --quiet moodcast.service",
        "systemctl restart moodcast.service",
        "systemctl is-active --quiet moodcast.service",
    ):
        assert call in log
    assert "useradd --system" in log and log.rstrip().count("systemctl restart") == 1
    assert "apt-get install" in log and "python3-picamera2" in log

    # A user's edit survives the next deploy; the new release becomes current, the first one previous.
    edited = (etc / "moodcast.toml").read_text().replace('host = "localhost"', 'host = "broker.lan"')
    (etc / "moodcast.toml").write_text(edited)
    out = make("deploy")
    assert "venv: reusing" in out
    second = app / os.readlink(app / "current")
    assert second != first and os.readlink(app / "previous") == f"releases/{first.name}"
    assert (etc / "moodcast.toml").read_text() == edited
    assert os.readlink(second / "venv") == os.readlink(first / "venv")
    assert calls.read_text().count("systemctl restart moodcast.service") == 2

    make("rollback")
    assert os.readlink(app / "current") == f"releases/{first.name}"
    assert os.readlink(app / "previous") == f"releases/{second.name}"
    assert calls.read_text().count("systemctl restart moodcast.service") == 3


@pytest.mark.parametrize("bits", [32, 64])
def test_check_names_a_32_bit_system_as_a_blocker(bits: int, tmp_path: Path) -> None:
    """deploy-check said nothing on a 32-bit Pi OS (armhf), where no TFLite runtime installs. The 32-bit
    interpreter cannot exist here: a stand-in answers the pointer-size probe and passes the rest on."""
    python = tmp_path / "python3"
    python.write_text(
        f'#!/bin/sh\ncase "$2" in *calcsize*) echo {bits} ;; *) exec {sys.executable} "$@" ;; esac\n'
    )
    python.chmod(0o755)
    env = {**os.environ, "PI_ROOT": str(tmp_path), "PI_SYSTEMCTL": "true", "PI_PYTHON": str(python)}
    result = subprocess.run(
        ["sh", str(REPO / "deploy" / "remote-install.sh"), "check"], capture_output=True, text=True, env=env
    )
    blockers = [line for line in result.stdout.splitlines() if "BLOCKER" in line]
    if bits == 32:
        assert result.returncode == 1 and blockers == [
            "pi: BLOCKER: 32-bit system: the TFLite runtime needs a 64-bit OS (Raspberry Pi OS 64-bit, arm64)"
        ], result.stdout
    else:
        assert result.returncode == 0 and not blockers, result.stdout
