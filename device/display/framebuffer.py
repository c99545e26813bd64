"""The `fb` display backend: letterboxed frames written straight to a Linux framebuffer (/dev/fbN)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.config import DisplayConfig
from device.const import SUPPORTED_BPP, SYSFS_GRAPHICS
from device.display.letterbox import Placement, place, scale_to
from device.errors import DisplayError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramebufferGeometry:
    """A framebuffer's size as sysfs reports it."""

    width_px: int
    height_px: int
    bits_per_pixel: int
    stride_bytes: int


def _sysfs_dir(device: Path, sysfs_root: Path) -> Path:
    return Path(sysfs_root) / Path(device).name


def read_geometry(device: Path, sysfs_root: Path = SYSFS_GRAPHICS) -> FramebufferGeometry:
    """Read ``virtual_size``, ``bits_per_pixel`` and ``stride`` of /dev/fbN from sysfs."""
    folder = _sysfs_dir(device, sysfs_root)
    try:
        width, height = (int(v) for v in (folder / "virtual_size").read_text().strip().split(","))
        bpp = int((folder / "bits_per_pixel").read_text().strip())
        stride_file = folder / "stride"
        stride = int(stride_file.read_text().strip()) if stride_file.exists() else width * bpp // 8
    except FileNotFoundError as err:
        raise DisplayError(
            f"display.fb_device: {device}: no geometry in {folder} ({Path(err.filename).name} missing); "
            "check that the device is a framebuffer (ls /sys/class/graphics)"
        ) from None
    except ValueError as err:
        raise DisplayError(f"display.fb_device: {device}: unreadable geometry in {folder} ({err})") from None
    if bpp not in SUPPORTED_BPP:
        raise DisplayError(
            f"display.fb_device: {device}: {bpp} bits per pixel is not supported (expected 16 or 32); "
            "set framebuffer_depth=32 (or 16) in /boot/firmware/config.txt or use display.backend=window"
        )
    if width <= 0 or height <= 0 or stride < width * bpp // 8:
        raise DisplayError(
            f"display.fb_device: {device}: inconsistent geometry {width}x{height}, {bpp} bpp, stride {stride}"
        )
    return FramebufferGeometry(width, height, bpp, stride)


def framebuffer_available(path: Path, sysfs_root: Path = SYSFS_GRAPHICS) -> bool:
    """True when the framebuffer exists, is writable by this process and has a supported geometry."""
    path = Path(path)
    if not path.exists() or not os.access(path, os.W_OK):
        return False
    try:
        read_geometry(path, sysfs_root)
    except DisplayError:
        return False
    return True


def _bgr_to_rgb565(image: np.ndarray) -> np.ndarray:
    """BGR uint8 (h, w, 3) → RGB565 as little-endian uint16 (h, w), keeping the high 5/6/5 bits.

    OpenCV's BGR565 packs red in the top five bits, exactly what the kernel's RGB565 means.
    """
    packed = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2BGR565)
    return packed.view("<u2").reshape(image.shape[:2])


class FramebufferDisplay:
    """Shows frames on /dev/fbN, scaled to fit and centred between black bars; needs no desktop."""

    def __init__(self, config: DisplayConfig, sysfs_root: Path = SYSFS_GRAPHICS) -> None:
        self._device = Path(config.fb_device)
        if not self._device.exists():
            raise DisplayError(
                f"display.fb_device: {self._device} does not exist; attach a screen and enable its driver, "
                "or set display.backend to window or none"
            )
        self.geometry = read_geometry(self._device, sysfs_root)
        try:
            self._fd: int | None = os.open(self._device, os.O_RDWR)
        except PermissionError:
            raise DisplayError(
                f"display.fb_device: {self._device} is not writable by this user; add the service user "
                "to the video group (sudo usermod -aG video <user>) and restart"
            ) from None
        except OSError as err:
            raise DisplayError(f"display.fb_device: cannot open {self._device} ({err.strerror})") from None
        geo = self.geometry
        self._buffer = np.zeros((geo.height_px, geo.stride_bytes), dtype=np.uint8)
        visible = self._buffer[:, : geo.width_px * geo.bits_per_pixel // 8]
        self._pixels: np.ndarray  # the visible part of the buffer, one element a pixel
        if geo.bits_per_pixel == 32:
            self._pixels = visible.reshape(geo.height_px, geo.width_px, 4)  # B, G, R, X in memory
            self._pixels[..., 3] = 255
        else:
            self._pixels = visible.view("<u2").reshape(geo.height_px, geo.width_px)
        self._placement = Placement(geo.width_px, geo.height_px, 0, 0)
        self._frame_shape: tuple[int, ...] = ()
        logger.info(
            "framebuffer %s opened: %dx%d, %d bpp, stride %d",
            self._device,
            geo.width_px,
            geo.height_px,
            geo.bits_per_pixel,
            geo.stride_bytes,
        )

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool:
        """Write one BGR uint8 frame to the screen; always True (a framebuffer has no quit key)."""
        if self._fd is None:
            raise DisplayError(f"display.fb_device: {self._device} is closed")
        if frame.shape != self._frame_shape:
            # A new frame size: repaint the bars black before placing the image anew.
            self._frame_shape = frame.shape
            geo = self.geometry
            self._placement = place(frame.shape[1], frame.shape[0], geo.width_px, geo.height_px)
            if self.geometry.bits_per_pixel == 32:
                self._pixels[..., :3] = 0
            else:
                self._pixels[...] = 0
            logger.debug("framebuffer: %s frame placed at %s", frame.shape, self._placement)
        spot = self._placement
        frame = scale_to(frame, spot)
        rows = slice(spot.y_px, spot.y_px + spot.height_px)
        cols = slice(spot.x_px, spot.x_px + spot.width_px)
        if self.geometry.bits_per_pixel == 32:
            self._pixels[rows, cols] = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)  # X byte 255
        else:
            self._pixels[rows, cols] = _bgr_to_rgb565(frame)
        try:
            os.pwrite(self._fd, self._buffer.data, 0)
        except OSError as err:
            raise DisplayError(
                f"display.fb_device: writing to {self._device} failed ({err.strerror})"
            ) from None
        return True

    def close(self) -> None:
        """Blank the screen (no face stays on it after the daemon stops) and release the device."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.pwrite(fd, bytes(self._buffer.nbytes), 0)
        except OSError as err:
            logger.warning("framebuffer %s: could not blank the screen (%s)", self._device, err.strerror)
        finally:
            os.close(fd)
