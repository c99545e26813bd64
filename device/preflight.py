"""``--check-config``'s second half: every file the config names exists and can be read by this user, the
input video plays, the Pi camera's library is installed when the config reads the Pi camera, and the model
loads."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

from device.config import Config
from device.display.video_path import input_video, video_path_problem
from device.errors import CameraError, ConfigError, ModelError
from device.outputs.mqtt_client import tls_context
from device.outputs.outbox import OUTBOX_FIX, outbox_path_problem
from device.paths import file_problem, output_problem, video_file_problem


def file_problems(config: Config) -> list[str]:
    """The problems with the files ``config`` names, one line each, each starting with its config key.

    Checked: ``model.path`` and, once it is a readable TFLite file, its card (the .json beside it),
    ``camera.device`` when it names a video file (not a camera index, a device under /dev/ or a stream URL;
    and that it plays, ``video_problem``), the MQTT outbox path, the files the daemon writes (``events.path``,
    ``history.path`` with HTTP on, ``display.video_path`` with the video backend, which must not be the input
    video either), and the MQTT TLS files when TLS is on (that they load, and that the client key is the
    certificate's).
    """
    model = config.model.path
    model_file = file_problem(model, "model file")
    if not model.exists() and not model.is_absolute():  # run from another folder than the project's
        from device.vision.classify import read_from

        model_file = f"{model_file} ({read_from(model)})"
    model_not_tflite = "" if model_file else _not_tflite(model)
    found = [("model.path", model_file), ("model.path", model_not_tflite)]
    # The card only once the model is a readable TFLite file, as the daemon reads them: a missing model, or a
    # wrong file as model.path (the Keras model), is the news, not its missing card.
    if not model_file and not model_not_tflite:
        found.append(("model.path", file_problem(model.with_suffix(".json"), "model card")))
    device = config.camera.device
    if config.camera.source == "opencv" and not (
        device.isdigit() or device.startswith("/dev/") or "://" in device
    ):
        found.append(("camera.device", video_file_problem(Path(device))))
    if config.mqtt.enabled and config.mqtt.tls:
        for key in ("ca_file", "cert_file", "key_file"):
            if getattr(config.mqtt, key):
                problem = file_problem(Path(getattr(config.mqtt, key)), key.replace("_", " "))
                found.append((f"mqtt.{key}", problem))
    if ("camera.device", "") in found:
        found.append(("camera.device", video_problem(config)))
    outputs = [("events.path", config.events.path, "events file")]
    if config.http.enabled:
        outputs.append(("history.path", config.history.path, "history file"))
    found += [(key, output_problem(Path(out), what)) for key, out, what in outputs if out not in {"", "-"}]
    if config.display.backend == "video":
        found.append(
            ("display.video_path", video_path_problem(config.display.video_path, input_video(config.camera)))
        )
    if config.mqtt.enabled and config.mqtt.outbox_path:
        problem = outbox_path_problem(Path(config.mqtt.outbox_path))
        found.append(("mqtt.outbox_path", problem and f"{problem}; {OUTBOX_FIX}"))
    problems = [f"{key}: {problem}" for key, problem in found if problem]
    if not problems and config.mqtt.enabled and config.mqtt.tls:
        try:
            tls_context(config.mqtt)  # a key that is not the certificate's, a file that is not PEM
        except ConfigError as err:
            problems.append(str(err))
    return problems


def source_problem(config: Config) -> str:
    """One line (starting ``camera.source``) when the camera backend's library cannot be used: picamera2
    with ``camera.source = picamera2``, missing or failing to import, which the daemon found only once
    started, after loading its model. It is imported as the daemon imports it (``import_picamera2``), no
    camera opened; "" when it imports. What a failing import writes on stderr is dropped, the line being
    the check's one account of it: a module built for NumPy 1.x under NumPy 2 (bookworm's simplejpeg) has
    NumPy write a dozen lines and a traceback before it raises, whose first line the line carries."""
    if config.camera.source != "picamera2":
        return ""
    from device.sources.camera import import_picamera2  # OpenCV, as the model's check loads it anyway

    written = io.StringIO()
    try:
        with contextlib.redirect_stderr(written):  # --check-config runs no other thread to lose a line
            import_picamera2()
    except CameraError as err:
        return str(err)
    sys.stderr.write(written.getvalue())  # a working import's warnings are not the check's to drop
    return ""


def video_problem(config: Config) -> str:
    """Why the daemon cannot play ``camera.device``, a readable file, as a video (its first frame is read as
    the daemon reads it: an empty file, text, a damaged container), without "camera.device: ", or ""."""
    from device.sources.camera import VideoFileSource  # OpenCV: only once the file is there

    source = VideoFileSource(config.camera, config.detect)
    try:
        source.open()
    except CameraError as err:
        return str(err).removeprefix("camera.device: ")
    finally:
        source.close()
    return ""


def _not_tflite(model: Path) -> str:
    """One line when the readable file ``model`` is no TFLite model, else ""."""
    from device.vision.classify import not_tflite

    try:
        with model.open("rb") as file:
            head = file.read(8)
    except OSError as err:
        return f"{model}: model file cannot be read ({err.strerror})"
    return not_tflite(model, head)


def model_problem(config: Config) -> str:
    """One line (starting ``model.path``) when the model cannot be loaded as the daemon loads it: a card that
    does not fit it, a file that is no TFLite model, a TFLite runtime missing or broken (tflite-runtime 2.14
    under NumPy 2); "" when it loads."""
    from device.vision.classify import EmotionClassifier  # the TFLite runtime: only once the files are there

    try:
        EmotionClassifier(config.model.path, threads=1)
    except ModelError as err:
        return f"model.path: {err}"
    return ""
