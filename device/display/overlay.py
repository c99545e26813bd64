"""Draws face boxes, emotion labels, score bars and a status line onto a BGR frame with cv2."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from device.const import (
    BAR_BACKGROUND,
    DIM_FACTOR,
    EMOTION_COLOURS,
    FALLBACK_COLOUR,
    OVERLAY_FONT,
    STATUS_BACKGROUND,
    STATUS_TEXT,
    TAG_CACHE_SIZE,
)
from device.vision.pipeline import FaceLabel


@dataclass(frozen=True)
class StatusLine:
    """The status line at the top-left: frame rate, face count and MQTT state ("mqtt: connected")."""

    fps: float
    faces: int
    mqtt: str


@dataclass(frozen=True)
class _Style:
    """Sizes derived from the frame so labels stay readable from across a room at any resolution."""

    font_scale: float
    text_px: int
    line_px: int
    pad_px: int

    @classmethod
    def for_frame(cls, frame: np.ndarray) -> _Style:
        short_side = min(frame.shape[0], frame.shape[1])
        font_scale = max(0.4, short_side / 600.0)
        return cls(
            font_scale=font_scale,
            text_px=max(1, round(font_scale * 2)),
            line_px=max(2, round(short_side / 150)),
            pad_px=max(3, round(short_side / 120)),
        )


def emotion_colour(emotion: str, confirmed: bool = True) -> tuple[int, int, int]:
    """The BGR colour of an emotion, dimmed for a face that is not confirmed yet."""
    colour = EMOTION_COLOURS.get(emotion, FALLBACK_COLOUR)
    if confirmed:
        return colour
    return tuple(int(c * DIM_FACTOR) for c in colour)  # type: ignore[return-value]


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones."""
    b, g, r = background
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def _tag_size(text: str, style: _Style, scale: float) -> tuple[int, int, int, int]:
    """Width and height of a tag holding ``text``, and the text's height and baseline."""
    (tw, th), base = cv2.getTextSize(text, OVERLAY_FONT, scale, style.text_px)
    return tw + 2 * style.pad_px, th + base + 2 * style.pad_px, th, base


def _draw_tag(
    frame: np.ndarray,
    text: str,
    x: int,
    y_top: int,
    colour: tuple[int, int, int],
    style: _Style,
    scale: float,
) -> tuple[int, int, int, int]:
    """A filled rectangle with text, its top-left at (x, y_top) clamped into the frame; returns its box."""
    tag = _render_tag(text, colour, scale, style.text_px, style.pad_px)
    h, w = tag.shape[:2]
    frame_h, frame_w = frame.shape[:2]
    x = _clamp(x, 0, max(0, frame_w - w))
    y_top = _clamp(y_top, 0, max(0, frame_h - h))
    visible = frame[y_top : y_top + h, x : x + w]
    visible[...] = tag[: visible.shape[0], : visible.shape[1]]
    return x, y_top, w, h


@functools.lru_cache(maxsize=TAG_CACHE_SIZE)
def _render_tag(
    text: str, colour: tuple[int, int, int], scale: float, text_px: int, pad_px: int
) -> np.ndarray:
    """The tag's pixels, kept: anti-aliased text is the overlay's costly part, and most tags repeat."""
    (tw, th), base = cv2.getTextSize(text, OVERLAY_FONT, scale, text_px)
    tag = np.empty((th + base + 2 * pad_px, tw + 2 * pad_px, 3), np.uint8)
    tag[...] = colour
    cv2.putText(
        tag, text, (pad_px, pad_px + th), OVERLAY_FONT, scale, _text_colour(colour), text_px, cv2.LINE_AA
    )
    tag.flags.writeable = False
    return tag


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _draw_scores(frame: np.ndarray, face: FaceLabel, tag: tuple[int, int, int, int], style: _Style) -> None:
    """A bar chart of the three highest scores on a dark panel: right of the box, else left, else below."""
    top = sorted(face.scores.items(), key=lambda item: item[1], reverse=True)[:3]
    if not top:
        return
    scale = style.font_scale * 0.55
    text_px = max(1, style.text_px - 1)
    (name_w, name_h), base = cv2.getTextSize("surprise", OVERLAY_FONT, scale, text_px)
    pad = max(2, style.pad_px // 2)
    bar_w = max(30, name_w)
    row_h = name_h + base + pad
    chart_w = name_w + bar_w + 3 * pad
    chart_h = row_h * len(top) + pad
    frame_h, frame_w = frame.shape[:2]
    x, y, w, h = face.box
    gap = style.line_px + style.pad_px
    if x + w + gap + chart_w <= frame_w:
        cx, cy = x + w + gap, y
    elif x - gap - chart_w >= 0:
        cx, cy = x - gap - chart_w, y
    else:
        cx, cy = x, y + h + gap
    cx = _clamp(cx, 0, max(0, frame_w - chart_w))
    cy = _clamp(cy, 0, max(0, frame_h - chart_h))
    if _overlaps((cx, cy, chart_w, chart_h), tag):
        cy = _clamp(tag[1] + tag[3] + pad, 0, max(0, frame_h - chart_h))
    cv2.rectangle(frame, (cx, cy), (cx + chart_w - 1, cy + chart_h - 1), STATUS_BACKGROUND, cv2.FILLED)
    for row, (name, score) in enumerate(top):
        row_y = cy + pad + row * row_h
        cv2.putText(
            frame, name, (cx + pad, row_y + name_h), OVERLAY_FONT, scale, STATUS_TEXT, text_px, cv2.LINE_AA
        )
        bx = cx + name_w + 2 * pad
        cv2.rectangle(frame, (bx, row_y), (bx + bar_w - 1, row_y + name_h), BAR_BACKGROUND, cv2.FILLED)
        filled = round(bar_w * min(max(score, 0.0), 1.0))
        if filled > 0:
            bar_colour = emotion_colour(name, face.confirmed)
            cv2.rectangle(frame, (bx, row_y), (bx + filled - 1, row_y + name_h), bar_colour, cv2.FILLED)


def _draw_face(
    frame: np.ndarray, face: FaceLabel, style: _Style, status_box: tuple[int, int, int, int]
) -> None:
    colour = emotion_colour(face.emotion, face.confirmed)
    x, y, w, h = face.box
    thickness = style.line_px if face.confirmed else max(1, style.line_px // 3)
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, thickness, cv2.LINE_8)
    text = f"#{face.face_id} {face.emotion} {face.confidence * 100:.0f}%"
    scale = style.font_scale if face.confirmed else style.font_scale * 0.8
    tag_w, tag_h, _, _ = _tag_size(text, style, scale)
    half = thickness // 2
    tag_x = _clamp(x - half, 0, max(0, frame.shape[1] - tag_w))
    # Above the box when there is room, else just inside its top edge; never under the status line.
    tag_y = y - half - tag_h if y - half - tag_h >= 0 else y + half + 1
    if _overlaps((tag_x, tag_y, tag_w, tag_h), status_box):
        tag_y = max(tag_y, status_box[1] + status_box[3])
    tag = _draw_tag(frame, text, tag_x, tag_y, colour, style, scale)
    _draw_scores(frame, face, tag, style)


def _status_text(status: StatusLine) -> str:
    faces = "face" if status.faces == 1 else "faces"
    return f"{status.fps:.1f} fps | {status.faces} {faces} | {status.mqtt}"


def draw_status(frame: np.ndarray, status: StatusLine) -> tuple[int, int, int, int]:
    """The status line on a dark background at the top-left; returns its box (x, y, w, h)."""
    style = _Style.for_frame(frame)
    return _draw_tag(frame, _status_text(status), 0, 0, STATUS_BACKGROUND, style, style.font_scale * 0.8)


def draw_overlay(frame: np.ndarray, faces: list[FaceLabel], status: StatusLine) -> None:
    """Draw every face and the status line in place on a BGR uint8 frame."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame of shape (h, w, 3), got {frame.dtype} {frame.shape}")
    style = _Style.for_frame(frame)
    status_w, status_h, _, _ = _tag_size(_status_text(status), style, style.font_scale * 0.8)
    status_box = (0, 0, status_w, status_h)
    # Unconfirmed faces first, so confirmed ones are drawn on top of them; the status line last of all.
    for face in sorted(faces, key=lambda f: f.confirmed):
        _draw_face(frame, face, style, status_box)
    draw_status(frame, status)
