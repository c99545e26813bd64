"""The window backend for real under Xvfb, read back with an `xwd -root` screenshot and `xwininfo`."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from device.config import DisplayConfig
from device.const import EMOTION_COLOURS
from device.display.window import WINDOW_TITLE, WindowDisplay, window_available
from device.errors import DisplayError
from tests import required
from tests.window_child import BACKGROUND, annotated_frame

ROOT = Path(__file__).resolve().parent.parent
SCREEN_W, SCREEN_H = 640, 480
START_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """A private Xvfb server; yields its display name (":N"), which Xvfb picks and reports itself."""
    missing = [tool for tool in ("Xvfb", "xwd", "xwininfo") if shutil.which(tool) is None]
    if missing:
        required.missing(
            f"{', '.join(missing)} not installed (Debian: apt-get install xvfb x11-apps x11-utils)"
        )
    read_end, write_end = os.pipe()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed below
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN_W}x{SCREEN_H}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    os.close(write_end)
    try:
        # -displayfd: Xvfb writes its display number once it accepts connections (EOF if it died).
        ready, _, _ = select.select([read_end], [], [], START_TIMEOUT_S)
        number = os.read(read_end, 64).decode().strip() if ready else ""
        if not number:
            log.seek(0)
            pytest.fail(f"Xvfb did not start: {log.read().decode(errors='replace')[-500:]}")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.fixture
def x_display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    return xvfb


def screenshot(display: str) -> np.ndarray:
    """The whole X screen as BGR uint8, decoded from xwd's format (header, colour map, then pixels)."""
    data = subprocess.run(
        ["xwd", "-root", "-silent", "-display", display], check=True, capture_output=True, timeout=10
    ).stdout
    header = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks, ncolours = header[14:17].astype(np.uint32), int(header[19])
    assert bits_per_pixel in (24, 32), f"expected a 24- or 32-bit screen, got {bits_per_pixel} bits"
    size = bits_per_pixel // 8
    start = header_size + 12 * ncolours
    rows = np.frombuffer(data[start : start + height * bytes_per_line], np.uint8).reshape(height, -1)
    pixel_bytes = rows[:, : width * size].reshape(height, width, size).astype(np.uint32)
    weights = 256 ** np.arange(size, dtype=np.uint32)  # byte_order 0: least significant byte first
    pixels = (pixel_bytes * (weights if byte_order == 0 else weights[::-1])).sum(axis=-1, dtype=np.uint32)
    channels = []
    for mask in masks[::-1]:  # blue, green, red
        shift = (int(mask) & -int(mask)).bit_length() - 1
        channels.append(((pixels & mask) >> shift).astype(np.uint8))
    return np.stack(channels, axis=-1)


def window_geometry(display: str, title: str) -> tuple[int, int, int, int]:
    """(x, y, w, h) on the screen of the window with this title (xwininfo finds it by name)."""
    result = subprocess.run(
        ["xwininfo", "-name", title, "-display", display], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, f"no window titled {title!r}: {result.stderr.strip()}"
    info = dict(line.strip().split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    keys = ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
    x, y, w, h = (int(info[key]) for key in keys)
    return x, y, w, h


def window_child(display: str, *args: str) -> subprocess.Popen:
    """Start a window scenario of tests/window_child.py in a clean interpreter on ``display``."""
    env = {**os.environ, "DISPLAY": display}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.window_child", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def shown_then_screenshot(display: str, *args: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Run a scenario that shows one frame, take the screenshot and the window geometry, then close it."""
    child = window_child(display, *args)
    try:
        assert child.stdout.readline().strip() == "True", child.stderr.read()
        screen = screenshot(display)
        geometry = window_geometry(display, WINDOW_TITLE)
    finally:
        _, stderr = child.communicate("close\n", timeout=30)
    assert child.returncode == 0, stderr
    return screen, geometry


def test_window_shows_the_frame_pixel_for_pixel(x_display: str) -> None:
    assert window_available()
    screen, (x, y, w, h) = shown_then_screenshot(x_display, "show", "400", "300")
    assert (w, h) == (400, 300)
    shown = screen[y : y + h, x : x + w]
    happy = np.array(EMOTION_COLOURS["happy"], np.uint8)
    assert (shown == happy).all(axis=-1).sum() > 4 * 120  # the box's edges, in the emotion's colour
    np.testing.assert_array_equal(shown, annotated_frame(400, 300))


@pytest.mark.slow  # each window scenario is a fresh interpreter with pygame (1-2 s): make test-slow
def test_fullscreen_letterboxes_the_frame(x_display: str) -> None:
    # 8:3 on a 4:3 screen → 640x240 between bars of 120 rows
    screen, _ = shown_then_screenshot(x_display, "fullscreen")
    assert not screen[:120].any() and not screen[360:].any()
    assert (screen[120:360] == BACKGROUND).all()


@pytest.mark.parametrize(
    "scenario",  # one quit in make test; the other two (each a fresh interpreter with pygame) in test-slow
    [
        ("key", "q"),
        pytest.param(("key", "escape"), marks=pytest.mark.slow),
        pytest.param(("close-window",), marks=pytest.mark.slow),
    ],
)
def test_quit_keys_and_closing_stop_the_display(x_display: str, scenario: tuple[str, ...]) -> None:
    child = window_child(x_display, *scenario)
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    assert stdout.split() == ["True", "False", "False"]  # shown, then stopped, and stays stopped


def test_no_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    assert not window_available()
    with pytest.raises(DisplayError, match="neither DISPLAY nor WAYLAND_DISPLAY is set"):
        WindowDisplay(DisplayConfig(backend="window"))


def test_unreachable_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":4093")  # no X server listens there
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    assert not window_available()
    with pytest.raises(DisplayError, match=r"window cannot open the display \(DISPLAY=:4093"):
        WindowDisplay(DisplayConfig(backend="window"))


def test_without_pygame_the_line_names_an_install_that_works_on_the_pi(monkeypatch) -> None:
    """The line said ``pip install 'moodcast[window]'``, but the Pi's venv holds the device's requirements,
    not a moodcast distribution: pip would look for a package of that name on PyPI. pygame is missing."""
    import device.display.window as window

    def no_pygame():
        raise ImportError("No module named 'pygame'")

    monkeypatch.setattr(window, "_import_pygame", no_pygame)
    with pytest.raises(DisplayError) as err:
        WindowDisplay(DisplayConfig(backend="window"))
    message = str(err.value)
    assert "\n" not in message and "moodcast[window]" not in message, message
    assert "pip install 'pygame>=2.5'" in message, message
