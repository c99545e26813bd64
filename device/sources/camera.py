"""FrameSource backends: OpenCV (camera index or video file) and Picamera2, behind one small interface."""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.config import CameraConfig, DetectConfig, redact_url
from device.const import CAMERA_STEADY_S, EARLY_END_S, RATE_MEASURE_S, STREAM_SCHEMES
from device.display.letterbox import letterbox
from device.errors import CameraError, CameraUnavailable, first_line
from device.paths import named_as_folder, video_file_problem

logger = logging.getLogger(__name__)

STREAM_TIMEOUT_S = 5.0  # longest wait to open or read a network stream, so shutdown is never held longer
PICAMERA2_MISSING = (
    "picamera2 is not installed; on Raspberry Pi OS run 'sudo apt install python3-picamera2' and create the "
    "venv with --system-site-packages"
)
# picamera2 found but not the libcamera bindings: pip installs picamera2 (into a venv made without
# --system-site-packages), never libcamera's bindings, which PyPI does not have
LIBCAMERA_MISSING = (
    "picamera2 is installed but libcamera's Python bindings, which it needs, are not (PyPI has none); on "
    "Raspberry Pi OS run 'sudo apt install python3-libcamera' and create the venv with --system-site-packages"
)


@dataclass(frozen=True)
class Frame:
    """One captured frame: the main BGR image, the detector's small gray image and its scale."""

    index: int
    time_s: float
    image: np.ndarray
    gray_lores: np.ndarray
    scale_to_main: float


class FrameSource(Protocol):
    """Delivers frames until the source ends (``None``) or ``stop`` is set.

    ``lost`` is True while a live camera delivers nothing and is being reopened; ``read`` then keeps
    waiting, and calls ``idle`` (if given) about every half second from the reader's thread, so that the
    reader can show it is alive (the systemd watchdog) while it waits for the camera.
    """

    fps: float
    size: tuple[int, int]
    lost: bool

    @property
    def dropped(self) -> int:
        """Frames the camera made that the pipeline never took (always 0 for a video file)."""
        ...

    def open(self) -> None: ...

    def read(self, stop: threading.Event, idle: Callable[[], None] | None = None) -> Frame | None: ...

    def close(self) -> None: ...


def make_lores(image_bgr: np.ndarray, width_px: int) -> tuple[np.ndarray, float]:
    """The detector's gray image, at most ``width_px`` wide, and its scale back to the main frame."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    if width <= width_px:
        return gray, 1.0
    scale = width / width_px
    small = cv2.resize(gray, (width_px, round(height / scale)), interpolation=cv2.INTER_AREA)
    return small, scale


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` as a frame of ``size`` (width, height): itself when it is that size (or ``size`` is not
    known, 0), else scaled to fit with its aspect kept, centred on black."""
    width, height = size
    if (image.shape[1] == width and image.shape[0] == height) or not (width and height):
        return image
    scaled, x, y = letterbox(image, width, height)
    framed = np.zeros((height, width, 3), np.uint8)
    framed[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return framed


def flip_code(camera: CameraConfig) -> int | None:
    """``cv2.flip``'s code for the configured flips, or None when the image is used as it comes."""
    if camera.hflip and camera.vflip:
        return -1
    if camera.hflip:
        return 1
    return 0 if camera.vflip else None


_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class Orientation:
    """Turns a frame as mounted into a frame upright: the configured flips, then the rotation (clockwise).

    The whole frame is turned, not only the detector's small image: the screen and the stream must show
    the picture upright, and the track windows and the classifier's crops are cut from the full frame,
    where Haar and the model need an upright face too. ``cv2.rotate`` costs about 1 ms at 1280x720 and
    3 ms at 1920x1080 on one x86 core (a copy; a quarter of a full Haar search's cost at 640x480).
    """

    def __init__(self, flip: int | None, rotation: int) -> None:
        self.flip = flip
        self.rotate = _ROTATE_CODES.get(rotation)
        self.swaps_axes = rotation in (90, 270)

    @classmethod
    def of(cls, camera: CameraConfig) -> Orientation:
        return cls(flip_code(camera), camera.rotation)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.flip is not None:
            image = cv2.flip(image, self.flip)
        if self.rotate is not None:
            image = cv2.rotate(image, self.rotate)
        return image

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The upright frame's (width, height) for a sensor frame of this size."""
        return (height, width) if self.swaps_axes else (width, height)


def is_stream(device: str) -> bool:
    """A network camera's URL (RTSP, HTTP MJPEG), read through OpenCV's FFmpeg backend."""
    return device.lower().startswith(STREAM_SCHEMES)


def is_camera_node(device: str) -> bool:
    """``/dev/videoN`` and its udev links (``/dev/v4l/by-id/...``): a character device, or a path in /dev/."""
    try:
        return stat.S_ISCHR(os.stat(device).st_mode)
    except OSError:
        return device.startswith("/dev/")


def open_source(camera: CameraConfig, detect: DetectConfig) -> FrameSource:
    """Pick the backend the config names: Picamera2, an OpenCV camera or stream, or a video file."""
    if camera.source == "picamera2":
        if camera.device != CameraConfig().device:  # the Pi's config: --input clip.mp4 was ignored unsaid
            logger.warning(
                "camera.device %s is ignored: camera.source = picamera2 reads the Pi camera; "
                "set camera.source = opencv (--camera-source opencv) to read it",
                redact_url(camera.device),
            )
        return Picamera2Source(camera, detect)
    if is_stream(camera.device):
        return StreamSource(camera, detect)
    if camera.device.isdigit() or is_camera_node(camera.device):
        return OpenCVCameraSource(camera, detect)
    return VideoFileSource(camera, detect)


def _is_matroska(path: Path) -> bool:
    """True when ``path`` starts with the EBML magic of a Matroska or WebM file, whatever its name's suffix.

    Raises OSError when the file cannot be read."""
    with path.open("rb") as file:
        return file.read(4) == b"\x1a\x45\xdf\xa3"


class VideoFileSource:
    """Plays a video file: every frame in order, nothing dropped, paced to its own rate if realtime."""

    def __init__(self, camera: CameraConfig, detect: DetectConfig) -> None:
        self.path = Path(camera.device)
        self.config = camera
        self.detect = detect
        self.fps = 0.0
        self.size = (0, 0)
        self.dropped = 0
        self.lost = False  # a file is never lost
        self._capture: cv2.VideoCapture | None = None
        self._orient = Orientation.of(camera)
        self._index = 0
        self._started = 0.0
        self._pass_offset_s = 0.0  # where the current pass through the file starts on the source clock
        self._last_s = -1.0
        self._announced_s = 0.0  # the duration the container announces (open)
        self._end_told = False
        # The first frame, read by open() to probe the file and delivered by the first read(), with its
        # position (ms): no rewind, which fails on a file of one frame (a photo, a 1-frame clip).
        self._first: tuple[np.ndarray, float] | None = None

    def open(self) -> None:
        """Open the file and read its first frame. Raises CameraError, one line starting ``camera.device: ``:
        a folder, a missing or unreadable file in ``video_file_problem``'s words (``--check-config`` says the
        same), a file named as a folder (``named_as_folder``), a pipe or device, a file that is no readable
        video."""
        if problem := video_file_problem(self.path):  # a folder, missing, or not readable by this user
            raise CameraError(f"camera.device: {problem}")
        if spelled := named_as_folder(self.config.device):  # "clip.mp4/": Path dropped the '/'
            raise CameraError(f"camera.device: {'; '.join(spelled)}")
        if not self.path.is_file():  # never opened: a pipe waits for its writer
            kind = "a named pipe" if stat.S_ISFIFO(self.path.stat().st_mode) else "a socket or device"
            raise CameraError(
                f"camera.device: {self.path} is {kind}, not a regular file; expected a video file, "
                "fix the path"
            )
        capture = cv2.VideoCapture(str(self.path))
        ok, first = capture.read() if capture.isOpened() else (False, None)
        if not ok or first is None:
            raise CameraError(f"camera.device: {self.path} is not a readable video; check the file")
        self._first = (first, capture.get(cv2.CAP_PROP_POS_MSEC))
        self._capture = capture
        self.fps = capture.get(cv2.CAP_PROP_FPS) or self.config.fps
        # What the container announces (FFmpeg's frame count is its duration x the nominal rate, so the
        # quotient is the duration, variable frame rates included): a file that ends well before it was cut
        # short (copied in part, a recording stopped by a power loss) and is said so (_ended_early).
        self._announced_s = max(capture.get(cv2.CAP_PROP_FRAME_COUNT), 0.0) / self.fps
        # A Matroska or WebM segment whose timestamps start late (an NVR's or FFmpeg's segment of a longer
        # recording) announces a frame count that includes the time before its first frame, while positions
        # start at 0: a whole segment was said to be cut short. OpenCV's FFmpeg backend gives the first
        # frame's PTS in frames at the nominal rate, the start included; an offset past the announced
        # duration is not one this reading can trust, and is ignored. Only Matroska counts that time: an
        # MP4's count is its frames (its index), and a late MP4 segment copied in part was not said cut short.
        offset_s = capture.get(cv2.CAP_PROP_PTS) / self.fps - self._first[1] / 1000.0
        if _is_matroska(self.path) and 0.0 < offset_s < self._announced_s:
            self._announced_s -= offset_s
        self.size = self._orient.size(first.shape[1], first.shape[0])
        logger.info("video %s opened: %dx%d at %.1f fps", self.path, *self.size, self.fps)

    def read(self, stop: threading.Event, idle: Callable[[], None] | None = None) -> Frame | None:
        assert self._capture is not None, "open() first"
        if self._first is not None:
            (image, position_ms), self._first = self._first, None
        else:
            ok, image = self._capture.read()
            if not ok:
                self._tell_how_it_ended()
            if not ok and self.config.loop and self._index:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._pass_offset_s = self._last_s + 1.0 / self.fps
                ok, image = self._capture.read()
                if not ok:  # a file of one frame (a photo) is not rewound: it is opened again
                    self._capture.release()
                    self._capture = cv2.VideoCapture(str(self.path))
                    ok, image = self._capture.read()
            if not ok:
                return None
            position_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        image = self._orient(image)
        time_s = self._timestamp(position_ms)
        if self.config.realtime:
            if self._index == 0:
                self._started = time.monotonic()
            if stop.wait(max(0.0, self._started + time_s - time.monotonic())):
                return None
        gray, scale = make_lores(image, self.detect.lores_width_px(image.shape[1]))
        frame = Frame(self._index, time_s, image, gray, scale)
        self._index += 1
        return frame

    def _tell_how_it_ended(self) -> None:
        """Warn once when the file held a single frame (a photo not looped: no face is announced from it) or
        ended over ``EARLY_END_S`` before the duration its container announces (cut short)."""
        if self._end_told or (self.config.loop and self._index == 1):  # a photo looped: not processed once
            return
        self._end_told = True
        played_s = self._last_s - self._pass_offset_s + 1.0 / self.fps
        if self._index <= 1:  # an image file, or a clip of one frame: that frame was processed once
            logger.warning(
                "video %s held a single frame (a photo?): it is processed once, and a face is announced "
                "only once seen on track.confirm_frames frames; to label a photo, send it to "
                "/api/v1/analyze (http.enabled)",
                self.path,
            )
        elif played_s < self._announced_s - EARLY_END_S:
            logger.warning(
                "video %s ended at %.1f s of the %.1f s it announces: cut short or damaged? (%d frames)",
                self.path,
                played_s,
                self._announced_s,
                self._index,
            )

    def _timestamp(self, position_ms: float) -> float:
        """The frame just read, at ``position_ms`` in the file (OpenCV's CAP_PROP_POS_MSEC once it was read),
        in seconds on the source's clock: its presentation time, not index / average fps.

        A variable-frame-rate file (phones, screen recorders, webm) spaces its frames unevenly, so
        events' times and realtime pacing follow the file's timestamps. A frame without a usable one
        (no timestamp, or not after the last) is placed one nominal frame after the last.
        """
        time_s = self._pass_offset_s + position_ms / 1000.0
        if self._index and time_s <= self._last_s:
            time_s = self._last_s + 1.0 / self.fps
        self._last_s = time_s
        return time_s

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


class _LatestFrame:
    """A one-slot holder: the capture thread overwrites, the pipeline waits for a newer frame."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self._taken = -1
        self.overwritten = 0

    def put(self, frame: Frame) -> None:
        with self._condition:
            if self._frame is not None and self._frame.index > self._taken:
                self.overwritten += 1
            self._frame = frame
            self._condition.notify_all()

    def wait_newer(self, timeout_s: float) -> Frame | None:
        with self._condition:
            self._condition.wait_for(
                lambda: self._frame is not None and self._frame.index > self._taken, timeout_s
            )
            if self._frame is None or self._frame.index <= self._taken:
                return None
            self._taken = self._frame.index
            return self._frame


class _ThreadedCamera:
    """Shared capture-thread logic: newest frame wins, a stalled camera is reopened with backoff (1 s,
    doubled up to 30 s; back to 1 s once frames have come for ``CAMERA_STEADY_S``)."""

    def __init__(self, camera: CameraConfig, detect: DetectConfig) -> None:
        self.config = camera
        self.name = redact_url(camera.device)  # what logs and errors say: never a URL's credentials
        self.detect = detect
        self.fps = camera.fps
        self._orient = Orientation.of(camera)
        self.size = self._orient.size(camera.width_px, camera.height_px)
        self._slot = _LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._origin = time.monotonic()
        self.lost = False  # no frame for stall_timeout_s: the capture thread is reopening the camera
        self.fps_known = True  # False: the source says no rate; ``fps`` is camera.fps, a stand-in
        self._arrivals: list[float] | None = None  # frames' arrival times (monotonic s) while measuring

    @property
    def dropped(self) -> int:
        return self._slot.overwritten

    def open(self) -> None:
        """Open the camera and start the capture thread. Raises CameraError, or, when the camera cannot be
        opened now and ``camera.wait_at_start`` is off, CameraUnavailable; with it on, the capture thread
        retries as for a camera lost while running, and ``lost`` is True until it delivers."""
        try:
            self._open_device()
        except CameraUnavailable as err:
            if not self.config.wait_at_start:
                raise
            logger.warning("%s; retrying with backoff up to 30 s (camera.wait_at_start)", err)
            self.lost = True
        self._thread = threading.Thread(target=self._capture_loop, name="capture", daemon=True)
        self._thread.start()

    def read(self, stop: threading.Event, idle: Callable[[], None] | None = None) -> Frame | None:
        while not stop.is_set():
            frame = self._slot.wait_newer(timeout_s=0.5)
            if frame is not None:
                return frame
            if idle is not None:
                idle()
        return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_device()

    def _capture_loop(self) -> None:
        backoff_s = 1.0
        stalled = self.lost  # not opened at start: reopen at once
        last_frame = time.monotonic() - (self.config.stall_timeout_s if stalled else 0.0)
        recovered = last_frame  # when frames last came back after a stall
        while not self._stop.is_set():
            grabbed = self._grab()
            if grabbed is not None:
                if stalled:
                    logger.warning("camera %s delivers frames again", self.name)
                    stalled, recovered = False, time.monotonic()
                    self.lost = False
                elif backoff_s > 1.0 and time.monotonic() - recovered >= CAMERA_STEADY_S:
                    backoff_s = 1.0  # steady again: its next stall is retried from the shortest wait
                last_frame = time.monotonic()
                self._slot.put(Frame(self._index, self._frame_time_s(last_frame), *grabbed))
                self._index += 1
                self._measure_rate(last_frame)
                continue
            if time.monotonic() - last_frame < self.config.stall_timeout_s:
                self._stop.wait(0.05)
                continue
            if not stalled:
                logger.warning(
                    "camera %s: no frame for %.0f s; reopening it (backoff up to 30 s)",
                    self.name,
                    self.config.stall_timeout_s,
                )
                stalled = True
                self.lost = True
            self._close_device()
            if self._stop.wait(backoff_s):
                break
            backoff_s = min(backoff_s * 2, 30.0)
            try:
                self._open_device()
            except CameraError as err:
                logger.debug("reopen failed: %s", err)

    def _rate_text(self) -> str:
        """How the opened-line states the rate: the source's own, or that it says none."""
        if self.fps_known:
            return f"at {self.fps:.1f} fps"
        return f"at a frame rate it does not report (measuring it over {RATE_MEASURE_S:.0f} s of frames)"

    def _measure_rate(self, arrived_s: float) -> None:
        """While the source's rate is unknown, log once (per opening) the rate its frames arrive at,
        measured over ``RATE_MEASURE_S`` seconds from ``arrived_s`` values (monotonic seconds)."""
        if self._arrivals is None:
            return
        self._arrivals.append(arrived_s)
        span_s = arrived_s - self._arrivals[0]
        if span_s < RATE_MEASURE_S:
            return
        frames = len(self._arrivals) - 1
        self._arrivals = None
        logger.info(
            "camera %s delivers %.1f fps (measured: %d frames in %.1f s)",
            self.name,
            frames / span_s,
            frames,
            span_s,
        )

    def _frame_time_s(self, received_s: float) -> float:
        """The frame just grabbed on the source clock: by default the monotonic clock when it arrived."""
        return received_s - self._origin

    def _open_device(self) -> None:
        raise NotImplementedError

    def _grab(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """The next frame as (main BGR image, detector's gray image, its scale to main), or None."""
        raise NotImplementedError

    def _close_device(self) -> None:
        raise NotImplementedError


class OpenCVCameraSource(_ThreadedCamera):
    """A USB/V4L2 camera by index or device node, read through OpenCV in the capture thread."""

    _capture: cv2.VideoCapture | None = None

    def _open_device(self) -> None:
        device = self.config.device
        if device.isdigit():
            capture = cv2.VideoCapture(int(device))
        elif not os.path.exists(device):
            raise CameraUnavailable(
                f"camera.device: no camera device {device}; is it connected? 'ls /dev/video*' lists "
                "those there are"
            )
        else:
            capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailable(
                f"camera.device: cannot open camera {device}; is it connected, a video capture device, "
                "and is the user in the 'video' group?"
            )
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width_px)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height_px)
        capture.set(cv2.CAP_PROP_FPS, self.config.fps)
        self._opened(capture)
        logger.info("camera %s opened: %dx%d %s", self.name, *self.size, self._rate_text())

    def _opened(self, capture: cv2.VideoCapture) -> None:
        """Take ``capture`` as the camera. Opened by ``open``, it sets ``size``; reopened by the capture
        thread (``size`` is then the run's: the display and the events were made for it), a capture of
        another size is said and its frames are letterboxed to ``size`` (``_grab``)."""
        size = self._orient.size(
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        )
        if self._thread is None:
            self.size = size
        elif size != self.size and min(size) > 0:
            logger.warning(
                "camera %s delivers %dx%d frames, not %dx%d as at start: they are scaled to %dx%d (with "
                "black bars) until moodcast restarts; camera.width_px and camera.height_px set the size of a "
                "camera not open at start",
                self.name,
                *size,
                *self.size,
                *self.size,
            )
        fps = self._reported_fps(capture)
        self.fps_known = fps is not None
        self.fps = fps if fps is not None else self.config.fps  # a stand-in for the display's writer
        self._arrivals = None if self.fps_known else []
        self._capture = capture

    def _reported_fps(self, capture: cv2.VideoCapture) -> float | None:
        """The frame rate ``capture`` reports, or None where it is none or nonsense (0, 90000, ...)."""
        fps = capture.get(cv2.CAP_PROP_FPS)
        return fps if 1.0 <= fps <= 240.0 else None

    def _grab(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        if self._capture is None:
            return None
        ok, image = self._capture.read()
        if not ok:
            return None
        image = fit(self._orient(image), self.size)
        return (image, *make_lores(image, self.detect.lores_width_px(image.shape[1])))

    def _close_device(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class StreamSource(OpenCVCameraSource):
    """A network camera (RTSP, HTTP MJPEG) through OpenCV's FFmpeg backend; reconnects when the stream drops.

    A dropped stream is a stalled camera: after ``camera.stall_timeout_s`` without a frame the capture
    thread reopens it, waiting 1, 2, 4 ... up to 30 s between tries. Its URL's credentials are in no
    log line or error: ``self.name`` is the URL with them masked.
    """

    def _open_device(self) -> None:
        timeout_ms = round(1000 * min(max(self.config.stall_timeout_s, 1.0), STREAM_TIMEOUT_S))
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        capture = cv2.VideoCapture(self.config.device, cv2.CAP_FFMPEG, timeouts)
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailable(
                f"camera.device: cannot open stream {self.name}; check the URL, that the camera is on and "
                "reachable from here, and its user name and password"
            )
        self._opened(capture)
        logger.info("stream %s opened: %dx%d %s", self.name, *self.size, self._rate_text())

    def _reported_fps(self, capture: cv2.VideoCapture) -> float | None:
        """None also for MJPEG over HTTP: multipart JPEGs carry no rate, and FFmpeg reports its default 25."""
        fourcc = (int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little")
        if self.config.device.lower().startswith(("http://", "https://")) and fourcc == b"MJPG":
            return None
        return super()._reported_fps(capture)


def import_picamera2() -> tuple[type, type]:
    """The ``Picamera2`` and libcamera ``Transform`` classes, imported (no camera is opened).

    Raises CameraError, one line starting ``camera.source:``: ``PICAMERA2_MISSING`` when picamera2 or the
    libcamera bindings are not installed for this Python (``LIBCAMERA_MISSING`` when only the bindings
    are missing); "installed but cannot be imported" with the library's own first line when importing them
    fails otherwise (a SystemExit too, which would end the daemon or --check-config without a word), which
    is no matter of installing it: a NumPy error (the venv's own NumPy 2 shadowing the NumPy 1.x that
    bookworm's picamera2 stack is built against) says to install that NumPy in the venv,
    any other to reinstall picamera2.
    """
    broken: BaseException
    try:
        from libcamera import Transform
        from picamera2 import Picamera2
    except ModuleNotFoundError as err:
        if err.name == "libcamera" and importlib.util.find_spec("picamera2") is not None:
            raise CameraError(f"camera.source: {LIBCAMERA_MISSING}") from None
        if err.name in ("picamera2", "libcamera"):
            raise CameraError(f"camera.source: {PICAMERA2_MISSING}") from None
        broken = err
    # whatever a broken install raises at import (ImportError, ValueError, ...), and a module calling sys.exit
    # there, which would end the daemon without a line
    except (Exception, SystemExit) as err:
        broken = err
    else:
        return Picamera2, Transform
    why = first_line(broken)
    if isinstance(broken, SystemExit) and str(broken).strip():  # sys.exit(3) says "3"; sys.exit() nothing
        why = f"SystemExit: {why}"
    fix = (
        "the venv's NumPy is not the one apt's picamera2 was built for: in the venv run "
        "pip install 'numpy<2' (Raspberry Pi OS bookworm; docs/DEPLOY.md)"
        if "numpy" in why.lower()
        else "reinstall it: 'sudo apt install --reinstall python3-picamera2'"
    )
    raise CameraError(f"camera.source: picamera2 is installed but cannot be imported ({why[:200]}); {fix}")


class Picamera2Source(_ThreadedCamera):
    """The Pi camera: a main BGR stream for display and a low-resolution YUV420 stream for detection."""

    _camera = None
    _turn = Orientation(None, 0)
    _sensor_s: float | None = None  # SensorTimestamp of the frame just grabbed (boot clock, seconds)
    _sensor_zero_s: float | None = None  # the sensor time of the source clock's zero

    def _open_device(self) -> None:
        Picamera2, Transform = import_picamera2()
        # The ISP only flips: 180 degrees is both flips there, 90 and 270 turn each frame in _grab.
        half_turn = self.config.rotation == 180
        hflip, vflip = self.config.hflip != half_turn, self.config.vflip != half_turn
        self._turn = Orientation(None, self.config.rotation if not half_turn else 0)
        try:
            camera = Picamera2()
            width, height = self.config.width_px, self.config.height_px
            lores_w = self.detect.lores_width_px(width) // 2 * 2
            lores_h = round(height * lores_w / width) // 2 * 2
            config = camera.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                lores={"size": (lores_w, lores_h), "format": "YUV420"},
                controls={"FrameRate": self.config.fps},
                transform=Transform(hflip=int(hflip), vflip=int(vflip)),  # in the ISP
            )
            camera.configure(config)
            camera.start()
        except (RuntimeError, IndexError, OSError) as err:
            raise CameraUnavailable(
                f"camera.source: cannot start the Pi camera ({err}); is it connected?"
            ) from None
        self._camera = camera
        self._lores_size = (lores_w, lores_h)
        self.size = self._orient.size(width, height)
        logger.info("picamera2 opened: main %dx%d, lores %dx%d", width, height, lores_w, lores_h)

    def _grab(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        if self._camera is None:
            return None
        with self._camera.captured_request() as request:
            # RGB888 is laid out B, G, R in memory: OpenCV's BGR order.
            image = request.make_array("main")
            yuv = request.make_array("lores")
            sensor_ns = request.get_metadata().get("SensorTimestamp")
        self._sensor_s = sensor_ns / 1e9 if sensor_ns else None
        lores_w, lores_h = self._lores_size
        # The Y plane, sliced to the stream's own size: stride and chroma rows pad the array.
        gray = yuv[:lores_h, :lores_w]
        scale = image.shape[1] / lores_w
        return self._turn(image), self._turn(gray), scale

    def _frame_time_s(self, received_s: float) -> float:
        """The sensor's own time of the frame (start of exposure), not when Python got to it.

        The first frame is placed on the monotonic clock; later ones follow the sensor's timestamps,
        so a late wake-up of this thread never bends events' times or durations.
        """
        if self._sensor_s is None:
            return super()._frame_time_s(received_s)
        if self._sensor_zero_s is None:
            self._sensor_zero_s = self._sensor_s - super()._frame_time_s(received_s)
        return self._sensor_s - self._sensor_zero_s

    def _close_device(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
