"""Letterboxing: where a frame lands on a screen of another size, keeping its aspect (fb and window)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Placement:
    """Where a frame of one size lands on the screen: scaled size and top-left offset."""

    width_px: int
    height_px: int
    x_px: int
    y_px: int


def place(frame_w: int, frame_h: int, screen_w: int, screen_h: int) -> Placement:
    """The largest size of the frame that fits the screen with its aspect, centred."""
    scale = min(screen_w / frame_w, screen_h / frame_h)
    width = max(1, min(screen_w, round(frame_w * scale)))
    height = max(1, min(screen_h, round(frame_h * scale)))
    return Placement(width, height, (screen_w - width) // 2, (screen_h - height) // 2)


def scale_to(frame: np.ndarray, placement: Placement) -> np.ndarray:
    """The frame resized to the placement's size (area averaging when shrinking); itself when it fits."""
    frame_h, frame_w = frame.shape[:2]
    if (placement.width_px, placement.height_px) == (frame_w, frame_h):
        return frame
    interpolation = cv2.INTER_AREA if placement.width_px < frame_w else cv2.INTER_LINEAR
    return cv2.resize(frame, (placement.width_px, placement.height_px), interpolation=interpolation)


def letterbox(frame: np.ndarray, width_px: int, height_px: int) -> tuple[np.ndarray, int, int]:
    """Scale a frame to fit (width_px, height_px) keeping its aspect; returns it and its top-left offset."""
    placement = place(frame.shape[1], frame.shape[0], width_px, height_px)
    return scale_to(frame, placement), placement.x_px, placement.y_px
