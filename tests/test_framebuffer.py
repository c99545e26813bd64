"""The fb backend against a file-backed framebuffer with a fake sysfs folder, in RGB565 and XRGB8888."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from device.config import DisplayConfig
from device.display.framebuffer import FramebufferDisplay, framebuffer_available
from device.errors import DisplayError

QUADRANT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (37, 142, 201)]  # BGR: TL, TR, BL, BR


def make_framebuffer(folder: Path, width: int, height: int, bpp: int, pad_bytes: int = 24) -> Path:
    """A regular file standing in for /dev/fb0, and sysfs files describing it, under ``folder``."""
    stride = width * bpp // 8 + pad_bytes
    sysfs = folder / "sys" / "fb0"
    sysfs.mkdir(parents=True)
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    device = folder / "fb0"
    device.write_bytes(b"\x5a" * stride * height)  # not black, so unwritten bytes would show
    return device


def quadrants(width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    half_h, half_w = height // 2, width // 2
    frame[:half_h, :half_w] = QUADRANT_COLOURS[0]
    frame[:half_h, half_w:] = QUADRANT_COLOURS[1]
    frame[half_h:, :half_w] = QUADRANT_COLOURS[2]
    frame[half_h:, half_w:] = QUADRANT_COLOURS[3]
    return frame


def read_screen(device: Path, width: int, height: int, bpp: int) -> np.ndarray:
    """Decode the file back to BGR uint8 as a screen would show it (RGB565 widened by shifting)."""
    stride = (device.parent / "sys" / "fb0" / "stride").read_text().strip()
    rows = np.fromfile(device, np.uint8).reshape(height, int(stride))[:, : width * bpp // 8]
    if bpp == 32:
        return rows.reshape(height, width, 4)[..., :3].copy()
    value = rows.copy().view("<u2").reshape(height, width).astype(np.uint16)
    red, green, blue = (value >> 11) & 0x1F, (value >> 5) & 0x3F, value & 0x1F
    return np.stack([blue << 3, green << 2, red << 3], axis=-1).astype(np.uint8)


def as_shown(frame: np.ndarray, bpp: int) -> np.ndarray:
    """What a frame looks like after the framebuffer's pixel format: RGB565 keeps 5/6/5 high bits."""
    if bpp == 32:
        return frame
    return frame & np.array([0xF8, 0xFC, 0xF8], np.uint8)


def config_for(device: Path) -> DisplayConfig:
    return DisplayConfig(backend="fb", fb_device=device)


@pytest.mark.parametrize("bpp", [16, 32])
def test_same_height_frame_is_pillarboxed_pixel_exact(tmp_path: Path, bpp: int) -> None:
    device = make_framebuffer(tmp_path, 120, 80, bpp)
    display = FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")
    frame = quadrants(80, 80)
    assert display.show(frame) is True
    screen = read_screen(device, 120, 80, bpp)
    np.testing.assert_array_equal(screen[:, 20:100], as_shown(frame, bpp))
    assert not screen[:, :20].any() and not screen[:, 100:].any()  # black bars left and right
    if bpp == 32:
        pixels = np.fromfile(device, np.uint8).reshape(80, -1)[:, : 120 * 4].reshape(80, 120, 4)
        assert (pixels[..., 3] == 255).all()  # X byte set: opaque even where it is read as alpha
    display.close()


@pytest.mark.parametrize("bpp", [16, 32])
def test_scaled_frame_is_letterboxed(tmp_path: Path, bpp: int) -> None:
    device = make_framebuffer(tmp_path, 160, 120, bpp)
    display = FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")
    display.show(quadrants(80, 40))  # 2:1 on 4:3 → 160x80, bars of 20 rows above and below
    screen = read_screen(device, 160, 120, bpp)
    assert not screen[:20].any() and not screen[100:].any()
    assert screen[20:100].reshape(-1, 3).any(axis=1).all()  # the image fills every row between the bars
    for (row, col), colour in zip([(40, 40), (40, 120), (80, 40), (80, 120)], QUADRANT_COLOURS, strict=True):
        expected = as_shown(np.array([[colour]], np.uint8), bpp)[0, 0]
        np.testing.assert_array_equal(screen[row, col], expected)
    display.close()


def test_new_frame_size_repaints_the_bars(tmp_path: Path) -> None:
    device = make_framebuffer(tmp_path, 120, 80, 32)
    display = FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")
    display.show(np.full((40, 120, 3), 200, np.uint8))  # fills the width: bars top and bottom
    display.show(np.full((80, 40, 3), 100, np.uint8))  # fills the height: bars left and right
    screen = read_screen(device, 120, 80, 32)
    assert not screen[:, :40].any() and not screen[:, 80:].any()
    assert (screen[:, 40:80] == 100).all()
    display.close()


def test_close_blanks_the_screen(tmp_path: Path) -> None:
    device = make_framebuffer(tmp_path, 64, 48, 16)
    display = FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")
    display.show(np.full((48, 64, 3), 255, np.uint8))
    display.close()
    display.close()  # idempotent
    assert not np.fromfile(device, np.uint8).any()


def test_absent_device_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DisplayError, match=r"display.fb_device: .*fb7 does not exist"):
        FramebufferDisplay(config_for(tmp_path / "fb7"), sysfs_root=tmp_path / "sys")
    assert not framebuffer_available(tmp_path / "fb7", tmp_path / "sys")


def test_unsupported_depth_is_a_clear_error(tmp_path: Path) -> None:
    device = make_framebuffer(tmp_path, 64, 48, 24)
    with pytest.raises(DisplayError, match="24 bits per pixel is not supported"):
        FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")
    assert not framebuffer_available(device, tmp_path / "sys")


def test_available_for_a_writable_framebuffer(tmp_path: Path) -> None:
    device = make_framebuffer(tmp_path, 64, 48, 32)
    assert framebuffer_available(device, tmp_path / "sys")


def test_missing_sysfs_geometry_is_a_clear_error(tmp_path: Path) -> None:
    device = make_framebuffer(tmp_path, 64, 48, 32)
    (tmp_path / "sys" / "fb0" / "virtual_size").unlink()
    with pytest.raises(DisplayError, match="virtual_size missing"):
        FramebufferDisplay(config_for(device), sysfs_root=tmp_path / "sys")


def open_as_nobody(device: Path, sysfs_root: Path) -> str:
    """Open the framebuffer in a forked child that has dropped root; return its DisplayError message."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on, only os._exit
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                FramebufferDisplay(config_for(device), sysfs_root=sysfs_root)
                code = 2
            except DisplayError as err:
                os.write(write_end, str(err).encode())
                code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the device opened although it is read-only"
    return message


def test_read_only_device_names_the_video_group() -> None:
    # Root may write to any file, so under root the open runs in a child that has become 'nobody'.
    with tempfile.TemporaryDirectory(prefix="moodcast-fb-") as folder:
        root = Path(folder)
        root.chmod(0o755)
        device = make_framebuffer(root, 64, 48, 32)
        for path in (root / "sys", root / "sys" / "fb0"):
            path.chmod(0o755)
        device.chmod(0o444)
        if os.geteuid() == 0:
            message = open_as_nobody(device, root / "sys")
        else:
            with pytest.raises(DisplayError) as caught:
                FramebufferDisplay(config_for(device), sysfs_root=root / "sys")
            message = str(caught.value)
    assert "fb0 is not writable by this user" in message
    assert "video group" in message
    assert "\n" not in message
