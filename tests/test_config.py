"""Config: precedence defaults ← TOML ← env ← CLI, unknown keys and bad values name the key."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import cli_flag, env_key, iter_fields, load_config
from device.errors import ConfigError


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moodcast.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_source():
    config = load_config(None, environ={}, cli={})
    assert config.mqtt.port == 1883
    assert config.http.host == "127.0.0.1"
    assert config.device_id


def test_precedence_toml_then_env_then_cli(tmp_path):
    toml = write_toml(tmp_path, '[mqtt]\nhost = "from-toml"\nport = 1000\nqos = 0\n')
    config = load_config(toml, environ={"MOODCAST_MQTT__PORT": "2000"}, cli={"mqtt.qos": "2"})
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.qos) == ("from-toml", 2000, 2)
    config = load_config(toml, environ={"MOODCAST_MQTT__PORT": "2000"}, cli={"mqtt.port": "3000"})
    assert config.mqtt.port == 3000


def test_three_spellings_of_one_key():
    assert env_key("mqtt.host") == "MOODCAST_MQTT__HOST"
    assert cli_flag("detect.min_size_px") == "--detect-min-size-px"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[mqtt]\nhots = 'x'\n", "mqtt.hots"),
        ("[mqtt]\nport = '18830x'\n", "mqtt.port"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[display]\nbackend = 'hologram'\n", "display.backend"),
        ("[camera]\nrealtime = 'maybe'\n", "camera.realtime"),
        ("[mqtt]\npassword = 'secret'\n", "mqtt.password"),
        ("[mqtt]\nusername = 'u'\n", "mqtt.password"),
        ("[mqtt]\nca_file = '/nonexistent/ca.pem'\n", "mqtt.ca_file"),
        ("[nonsense]\nkey = 1\n", "nonsense.key"),
    ],
)
def test_bad_toml_names_the_key(tmp_path, toml, key):
    with pytest.raises(ConfigError) as caught:
        load_config(write_toml(tmp_path, toml), environ={}, cli={})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="MOODCAST_MQTT__HOTS"):
        load_config(None, environ={"MOODCAST_MQTT__HOTS": "x"}, cli={})


def test_password_from_environment_is_masked_when_printed():
    config = load_config(
        None, environ={"MOODCAST_MQTT__USERNAME": "u", "MOODCAST_MQTT__PASSWORD": "pw"}, cli={}
    )
    assert config.mqtt.password == "pw"
    assert config.masked()["mqtt.password"] == "***"


def test_malformed_toml_names_the_file(tmp_path):
    path = write_toml(tmp_path, "[mqtt\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={}, cli={})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device", *args], capture_output=True, text=True, timeout=60)


def test_check_config_exit_codes(tmp_path):
    good = write_toml(tmp_path, "[mqtt]\nport = 1884\n")
    assert run_cli("--config", str(good), "--check-config").returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nhots = 'x'\n")
    result = run_cli("--config", str(bad), "--check-config")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"moodcast: mqtt.hots: unknown key in {bad}; check its spelling or remove it"
    ]


def test_print_config_applies_cli_flags():
    result = run_cli("--print-config", "--mqtt-port", "1999", "--input", "clip.mp4", "--no-realtime")
    printed = json.loads(result.stdout)
    assert printed["mqtt.port"] == 1999
    assert printed["camera.device"] == "clip.mp4"
    assert printed["camera.realtime"] is False


def test_readme_documents_every_key():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for key, _spec, _value in iter_fields(load_config(None, environ={}, cli={})):
        assert f"`{key}`" in readme, f"README's config table lacks {key}"


@pytest.mark.parametrize(
    ("environ", "key", "expected"),
    [
        ({"MOODCAST_TRACK__SMOOTHING": "nan"}, "track.smoothing", "expected a finite number, got 'nan'"),
        ({"MOODCAST_CAMERA__STALL_TIMEOUT_S": "inf"}, "camera.stall_timeout_s", "expected a finite number"),
        ({"MOODCAST_TRACK__HEARTBEAT_S": "-inf"}, "track.heartbeat_s", "expected a finite number"),
        ({"MOODCAST_MQTT__PREFIX": "home/+/cams"}, "mqtt.prefix", "contains '+', a wildcard"),
        ({"MOODCAST_MQTT__PREFIX": "home/#"}, "mqtt.prefix", "contains '#', a wildcard"),
        ({"MOODCAST_MQTT__PREFIX": "home//cams"}, "mqtt.prefix", "has an empty level"),
        ({"MOODCAST_MQTT__PREFIX": ""}, "mqtt.prefix", "empty"),
        ({"MOODCAST_MQTT__DISCOVERY_PREFIX": "ha/"}, "mqtt.discovery_prefix", "has an empty level"),
        ({"MOODCAST_MQTT__ENABLED": "true", "MOODCAST_MQTT__HOST": ""}, "mqtt.host", "empty, so no broker"),
        ({"MOODCAST_MQTT__PASSWORD": "pw-without-a-user"}, "mqtt.username", "a password is set but no user"),
    ],
)  # fmt: skip
def test_values_a_broker_or_a_json_parser_would_reject_are_refused(environ, key, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ=environ, cli={})
    assert err.value.key == key and expected in str(err.value), str(err.value)


def test_a_config_path_that_is_not_a_readable_utf8_file_is_one_line(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[mqtt]\nhost = "caf\xe9"\n'.encode("latin-1"))
    for path, expected in ((latin1, "not UTF-8 text"), (tmp_path, "is a folder, not a TOML file")):
        result = run_cli("--config", str(path), "--check-config")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"config: {path}: {expected}" in lines[0], lines


def test_check_config_names_every_missing_file(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3")  # a flatbuffer's identifier follows its 4-byte root offset
    result = run_cli("--check-config", "--model-path", str(model), "--input", str(tmp_path / "clip.mp4"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"moodcast: model.path: {tmp_path / 'model.json'}: model card not found",
        f"moodcast: camera.device: {tmp_path / 'clip.mp4'}: video file not found",
    ]
    result = run_cli("--check-config", "--model-path", str(tmp_path))
    assert f"moodcast: model.path: {tmp_path}: is a folder, expected the model file" in result.stderr
    assert run_cli("--check-config", "--input", "0").returncode == 0  # a camera index is not a file


def ours(stderr: str) -> list[str]:
    """The daemon's own lines on stderr (without the TFLite runtime's)."""
    return [line for line in stderr.splitlines() if line.startswith("moodcast: ")]


def test_check_config_says_a_missing_picamera2_as_the_daemon_does():
    """--check-config said "config OK" for camera.source = picamera2 without picamera2 installed; the daemon
    then stopped at start, after loading its model. Both now say it in the same line."""
    if importlib.util.find_spec("picamera2") or importlib.util.find_spec("libcamera"):
        pytest.skip("picamera2 is installed here")
    checked = run_cli("--check-config", "--camera-source", "picamera2")
    started = run_cli("--camera-source", "picamera2", "--events", "-")
    assert (checked.returncode, started.returncode) == (1, 1), checked.stderr + started.stderr
    said = ours(started.stderr)
    assert said == [
        "moodcast: camera.source: picamera2 is not installed; on Raspberry Pi OS run "
        "'sudo apt install python3-picamera2' and create the venv with --system-site-packages"
    ], started.stderr
    assert ours(checked.stderr) == said and "Traceback" not in checked.stderr, checked.stderr


def run_with_site(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m device ARGS`` with the packages in ``site`` importable (stand-ins for apt's picamera2)."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "device", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(site)])},
    )


def stand_ins(tmp_path: Path, picamera2: str, libcamera: str | None = "class Transform:\n    pass\n") -> Path:
    """A site folder with a stand-in picamera2 package whose ``__init__`` is ``picamera2`` and, unless None,
    a libcamera one whose ``__init__`` is ``libcamera`` (the class the daemon imports, by default)."""
    site = tmp_path / "site"
    for name, source in (("picamera2", picamera2), ("libcamera", libcamera)):
        if source is not None:
            (site / name).mkdir(parents=True, exist_ok=True)
            (site / name / "__init__.py").write_text(source)
    return site


def said_by_check_and_daemon(site: Path) -> list[str]:
    """The lines of ours that --check-config says with ``site``'s picamera2 on the path, checked to be the
    daemon's own at start and to end both with exit 1."""
    checked = run_with_site(site, "--check-config", "--camera-source", "picamera2")
    started = run_with_site(site, "--camera-source", "picamera2", "--events", "-")
    assert (checked.returncode, started.returncode) == (1, 1), checked.stderr + started.stderr
    assert ours(checked.stderr) == ours(started.stderr), checked.stderr + started.stderr
    return ours(checked.stderr)


REINSTALL = "reinstall it: 'sudo apt install --reinstall python3-picamera2'"
NUMPY_FIX = (
    "the venv's NumPy is not the one apt's picamera2 was built for: in the venv run pip install 'numpy<2' "
    "(Raspberry Pi OS bookworm; docs/DEPLOY.md)"
)
CANNOT_IMPORT = "moodcast: camera.source: picamera2 is installed but cannot be imported"


def test_check_config_imports_picamera2_as_the_daemon_does(tmp_path):
    """A picamera2 installed but failing to import passed --check-config, which looked for it by name only,
    and the daemon then said at start that it was not installed. Both now say it cannot be imported, with its
    own error and what to do: a NumPy error is the venv's NumPy, not picamera2 (reinstalling it, the advice
    the fresh-clone check followed, changes nothing). One that imports passes the check."""
    broken = "raise ImportError('libcamera.so.0.2: cannot open shared object file')\n"
    assert said_by_check_and_daemon(stand_ins(tmp_path, broken)) == [
        f"{CANNOT_IMPORT} (libcamera.so.0.2: cannot open shared object file); {REINSTALL}"
    ]
    numpy = "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n"
    assert said_by_check_and_daemon(stand_ins(tmp_path, numpy)) == [
        f"{CANNOT_IMPORT} (numpy.dtype size changed, may indicate binary incompatibility); {NUMPY_FIX}"
    ]
    result = run_with_site(
        stand_ins(tmp_path, "class Picamera2:\n    pass\n"), "--check-config", "--camera-source", "picamera2"
    )
    assert (result.returncode, ours(result.stderr)) == (0, ["moodcast: config OK"]), result.stderr


def test_check_config_says_a_picamera2_that_exits_at_import(tmp_path):
    """A picamera2 whose import raises SystemExit (a broken install's module calling sys.exit) ended
    --check-config and the daemon with that exit status and no line of ours: 'python -m device --check-config'
    said nothing and exited 3. Both now say it cannot be imported, as for any other failure."""
    assert said_by_check_and_daemon(stand_ins(tmp_path, "raise SystemExit(3)\n")) == [
        f"{CANNOT_IMPORT} (SystemExit: 3); {REINSTALL}"
    ]


def test_check_config_says_picamera2_without_libcamera_is_installed(tmp_path):
    """picamera2 there but the libcamera bindings not (pip installs picamera2 in a venv made without
    --system-site-packages; PyPI has no libcamera) said "picamera2 is not installed" and to apt install it,
    which apt answers is already there. The line now names what is missing: the libcamera bindings."""
    if importlib.util.find_spec("libcamera"):
        pytest.skip("libcamera is installed here")
    site = stand_ins(tmp_path, "class Picamera2:\n    pass\n", libcamera=None)
    assert said_by_check_and_daemon(site) == [
        "moodcast: camera.source: picamera2 is installed but libcamera's Python bindings, which it needs, "
        "are not (PyPI has none); on Raspberry Pi OS run 'sudo apt install python3-libcamera' and create the "
        "venv with --system-site-packages"
    ]


def test_check_config_says_a_picamera2_built_for_numpy_1_in_one_line(tmp_path):
    """A module built for NumPy 1.x under the venv's NumPy 2 (bookworm's simplejpeg under picamera2): NumPy
    writes a dozen lines and a traceback on stderr before it raises, and --check-config printed them all
    above its own line, which says the same in one. The check drops the failing import's own writes to
    stderr (the daemon's log keeps them); the line keeps NumPy's first."""
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        pytest.skip("NumPy 1.x here: no NumPy 1.x ABI message")
    # what a C extension compiled against NumPy 1.x asks NumPy 2 for at import (numpy's import_array)
    site = stand_ins(tmp_path, "from numpy.core._multiarray_umath import _ARRAY_API\n")
    checked = run_with_site(site, "--check-config", "--camera-source", "picamera2")
    assert checked.returncode == 1, checked.stderr
    said = f"{CANNOT_IMPORT} (A module that was compiled using NumPy 1.x cannot be run in); {NUMPY_FIX}"
    assert ours(checked.stderr) == [said], checked.stderr
    rest = checked.stderr.replace(said, "")
    assert "Traceback" not in rest and "compiled using NumPy 1.x" not in rest, checked.stderr


def test_check_config_names_a_missing_model_in_one_line_not_its_card_too(tmp_path):
    """A missing model gave two lines, the second for its card; the card matters only once the model is
    there (the daemon reads the model first), as for a model.path that is a folder."""
    missing = tmp_path / "nosuch.tflite"
    result = run_cli("--check-config", "--model-path", str(missing))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"moodcast: model.path: {missing}: model file not found"]
    result = subprocess.run(
        [sys.executable, "-m", "device", "--check-config", "--model-path", "nosuch.tflite"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "moodcast: model.path: nosuch.tflite: model file not found "
        f"(a relative path, looked for in {tmp_path})"
    ]
    result = run_cli("--check-config", "--model-path", str(tmp_path))
    assert result.stderr.strip().splitlines() == [
        f"moodcast: model.path: {tmp_path}: is a folder, expected the model file"
    ]


@pytest.mark.parametrize("contents", [b"", b"hello\n" * 100], ids=["empty", "text"])
def test_check_config_refuses_a_video_file_that_the_daemon_cannot_play(tmp_path, contents):
    """--check-config said "config OK" for an empty file or one that is no video; the daemon then refused to
    start with "is not a readable video". A photo, which the daemon plays as one frame, is OK."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(contents)
    result = run_cli("--check-config", "--input", str(clip))
    assert result.returncode == 1, result.stderr
    assert f"moodcast: camera.device: {clip} is not a readable video; check the file" in result.stderr
    assert "config OK" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    photo = tmp_path / "photo.png"
    assert cv2.imwrite(str(photo), np.zeros((48, 64, 3), np.uint8))
    assert run_cli("--check-config", "--input", str(photo)).returncode == 0


def test_check_config_names_a_model_path_that_is_no_tflite_file(tmp_path):
    """A wrong file as model.path (the Keras model, a README) was reported as a missing model card."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"PK\x03\x04" + bytes(64))
    result = run_cli("--check-config", "--model-path", str(model))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"moodcast: model.path: {model}: not a TFLite flatbuffer (no TFL3 identifier)"
    ]


def test_the_default_model_missing_from_another_folder_says_where_it_was_looked_for(tmp_path):
    """``moodcast`` run outside the project's folder: the relative default model.path was "not found; run
    'make convert'", though the model ships; the line now names the folder it was read from."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    for args in (["--check-config"], ["--input", str(Path(root) / "samples" / "one-face.mp4")]):
        result = subprocess.run(
            [sys.executable, "-m", "device", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 1
        line = next(line for line in result.stderr.splitlines() if "emotion-int8.tflite" in line)
        assert "models/emotion-int8.tflite: model file not found" in line and str(tmp_path) in line, line


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (" ", "expected at least 16 characters, got 0"),
        ("short-token\n", "expected at least 16 characters, got 11"),
        ("sixteen-chars-but-\u00e9", "expected printable ASCII"),
        ("sixteen chars with blanks", "expected printable ASCII"),
    ],
)
def test_a_token_too_short_or_that_no_header_can_carry_is_refused(token, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"MOODCAST_HTTP__TOKEN": token}, cli={})
    message = str(err.value)
    assert err.value.key == "http.token" and expected in message and "\n" not in message, message
    assert token.strip() not in message or not token.strip()  # the secret is never echoed


def test_a_token_loses_the_blanks_around_it():
    token = "0123456789abcdef0123"
    assert load_config(None, environ={"MOODCAST_HTTP__TOKEN": f" {token}\n"}, cli={}).http.token == token


def test_an_empty_path_is_refused_not_taken_as_the_working_folder():
    with pytest.raises(ConfigError, match=r"^feedback\.dir: expected a path, got ''"):
        load_config(None, environ={}, cli={"feedback.dir": ""})
    result = run_cli("--check-config", "--http-enabled", "--feedback-enabled", "--feedback-dir", "")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "moodcast: feedback.dir: expected a path, got ''; set a path or remove the key"
    ]


def test_a_feedback_dir_that_cannot_be_written_is_refused_at_check_config(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cli = {"http.enabled": True, "feedback.enabled": True, "feedback.dir": str(blocker / "feedback")}
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cli=cli)
    assert err.value.key == "feedback.dir" and f"{blocker} is a file, not a folder" in str(err.value)
    result = run_cli("--check-config", "--http-enabled", "--feedback-enabled", "--feedback-dir", str(blocker))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "feedback.dir" in result.stderr
    ok = {**cli, "feedback.dir": str(tmp_path / "new" / "feedback")}  # created on first use
    assert load_config(None, environ={}, cli=ok).feedback.dir == tmp_path / "new" / "feedback"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("rtps://user:s3cret@127.0.0.1:9/x", "a URL of scheme 'rtps'"),  # was opened as a file, named in full
        ("rtsp:/user:s3cret@cam/x", "a URL of scheme 'rtsp'"),
        (" rtsp://user:s3cret@cam/x", "has blanks before or after it"),  # an environment file's stray space
        ("", "empty"),  # was ". is a folder, expected a video file"
    ],
)
def test_a_camera_device_that_names_nothing_to_open_is_one_line_without_its_password(device, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"MOODCAST_CAMERA__DEVICE": device}, cli={})
    assert err.value.key == "camera.device" and expected in str(err.value), str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_mistyped_stream_url_never_shows_its_password():
    result = run_cli("--input", "rtps://user:s3cret@127.0.0.1:9/x")
    assert result.returncode == 1 and "s3cret" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip().splitlines() == [
        "moodcast: camera.device: a URL of scheme 'rtps': streams are read from rtsp://, rtsps://, http://, "
        "https:// URLs; set a camera index, /dev/videoN, a video file or an rtsp:// or http(s):// URL"
    ]


@pytest.mark.parametrize(
    "device", ["0", "/dev/video0", "samples/one-face.mp4", "rtsp://u:p@cam/x", "HTTP://cam/m"]
)
def test_cameras_files_and_stream_urls_are_taken(device):
    assert load_config(None, environ={"MOODCAST_CAMERA__DEVICE": device}, cli={}).camera.device == device


@pytest.mark.parametrize(
    "host", ["mqtt://user:s3cret@broker.lan", "broker.lan:1883", "user:s3cret@broker", "a b"]
)
def test_a_broker_host_with_a_scheme_user_or_port_is_refused_without_its_password(host):
    """They were taken as host names (``broker.lan:1883:1883 ... not resolved``), the password logged."""
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"MOODCAST_MQTT__HOST": host}, cli={})
    assert err.value.key == "mqtt.host" and "without a scheme, user, port" in str(err.value)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("host", ["broker.lan", "192.168.1.20", "::1", "fe80::1"])
def test_broker_names_and_addresses_are_taken(host):
    assert load_config(None, environ={"MOODCAST_MQTT__HOST": host}, cli={}).mqtt.host == host


def test_events_written_into_the_outbox_file_are_refused(tmp_path):
    """The JSON lines went into the SQLite outbox file and were lost, with no warning."""
    same = str(tmp_path / "both")
    with pytest.raises(ConfigError, match="the same file as mqtt.outbox_path") as err:
        load_config(None, environ={}, cli={"events.path": same, "mqtt.outbox_path": same})
    assert err.value.key == "events.path"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad saves UTF-8 with a BOM: it was 'not valid TOML (Invalid statement (at line 1, column 1))'."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[mqtt]\nport = 1884\n")
    assert load_config(path, environ={}, cli={}).mqtt.port == 1884


def test_check_config_names_the_output_files_the_daemon_could_not_write(tmp_path):
    """It said "config OK", and the daemon then stopped at start on each of them."""
    missing = tmp_path / "nope" / "events.jsonl"
    result = run_cli(
        "--check-config",
        "--events",
        str(missing),
        "--http-enabled",
        "--history-path",
        str(tmp_path),
        "--display-backend",
        "video",
        "--display-video-path",
        str(tmp_path / "gone" / "out.mp4"),
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"moodcast: events.path: {missing}: folder {missing.parent} does not exist; create it",
        f"moodcast: history.path: {tmp_path}: is a folder, expected the history file's path",
        f"moodcast: display.video_path: {tmp_path / 'gone' / 'out.mp4'}: folder {tmp_path / 'gone'} does not "
        "exist; create it",
    ]
    assert run_cli("--check-config", "--events", str(tmp_path / "events.jsonl")).returncode == 0


def test_an_unknown_flag_is_one_line():
    """argparse printed its usage first: 48 lines before the one that says what is wrong."""
    result = run_cli("--detect-smallest-face", "40")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "moodcast: unrecognized arguments: --detect-smallest-face 40 (see --help)"
    ]


def test_a_camera_index_written_as_a_toml_integer_is_taken(tmp_path):
    """``device = 0`` was refused: "expected a string, got 0"."""
    path = write_toml(tmp_path, "[camera]\ndevice = 0\n")
    assert load_config(path, environ={}, cli={}).camera.device == "0"
    with pytest.raises(ConfigError, match=r"expected a string \(in quotes\), got 1.5"):
        load_config(write_toml(tmp_path, "[camera]\ndevice = 1.5\n"), environ={}, cli={})


def test_a_section_written_as_a_value_says_so(tmp_path):
    """``camera = 3`` at the top level was "camera: unknown key", though camera is a section."""
    with pytest.raises(ConfigError, match=r"camera: a section in .*, got a value; write \[camera\]"):
        load_config(write_toml(tmp_path, "camera = 3\n"), environ={}, cli={})


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    """``video_path = "~/x.mp4"`` was taken as a folder named '~': "folder ~ does not exist; create it"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_toml(
        tmp_path,
        '[camera]\ndevice = "~/clip.mp4"\n[display]\nbackend = "video"\nvideo_path = "~/x.mp4"\n'
        '[events]\npath = "~/events.jsonl"\n[mqtt]\noutbox_path = "~/outbox.db"\n',
    )
    config = load_config(path, environ={}, cli={"http.enabled": "true", "history.path": "~/history.db"})
    assert config.camera.device == str(tmp_path / "clip.mp4")
    assert config.display.video_path == tmp_path / "x.mp4"
    assert config.events.path == str(tmp_path / "events.jsonl")
    assert config.mqtt.outbox_path == str(tmp_path / "outbox.db")
    assert config.history.path == str(tmp_path / "history.db")
    assert load_config(None, environ={}, cli={"events.path": "-"}).events.path == "-"


def test_feedback_without_http_is_refused_at_check_config_in_one_line():
    """feedback.enabled without http.enabled was ignored: --check-config said OK and nothing was saved."""
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cli={"feedback.enabled": True})
    assert err.value.key == "feedback.enabled" and "http.enabled" in str(err.value)
    result = run_cli("--check-config", "--feedback-enabled")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "moodcast: feedback.enabled: true, but http.enabled is false: corrections are made on the web page, "
        "so none would be saved; set http.enabled = true too, or remove feedback.enabled"
    ]
    both = {"feedback.enabled": True, "http.enabled": True}
    assert load_config(None, environ={}, cli=both).feedback.enabled


@pytest.mark.parametrize(
    "key",
    [
        "model.path",
        "events.path",
        "history.path",
        "mqtt.outbox_path",
        "mqtt.ca_file",
        "mqtt.cert_file",
        "mqtt.key_file",
        "display.video_path",
    ],
)
@pytest.mark.parametrize("ending", ["/", "/."])
def test_a_file_setting_written_as_a_folder_is_refused(tmp_path, key, ending):
    """``--model-path model.tflite/`` was "config OK" and loaded model.tflite: Path drops a trailing '/' or
    '/.', though open() refuses the spelling (ENOTDIR). Every setting that names a file now refuses it at
    load, as display.video_path did for '/' and camera.device does at open, saying how to write it."""
    there = tmp_path / "file.bin"
    there.write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cli={key: f"{there}{ending}"})
    folder = f"names a folder (it ends in '{ending}'), expected a file"
    assert str(err.value) == f"{key}: '{there}{ending}' {folder}; write it as {there}"
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cli={key: f"{tmp_path}/new.bin{ending}"})
    assert str(err.value) == f"{key}: '{tmp_path}/new.bin{ending}' {folder}; add the file's name"


def test_a_file_setting_written_as_the_working_folder_is_refused_in_the_same_words():
    """``--events-path .`` said "'.' ends with '/.'", which it does not: the wording is one, from one
    function, for '.' too."""
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={}, cli={"events.path": "."})
    expected = "events.path: '.' names a folder (the working folder), expected a file; add the file's name"
    assert str(err.value) == expected


def test_check_config_and_the_daemon_refuse_the_model_written_as_a_folder():
    """The case that was reported: ``--model-path models/emotion-int8.tflite/``, one line from both."""
    root = Path(__file__).resolve().parent.parent
    model = root / "models" / "emotion-int8.tflite"
    sample = root / "samples" / "one-face.mp4"
    for mode in (["--check-config"], ["--no-realtime", "--input", str(sample), "--events", "-"]):
        result = run_cli(*mode, "--model-path", f"{model}/")
        assert result.returncode == 1 and result.stdout == "", result.stdout
        lines = [line for line in result.stderr.splitlines() if line.startswith("moodcast: ")]
        assert lines == [
            f"moodcast: model.path: '{model}/' names a folder (it ends in '/'), expected a file; "
            f"write it as {model}"
        ]
