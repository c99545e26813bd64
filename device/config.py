"""The daemon's typed, frozen configuration: defaults ← TOML ← environment ← CLI, validated once.

A key has one name in three spellings: ``mqtt.host`` in TOML, ``MOODCAST_MQTT__HOST`` in the
environment, ``--mqtt-host`` on the command line. Unknown keys and bad values raise ``ConfigError``
naming the key. Secrets (fields marked ``secret``) are read from the environment only.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.const import DEFAULT_MODEL_PATH, ENV_PREFIX, HAAR_WINDOW_PX, STREAM_SCHEMES, TOKEN_MIN_CHARS
from device.errors import ConfigError
from device.paths import named_as_folder, on_read_only_mount


def _opt(default: Any, help: str, **rules: Any) -> Any:
    """A config field with its help text and validation rules (min, max, choices, secret, url, flags;
    path: a string that names a file, whose leading ``~`` is expanded as every Path field's is; file: a
    path that must name a file, never written as a folder's with a trailing '/' or '/.', named_as_folder)."""
    return field(default=default, metadata={"help": help, **rules})


@dataclass(frozen=True)
class CameraConfig:
    source: str = _opt("opencv", "frame source backend", choices=("opencv", "picamera2"))
    device: str = _opt(
        "0",
        "camera index, /dev/videoN, video file, or rtsp:// http(s):// stream URL",
        flags=("--input",),
        url=True,
        path=True,
    )
    width_px: int = _opt(640, "capture width", min=16, max=4096)
    height_px: int = _opt(480, "capture height", min=16, max=4096)
    fps: float = _opt(30.0, "requested camera frame rate", min=1.0, max=240.0)
    realtime: bool = _opt(True, "play a video file at its own frame rate", flags=("--realtime",))
    loop: bool = _opt(False, "restart a video file at its end")
    hflip: bool = _opt(False, "mirror the image left to right (with vflip: a camera mounted upside down)")
    vflip: bool = _opt(False, "flip the image top to bottom")
    rotation: int = _opt(
        0,
        "turn the image clockwise by this many degrees (a camera mounted on its side)",
        choices=(0, 90, 180, 270),
    )
    stall_timeout_s: float = _opt(5.0, "reopen the camera after this long without a frame", min=0.5)
    wait_at_start: bool = _opt(
        False,
        "a camera or stream that cannot be opened at start is retried (reported lost) instead of an error; "
        "the systemd unit sets it",
    )
    max_frames: int = _opt(0, "stop after this many frames (0: never)", min=0)


@dataclass(frozen=True)
class DetectConfig:
    width_px: int = _opt(
        0,
        "width of the gray image the detector searches (0: what shows a min_size_px face 24 px wide)",
        min=0,
        max=4096,
    )
    scale_factor: float = _opt(
        1.1,
        "Haar pyramid step (a clear label's track window with no other face in it uses 1.2 where this is "
        "finer)",
        min=1.01,
        max=2.0,
    )
    min_neighbors: int = _opt(5, "Haar min neighbours", min=0, max=50)
    min_size_px: int = _opt(
        48, "smallest face, in full-frame pixels (the detection image shows it >= 24 px wide)", min=8
    )
    full_search_interval: int = _opt(
        5, "search the whole frame every N frames, else only around tracks", min=1
    )
    track_search_interval: int = _opt(
        3, "between full searches, search around confirmed tracks every N frames (they coast between)", min=1
    )
    track_window_frac: float = _opt(0.3, "window margin around a track, in face sizes", min=0.1)
    verify: bool = _opt(True, "a second, stricter cascade must accept a face before it starts a track")
    second_cascade: bool = _opt(
        True,
        "one whole-frame search in four, and a track window's last try, use the second cascade "
        "(frontalface_alt2, min neighbours 3), which finds faces the reference's cascade scores weakly",
    )

    def lores_width_px(self, frame_width_px: int) -> int:
        """The detection image's width for frames this wide: ``width_px``, or (0) the narrowest that
        shows a ``min_size_px`` face as wide as Haar's window, never wider than the frame."""
        if self.width_px:
            return min(self.width_px, frame_width_px)
        wanted = math.ceil(frame_width_px * HAAR_WINDOW_PX / self.min_size_px / 2) * 2
        return min(wanted, frame_width_px)


@dataclass(frozen=True)
class ModelConfig:
    path: Path = _opt(Path(DEFAULT_MODEL_PATH), "TFLite model; its card is the .json beside it", file=True)
    threads: int = _opt(1, "interpreter threads", min=1, max=16)


@dataclass(frozen=True)
class TrackConfig:
    iou_threshold: float = _opt(0.3, "least IoU to continue a track", min=0.0, max=1.0)
    confirm_frames: int = _opt(3, "detections before a track is announced", min=1)
    lost_after_s: float = _opt(
        2.5,
        "end a track unseen this long; until then a face found again on its way, of its size and look, keeps "
        "its id",
        min=0.0,
    )
    smoothing: float = _opt(0.4, "EMA weight of the newest scores", min=0.01, max=1.0)
    hysteresis: float = _opt(
        0.08, "a new label must lead the current one by this much smoothed score", min=0.0, max=1.0
    )
    heartbeat_s: float = _opt(10.0, "repeat an unchanged emotion this often (0: never)", min=0.0)


@dataclass(frozen=True)
class DisplayConfig:
    backend: str = _opt(
        "none", "where annotated frames go", choices=("auto", "none", "video", "fb", "window")
    )
    video_path: Path = _opt(
        Path("moodcast-out.mp4"),
        "output file of the video backend (.mp4, .m4v, .mov, .avi or .mkv)",
        file=True,
    )
    fb_device: Path = _opt(Path("/dev/fb0"), "framebuffer of the fb backend")
    fullscreen: bool = _opt(False, "full-screen window")


@dataclass(frozen=True)
class EventsConfig:
    path: str = _opt(
        "",
        "write events as JSON lines here ('-' for stdout, '' for none)",
        flags=("--events",),
        path=True,
        file=True,
    )


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = _opt(False, "publish events over MQTT")
    host: str = _opt("localhost", "broker host")
    port: int = _opt(1883, "broker port", min=1, max=65535)
    client_id: str = _opt("", "client id (default moodcast-<device_id>)")
    keepalive_s: int = _opt(60, "keepalive interval", min=5, max=3600)
    qos: int = _opt(1, "QoS of events", min=0, max=2)
    prefix: str = _opt("moodcast", "topic prefix; topics are <prefix>/<device_id>/...")
    username: str = _opt("", "user name")
    password: str = _opt("", "password, from the environment only", secret=True)
    tls: bool = _opt(False, "connect with TLS")
    ca_file: str = _opt("", "CA certificate file for TLS", path=True, file=True)
    cert_file: str = _opt("", "client certificate file for TLS", path=True, file=True)
    key_file: str = _opt("", "client key file for TLS", path=True, file=True)
    tls_insecure: bool = _opt(False, "skip the broker host name check (testing only)")
    outbox_max: int = _opt(10000, "events kept while the broker is away", min=1)
    outbox_path: str = _opt(
        "", "SQLite file that keeps the outbox across restarts ('' for memory)", path=True, file=True
    )
    discovery: bool = _opt(True, "publish Home Assistant discovery configs")
    discovery_prefix: str = _opt("homeassistant", "Home Assistant discovery prefix")
    state_interval_s: float = _opt(5.0, "publish the retained state this often", min=0.5)


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = _opt(
        False, "serve the web page, the API, /healthz, /metrics, /snapshot.jpg, /stream.mjpg"
    )
    host: str = _opt("127.0.0.1", "address to bind")
    port: int = _opt(8480, "port to bind", min=1, max=65535)
    token: str = _opt(
        "",
        "bearer token every route but /healthz requires (needed off loopback; at least 16 printable ASCII "
        "characters), from the environment only",
        secret=True,
    )  # fmt: skip


@dataclass(frozen=True)
class MoodConfig:
    window_s: float = _opt(
        60.0,
        "room mood: each emotion's share across faces, averaged over this many seconds",
        min=1.0,
        max=3600.0,
    )


@dataclass(frozen=True)
class HistoryConfig:
    path: str = _opt(
        "",
        "SQLite file of the page's history: labels, scores and times only ('' for memory)",
        path=True,
        file=True,
    )
    retention_h: float = _opt(
        24.0, "keep history this many hours (pruned at start and every minute)", min=1.0, max=8760.0
    )


@dataclass(frozen=True)
class FeedbackConfig:
    enabled: bool = _opt(
        False,
        "let the page store a corrected face's 48x48 crop for training (stores faces; needs http.enabled)",
    )
    dir: Path = _opt(
        Path("feedback"), "folder of corrected crops: <dir>/<class>/<name>.png (must be writable)"
    )


@dataclass(frozen=True)
class LogConfig:
    level: str = _opt("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class Config:
    """Every section of the daemon's configuration."""

    device_id: str = _opt("", "this device's id in topics and events (default: host name)")
    camera: CameraConfig = field(default_factory=CameraConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mood: MoodConfig = field(default_factory=MoodConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def masked(self) -> dict[str, Any]:
        """The config as a plain dict with secrets replaced by ``***`` (for ``--print-config``)."""
        out: dict[str, Any] = {}
        for key, spec, value in iter_fields(self):
            if spec.metadata.get("secret") and value:
                value = "***"
            if spec.metadata.get("url"):
                value = redact_url(value)
            out[key] = str(value) if isinstance(value, Path) else value
        return out


# Up to the URL's last @: a password may hold '#', '/' or '?' (FFmpeg then cannot use it, but the error names
# the URL), so the authority's own end is not where the password ends. An '@' further on (``?mail=a@b``) hides
# more than the credentials, never less.
_URL_CREDENTIALS = re.compile(r"(?<=://)\S*@")
# Secrets that cameras take in the query string instead (``snapshot.cgi?user=admin&pwd=...``, ``?token=...``)
_QUERY_SECRETS = re.compile(
    r"(?i)([?&;](?:pass|password|passwd|pwd|token|access_token|key|apikey|api_key|secret|auth|sig|signature)=)"
    r"[^&;#\s]*"
)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; False for 0.0.0.0, '' and other addresses or names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(text: str) -> str:
    """``rtsp://user:pass@cam/x`` → ``rtsp://***@cam/x``, ``http://cam/v.cgi?user=a&pwd=b`` →
    ``http://cam/v.cgi?user=a&pwd=***``: credentials in a URL never reach a log or a page."""
    return _QUERY_SECRETS.sub(r"\1***", _URL_CREDENTIALS.sub("***@", text))


def iter_fields(config: Config) -> list[tuple[str, dataclasses.Field, Any]]:
    """Every leaf key of a config as ``(dotted key, field, value)``."""
    leaves = []
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                leaves.append((f"{spec.name}.{sub.name}", sub, getattr(value, sub.name)))
        else:
            leaves.append((spec.name, spec, value))
    return leaves


def _field_specs() -> dict[str, tuple[dataclasses.Field, type]]:
    specs = {}
    for key, spec, value in iter_fields(Config()):
        specs[key] = (spec, type(value) if not isinstance(value, Path) else Path)
    return specs


def parse_bool(word: str) -> bool | None:
    """A yes/no word as the config, the environment and the HTTP API's query read it: ``1 true yes on`` and
    ``0 false no off`` in any case, blanks around ignored; None for any other word."""
    word = word.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    return None


def _coerce(key: str, raw: Any, kind: type, spec: dataclasses.Field) -> Any:
    """Turn a TOML, environment or CLI value into the field's type and check its rules."""
    rules = spec.metadata
    if kind is bool:
        if isinstance(raw, bool):
            value: Any = raw
        elif isinstance(raw, str) and parse_bool(raw) is not None:
            value = parse_bool(raw)
        else:
            raise ConfigError(key, f"expected true or false, got {raw!r}", "fix the value")
    elif kind in (int, float):
        try:
            if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
                raise ValueError
            value = kind(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            name = "an integer" if kind is int else "a number"
            if rules.get("choices"):
                name = f"one of {', '.join(map(str, rules['choices']))}"
            raise ConfigError(key, f"expected {name}, got {raw!r}", "fix the value") from None
        if kind is float and not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {raw!r}", "fix the value")
        low, high = rules.get("min"), rules.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low}-{high}" if high is not None else f">= {low}"
            raise ConfigError(key, f"expected a value {bounds}, got {raw!r}", "fix the value")
    else:
        if isinstance(raw, int) and not isinstance(raw, bool) and kind is str:
            raw = str(raw)  # a camera index written as a TOML integer (device = 0), an id of digits
        if not isinstance(raw, (str, Path)):
            raise ConfigError(key, f"expected a string (in quotes), got {raw!r}", "fix the value")
        if kind is Path and not str(raw).strip():  # Path("") is ".", the working folder: never what was meant
            raise ConfigError(key, f"expected a path, got {raw!r}", "set a path or remove the key")
        if rules.get("file") and (spelled := named_as_folder(os.path.expanduser(str(raw)))):
            raise ConfigError(key, *spelled)  # Path() drops the '/': the file was used without it
        value = kind(raw)
        if kind is Path or rules.get("path"):  # "~/out.mp4" (TOML, environment files: no shell expands it)
            value = kind(os.path.expanduser(str(value)))
    choices = rules.get("choices")
    if choices and value not in choices:
        raise ConfigError(
            key, f"expected one of {', '.join(map(str, choices))}, got {raw!r}", "fix the value"
        )
    return value


def _flatten_toml(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if isinstance(sub_value, Mapping):
                    raise ConfigError(f"{name}.{sub}", f"unknown section in {source}")
                flat[f"{name}.{sub}"] = sub_value
        else:
            flat[name] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file into dotted keys; a missing or malformed file is a ConfigError."""
    try:
        # A byte order mark (Notepad saves UTF-8 with one) is no TOML, but says nothing wrong about the file.
        text = Path(path).read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        return _flatten_toml(tomllib.loads(text), str(path))
    except FileNotFoundError:
        raise ConfigError("config", f"{path}: no such file", "create it or pass --config") from None
    except IsADirectoryError:
        raise ConfigError("config", f"{path}: is a folder, not a TOML file", "pass the file itself") from None
    except PermissionError:
        raise ConfigError(
            "config", f"{path}: not readable by this user (permission denied)", "fix its permissions"
        ) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            "config", f"{path}: not UTF-8 text (byte {err.start})", "save the file as UTF-8 TOML"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("config", f"{path}: not valid TOML ({err})", "fix the file") from None
    except OSError as err:
        raise ConfigError("config", f"{path}: cannot be read ({err.strerror})", "fix the path") from None


def env_key(key: str) -> str:
    """``mqtt.host`` → ``MOODCAST_MQTT__HOST``."""
    return ENV_PREFIX + key.upper().replace(".", "__")


def cli_flag(key: str) -> str:
    """``mqtt.host`` → ``--mqtt-host``."""
    return "--" + key.replace(".", "-").replace("_", "-")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per config key (plus its aliases), defaulting to 'not given'."""
    for key, (spec, kind) in _field_specs().items():
        if spec.metadata.get("secret"):
            continue
        flags = [cli_flag(key), *spec.metadata.get("flags", ())]
        help_text = f"{spec.metadata.get('help', '')} [{key}]"
        if kind is bool:
            parser.add_argument(
                *flags, dest=key, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(
                *flags, dest=key, default=None, metavar=key.split(".")[-1].upper(), help=help_text
            )


def load_config(
    toml_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config: defaults ← TOML ← environment ← CLI, each overriding the one before."""
    environ = os.environ if environ is None else environ
    specs = _field_specs()
    values: dict[str, Any] = {}
    if toml_path is not None:
        for key, raw in read_toml(toml_path).items():
            if key not in specs and any(spec.startswith(f"{key}.") for spec in specs):  # camera = 3
                fix = f"write [{key}] and its keys below it"
                raise ConfigError(key, f"a section in {toml_path}, got a value", fix)
            if key not in specs:
                raise ConfigError(key, f"unknown key in {toml_path}", "check its spelling or remove it")
            if specs[key][0].metadata.get("secret"):
                raise ConfigError(
                    key,
                    f"secrets are not read from {toml_path}",
                    f"set {env_key(key)} in the environment file instead",
                )
            values[key] = _coerce(key, raw, specs[key][1], specs[key][0])
    by_env = {env_key(key): key for key in specs}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        if name not in by_env:
            raise ConfigError(name, "unknown environment variable", "check its spelling or unset it")
        key = by_env[name]
        values[key] = _coerce(key, raw, specs[key][1], specs[key][0])
    for key, raw in (cli or {}).items():
        if raw is not None and key in specs:
            values[key] = _coerce(key, raw, specs[key][1], specs[key][0])
    return _build(values)


def _build(values: dict[str, Any]) -> Config:
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in values.items():
        if "." in key:
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = value
        else:
            top[key] = value
    defaults = Config()
    for section, changes in sections.items():
        top[section] = dataclasses.replace(getattr(defaults, section), **changes)
    config = dataclasses.replace(defaults, **top)
    if not config.device_id:
        config = dataclasses.replace(config, device_id=socket.gethostname().split(".")[0] or "moodcast")
    token = checked_token(config.http.token)
    config = dataclasses.replace(config, http=dataclasses.replace(config.http, token=token))
    _verify(config)
    return config


def topic_prefix_problem(prefix: str) -> str:
    """What makes ``prefix`` unusable as the first levels of an MQTT topic name, or "" when nothing does.

    MQTT 3.1.1 section 4.7: topic names must not contain the wildcards ``+`` and ``#``, nor U+0000; an empty
    level (a leading, trailing or doubled ``/``) is legal but almost always a typo, and a broker may refuse
    it, so it is refused here.
    """
    if not prefix:
        return "empty"
    for char in ("+", "#", "\0"):
        if char in prefix:
            return f"{prefix!r} contains {char!r}, a wildcard or NUL that topic names must not hold"
    if "" in prefix.split("/"):
        return f"{prefix!r} has an empty level (a leading, trailing or doubled '/')"
    return ""


def folder_problem(folder: Path) -> str:
    """Why files cannot be written in ``folder`` (created on first use, with its parents), or "" when they
    can: a file where the folder should be, a nearest existing folder on a read-only mount (a card the
    kernel remounted read-only after errors: no user may write it, root neither), or one this user may not
    write."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{folder}: {existing} is a file, not a folder"
    if on_read_only_mount(existing):
        return f"{folder}: {existing} is on a read-only mount ('ro' in mount's list; a failing card?)"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{folder}: {existing} is not writable by this user"
    return ""


def checked_token(raw: str) -> str:
    """``http.token`` without the blanks around it (an environment file's stray space or newline), or "" when
    unset; ConfigError when set but shorter than TOKEN_MIN_CHARS, or with a character an HTTP header cannot
    carry (headers are Latin-1, so a non-ASCII token could never match), a blank or a control character."""
    token = raw.strip()
    fix = f"set {env_key('http.token')} to a long random string (openssl rand -hex 24)"
    if raw and len(token) < TOKEN_MIN_CHARS:
        raise ConfigError(
            "http.token", f"expected at least {TOKEN_MIN_CHARS} characters, got {len(token)}", fix
        )
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise ConfigError("http.token", "expected printable ASCII without blanks, got other characters", fix)
    return token


# A URL's scheme (RFC 3986, 3.1) and a slash: what a stream URL starts with, typos included (rtps:/, rtsp:/)
_URL_START = re.compile(r"(?i)^([a-z][a-z0-9+.-]*):/")


def device_problem(device: str) -> str:
    """Why ``camera.device`` names no camera, file or stream this daemon opens, or "": empty, blanks around it
    (a stray space in an environment file), or a URL of a scheme it does not read (a typo: ``rtps://``,
    ``rtsp:/``). The value is never repeated: a URL may hold a password."""
    if not device.strip():
        return "empty"
    if device != device.strip():
        return "has blanks before or after it"
    start = _URL_START.match(device)
    if start and not device.lower().startswith(STREAM_SCHEMES):
        return f"a URL of scheme {start.group(1)!r}: streams are read from {', '.join(STREAM_SCHEMES)} URLs"
    return ""


def host_problem(host: str) -> str:
    """Why ``mqtt.host`` is no host name or address alone, or "": a URL (``mqtt://``), a user (``user:pass@``)
    or a port (``broker:1883``) in it. The value is never repeated: it may hold a password."""
    try:
        ipaddress.ip_address(host)  # IPv6 addresses hold ':'
        return ""
    except ValueError:
        pass
    if any(c in host for c in "/@:") or any(c.isspace() for c in host):
        return "expected a host name or address alone, without a scheme, user, port or blanks"
    return ""


def _verify(config: Config) -> None:
    """Cross-field rules, each naming the key to fix."""
    if config.camera.source == "opencv" and (problem := device_problem(config.camera.device)):
        fix = "set a camera index, /dev/videoN, a video file or an rtsp:// or http(s):// URL"
        raise ConfigError("camera.device", problem, fix)
    mqtt = config.mqtt
    if mqtt.host.strip() and (problem := host_problem(mqtt.host)):
        password = env_key("mqtt.password")
        fix = f"put the port in mqtt.port, the user in mqtt.username, the password in {password}"
        raise ConfigError("mqtt.host", problem, fix)
    events = config.events.path
    for key, other in (("mqtt.outbox_path", mqtt.outbox_path), ("history.path", config.history.path)):
        if events not in ("", "-") and other and Path(events).resolve() == Path(other).resolve():
            raise ConfigError("events.path", f"the same file as {key} (SQLite)", "give each its own file")
    if mqtt.password and not mqtt.username:  # paho sends a password only with a user name: it was ignored
        raise ConfigError(
            "mqtt.username", "a password is set but no user name", "set mqtt.username, or unset the password"
        )
    if mqtt.username and not mqtt.password:
        raise ConfigError(
            "mqtt.password",
            "a user name is set but no password",
            f"set {env_key('mqtt.password')} in the environment file",
        )
    if (mqtt.cert_file or mqtt.key_file) and not (mqtt.cert_file and mqtt.key_file):
        raise ConfigError(
            "mqtt.key_file", "a client certificate needs both cert_file and key_file", "set both or neither"
        )
    if mqtt.enabled and not mqtt.host.strip():
        raise ConfigError(
            "mqtt.host", "empty, so no broker can be reached", "set the broker's host name or address"
        )
    for key in ("prefix", "discovery_prefix"):
        problem = topic_prefix_problem(getattr(mqtt, key))
        if problem:
            raise ConfigError(
                f"mqtt.{key}", problem, "use levels of letters, digits, '-' and '_' joined by '/'"
            )
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(mqtt, key)
        if path and Path(path).is_dir():
            raise ConfigError(f"mqtt.{key}", f"{path} is a folder, expected a PEM file", "fix the path")
        if path and not Path(path).is_file():
            raise ConfigError(f"mqtt.{key}", f"{path}: no such file", "fix the path")
    http = config.http
    if http.enabled and not http.token and not is_loopback(http.host):
        raise ConfigError(
            "http.token",
            f"http.host {http.host!r} is reachable from other machines and no token is set",
            f"set {env_key('http.token')} in the environment file, or bind http.host to 127.0.0.1",
        )
    if config.feedback.enabled and not http.enabled:
        raise ConfigError(
            "feedback.enabled",
            "true, but http.enabled is false: corrections are made on the web page, so none would be saved",
            "set http.enabled = true too, or remove feedback.enabled",
        )
    if http.enabled and config.feedback.enabled:
        problem = folder_problem(config.feedback.dir)
        if problem:
            raise ConfigError("feedback.dir", problem, "set feedback.dir to a folder this user may write")
    if "/" in config.device_id or "+" in config.device_id or "#" in config.device_id:
        raise ConfigError(
            "device_id",
            f"{config.device_id!r} contains an MQTT topic character",
            "use letters, digits, '-' and '_'",
        )
