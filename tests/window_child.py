"""Runs the window backend in a clean interpreter for tests/test_window.py.

SDL's X11 window crashes a process that has loaded TensorFlow (the training and conversion tests load it
into the pytest process), and the daemon never loads TensorFlow, so each window scenario runs here.

    python -m tests.window_child show W H | fullscreen | key q|escape | close-window
"""

from __future__ import annotations

import sys

import numpy as np

from device.config import DisplayConfig
from device.display.overlay import StatusLine, draw_overlay
from device.display.window import WindowDisplay
from device.vision.pipeline import FaceLabel

BACKGROUND = (10, 60, 110)  # BGR, a colour nothing in the overlay uses


def annotated_frame(width: int, height: int) -> np.ndarray:
    """A plain frame with one 'happy' face overlay and a status line."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = BACKGROUND
    face = FaceLabel(1, (100, 120, 120, 120), "happy", 0.9, {"happy": 0.9, "sad": 0.1}, True)
    draw_overlay(frame, [face], StatusLine(12.0, 1, "mqtt: connected"))
    return frame


def main(argv: list[str]) -> int:
    scenario = argv[0]
    display = WindowDisplay(DisplayConfig(backend="window", fullscreen=scenario == "fullscreen"))
    try:
        if scenario in ("show", "fullscreen"):
            if scenario == "show":
                frame = annotated_frame(int(argv[1]), int(argv[2]))
            else:
                frame = np.empty((120, 320, 3), np.uint8)
                frame[:] = BACKGROUND
            print(display.show(frame), flush=True)
            sys.stdin.readline()  # the test takes its screenshot, then lets us close
            return 0
        import pygame

        shown = [display.show(annotated_frame(160, 120))]
        if scenario == "key":
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.key.key_code(argv[1])))
        else:
            pygame.event.post(pygame.event.Event(pygame.QUIT))
        shown += [display.show(annotated_frame(160, 120)), display.show(annotated_frame(160, 120))]
        print(" ".join(map(str, shown)), flush=True)
        return 0
    finally:
        display.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
