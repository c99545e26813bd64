"""The `window` display backend: a pygame/SDL2 window titled "moodcast"; q, Esc or closing it stops."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import cv2
import numpy as np

from device.config import DisplayConfig
from device.const import DISPLAY_VARIABLES, HEADLESS_DRIVERS, WINDOW_TITLE
from device.display.letterbox import letterbox
from device.errors import DisplayError

logger = logging.getLogger(__name__)


def _display_named() -> str:
    """The display SDL would use, as the user set it ('' when none is set)."""
    for name in DISPLAY_VARIABLES:
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    return ""


def _import_pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return pygame


def _open_sdl_display(pygame: Any) -> None:
    """Initialise SDL's video; refuse the invisible drivers SDL falls back to unless asked for by name."""
    pygame.display.init()
    driver = pygame.display.get_driver()
    if driver in HEADLESS_DRIVERS and os.environ.get("SDL_VIDEODRIVER") != driver:
        pygame.display.quit()
        raise pygame.error(f"no visible video device, SDL fell back to its {driver} driver")


def window_available() -> bool:
    """True when pygame is installed, a display is named in the environment and SDL can open it."""
    if not _display_named() or importlib.util.find_spec("pygame") is None:
        return False
    pygame = _import_pygame()
    try:
        _open_sdl_display(pygame)
    except pygame.error:
        return False
    pygame.display.quit()
    return True


class WindowDisplay:
    """Shows frames in a desktop window (or full screen); create it and call show() from one thread."""

    def __init__(self, config: DisplayConfig) -> None:
        try:
            self._pygame = _import_pygame()
        except ImportError:
            raise DisplayError(
                "display.backend: window needs pygame, which is not installed; pip install 'pygame>=2.5' "
                "in moodcast's virtualenv (in the project: pip install '.[window]'), or set display.backend "
                "to fb or none"
            ) from None
        pygame = self._pygame
        where = _display_named()
        if not where:
            raise DisplayError(
                "display.backend: window needs a desktop, but neither DISPLAY nor WAYLAND_DISPLAY is set; "
                "run it in the desktop session or set display.backend to fb or none"
            )
        try:
            _open_sdl_display(pygame)
        except pygame.error as err:
            raise DisplayError(
                f"display.backend: window cannot open the display ({where}: {err}); "
                "check that the desktop is running or set display.backend to fb or none"
            ) from None
        self._fullscreen = config.fullscreen
        self._surface: Any = None
        self._size: tuple[int, int] = (0, 0)
        self._quit = False
        pygame.display.set_caption(WINDOW_TITLE)
        if self._fullscreen:
            self._surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)
        logger.info(
            "window opened on %s (SDL driver %s)%s", where, pygame.display.get_driver(),
            ", full screen" if self._fullscreen else "",
        )  # fmt: skip

    def _quit_requested(self) -> bool:
        pygame = self._pygame
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                logger.info("window closed")
                return True
            if event.type == pygame.KEYDOWN and event.key in (pygame.K_q, pygame.K_ESCAPE):
                logger.info("window: %s pressed", pygame.key.name(event.key))
                return True
        return False

    def show(self, frame: np.ndarray, time_s: float | None = None) -> bool:
        """Draw one BGR uint8 frame; False once the user pressed q or Esc or closed the window."""
        if self._quit or self._quit_requested():
            self._quit = True
            return False
        pygame = self._pygame
        frame_h, frame_w = frame.shape[:2]
        if not self._fullscreen and self._size != (frame_w, frame_h):
            self._surface = pygame.display.set_mode((frame_w, frame_h))
            self._size = (frame_w, frame_h)
        target_w, target_h = self._surface.get_size()
        image, x, y = letterbox(frame, target_w, target_h)
        if (x, y) != (0, 0):
            self._surface.fill((0, 0, 0))
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        self._surface.blit(pygame.image.frombuffer(rgb, (rgb.shape[1], rgb.shape[0]), "RGB"), (x, y))
        pygame.display.flip()
        return True

    def close(self) -> None:
        """Close the window."""
        self._surface = None
        self._pygame.display.quit()
