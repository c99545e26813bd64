"""Draws face boxes, emotion labels, score bars and a status line onto a BGR frame with cv2."""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    """The status line at the top-left: frame rate (None for a still image, which has none), face count and
    MQTT state ("mqtt: connected")."""

    fps: float | None
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


Rect = tuple[int, int, int, int]  # (x, y, w, h) in frame pixels


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _overlap_area(a: Rect, b: Rect) -> int:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height)


@dataclass(frozen=True)
class Placement:
    """Where one face's tag and score panel go (``panel`` None: no room that leaves other faces clear)."""

    tag: Rect
    text: str
    scale: float
    panel: Rect | None


@dataclass(frozen=True)
class _Panel:
    """The score panel's geometry for a frame: its size and its rows."""

    width: int
    height: int
    scale: float
    text_px: int
    pad: int
    name_w: int
    name_h: int
    row_h: int
    bar_w: int

    @classmethod
    def for_style(cls, style: _Style, rows: int) -> _Panel:
        scale = style.font_scale * 0.55
        text_px = max(1, style.text_px - 1)
        (name_w, name_h), base = cv2.getTextSize("surprise", OVERLAY_FONT, scale, text_px)
        pad = max(2, style.pad_px // 2)
        bar_w = max(30, name_w)
        row_h = name_h + base + pad
        return cls(
            name_w + bar_w + 3 * pad, row_h * rows + pad, scale, text_px, pad, name_w, name_h, row_h, bar_w
        )


def _first_free(
    size: tuple[int, int], spots: list[tuple[int, int]], blocked: list[Rect], frame_w: int, frame_h: int
) -> Rect | None:
    """The first of ``spots`` (top-left corners, moved into the frame) where a ``size`` rectangle
    overlaps none of ``blocked``."""
    w, h = size
    for x, y in spots:
        rect = (_clamp(x, 0, max(0, frame_w - w)), _clamp(y, 0, max(0, frame_h - h)), w, h)
        if not any(_overlaps(rect, other) for other in blocked):
            return rect
    return None


def _tag_texts(face: FaceLabel, scale: float) -> list[tuple[str, float]]:
    """The tag's wordings, longest first: a crowd gets the shorter ones where the long one has no room."""
    return [
        (f"#{face.face_id} {face.emotion} {face.confidence * 100:.0f}%", scale),
        (f"#{face.face_id} {face.emotion}", scale),
        (face.emotion, scale * 0.75),
    ]


def layout_overlay(
    frame_shape: tuple[int, ...], faces: list[FaceLabel], status: StatusLine, avoid: Sequence[Rect] = ()
) -> list[Placement]:
    """Place each face's tag and score panel (in ``faces``' order) so that none covers another face.

    ``avoid`` holds the boxes of faces not drawn on this frame that are still there (a live track the last
    search missed): no tag or panel covers them either.

    A tag goes above its box when there is room, else just inside its top edge, else below it, in a
    shorter wording if need be; a panel goes right of the box, else left, else below or above, and is left
    out when every spot would cover another face, a tag or the status line.
    """
    frame_h, frame_w = frame_shape[:2]
    style = _Style.for_frame(np.empty((frame_h, frame_w, 1), np.uint8))
    status_box = status_place(frame_shape, faces, status)
    placed: list[Rect] = [status_box]
    out = []
    for index, face in enumerate(faces):
        others = [other.box for k, other in enumerate(faces) if k != index] + list(avoid)
        x, y, w, h = face.box
        thickness = style.line_px if face.confirmed else max(1, style.line_px // 3)
        half = thickness // 2
        scale = style.font_scale if face.confirmed else style.font_scale * 0.8
        tag = None
        for text, text_scale in _tag_texts(face, scale):
            tag_w, tag_h, _, _ = _tag_size(text, style, text_scale)
            above = y - half - tag_h if y - half - tag_h >= 0 else y + half + 1
            if status_box[1] == 0 and _overlaps((x - half, above, tag_w, tag_h), status_box):
                above = max(above, status_box[1] + status_box[3])
            right = x + w + half - tag_w
            spots = [(x - half, above), (x - half, y + half + 1), (right, y - half - tag_h)]
            spots += [(right, y + half + 1), (x - half, y + h + half)]
            tag = _first_free((tag_w, tag_h), spots, others + placed, frame_w, frame_h)
            if tag is not None:
                break
        if tag is None:  # no room anywhere: the shortest wording just inside the box's own top edge
            tag_w, tag_h, _, _ = _tag_size(text, style, text_scale)
            tag = (
                _clamp(x - half, 0, max(0, frame_w - tag_w)),
                _clamp(y + half + 1, 0, max(0, frame_h - tag_h)),
                tag_w,
                tag_h,
            )
        placed.append(tag)
        panel = None
        rows = min(3, len(face.scores))
        if rows:
            geometry = _Panel.for_style(style, rows)
            gap = style.line_px + style.pad_px
            cw, ch = geometry.width, geometry.height
            spots = [(x + w + gap, y), (x - gap - cw, y), (x, y + h + gap)]
            spots += [(x + w + gap, tag[1] + tag[3] + geometry.pad), (x, y - gap - ch)]
            fits = [(sx, sy) for sx, sy in spots if sx >= 0 and sx + cw <= frame_w] or spots
            panel = _first_free((cw, ch), fits, [*others, face.box, *placed], frame_w, frame_h)
            if panel is not None:
                placed.append(panel)
        out.append(Placement(tag, text, text_scale, panel))
    return out


def _draw_scores(frame: np.ndarray, face: FaceLabel, panel: Rect, style: _Style) -> None:
    """A bar chart of the three highest scores on a dark panel at ``panel``."""
    top = sorted(face.scores.items(), key=lambda item: item[1], reverse=True)[:3]
    if not top:
        return
    geometry = _Panel.for_style(style, len(top))
    cx, cy, chart_w, chart_h = panel
    name_w, name_h, pad, scale, text_px = (
        geometry.name_w,
        geometry.name_h,
        geometry.pad,
        geometry.scale,
        geometry.text_px,
    )
    cv2.rectangle(frame, (cx, cy), (cx + chart_w - 1, cy + chart_h - 1), STATUS_BACKGROUND, cv2.FILLED)
    for row, (name, score) in enumerate(top):
        row_y = cy + pad + row * geometry.row_h
        cv2.putText(
            frame, name, (cx + pad, row_y + name_h), OVERLAY_FONT, scale, STATUS_TEXT, text_px, cv2.LINE_AA
        )
        bx = cx + name_w + 2 * pad
        bar_w = geometry.bar_w
        cv2.rectangle(frame, (bx, row_y), (bx + bar_w - 1, row_y + name_h), BAR_BACKGROUND, cv2.FILLED)
        filled = round(bar_w * min(max(score, 0.0), 1.0))
        if filled > 0:
            bar_colour = emotion_colour(name, face.confirmed)
            cv2.rectangle(frame, (bx, row_y), (bx + filled - 1, row_y + name_h), bar_colour, cv2.FILLED)


def _draw_face(frame: np.ndarray, face: FaceLabel, style: _Style, placement: Placement) -> None:
    colour = emotion_colour(face.emotion, face.confirmed)
    x, y, w, h = face.box
    thickness = style.line_px if face.confirmed else max(1, style.line_px // 3)
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, thickness, cv2.LINE_8)
    _draw_tag(frame, placement.text, placement.tag[0], placement.tag[1], colour, style, placement.scale)
    if placement.panel is not None:
        _draw_scores(frame, face, placement.panel, style)


def _status_text(status: StatusLine) -> str:
    faces = "face" if status.faces == 1 else "faces"
    rate = "still image" if status.fps is None else f"{status.fps:.1f} fps"
    return f"{rate} | {status.faces} {faces} | {status.mqtt}"


def _status_scale(frame_w: int, text: str, style: _Style) -> float:
    """The status line's font scale: 0.8 of the labels', smaller where that would run past the frame's right
    edge (a 160 px frame cut the MQTT state off)."""
    scale = style.font_scale * 0.8
    w, _, _, _ = _tag_size(text, style, scale)
    if w <= frame_w:
        return scale
    return scale * max(frame_w - 2 * style.pad_px, 1) / max(w - 2 * style.pad_px, 1)


def status_place(frame_shape: tuple[int, ...], faces: list[FaceLabel], status: StatusLine) -> Rect:
    """Where the status line goes (x, y, w, h): the top-left corner, or else the first of the top-right,
    bottom-left and bottom-right corners where it covers no face; where every corner covers one (a crowd),
    the corner covering the least face area."""
    frame_h, frame_w = frame_shape[:2]
    style = _Style.for_frame(np.empty((frame_h, frame_w, 1), np.uint8))
    text = _status_text(status)
    w, h, _, _ = _tag_size(text, style, _status_scale(frame_w, text, style))
    right, bottom = max(0, frame_w - w), max(0, frame_h - h)
    corners = [(0, 0, w, h), (right, 0, w, h), (0, bottom, w, h), (right, bottom, w, h)]
    return min(corners, key=lambda corner: sum(_overlap_area(corner, face.box) for face in faces))


def draw_status(frame: np.ndarray, status: StatusLine, at: tuple[int, int] = (0, 0)) -> Rect:
    """The status line on a dark background with its top-left corner ``at`` (default the frame's top-left
    corner); returns its box (x, y, w, h)."""
    style = _Style.for_frame(frame)
    text = _status_text(status)
    return _draw_tag(frame, text, *at, STATUS_BACKGROUND, style, _status_scale(frame.shape[1], text, style))


def draw_overlay(
    frame: np.ndarray, faces: list[FaceLabel], status: StatusLine, avoid: Sequence[Rect] = ()
) -> None:
    """Draw every face and the status line in place on a BGR uint8 frame; no tag or panel covers a face
    or a box of ``avoid`` (faces not drawn on this frame that are still there)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 frame of shape (h, w, 3), got {frame.dtype} {frame.shape}")
    style = _Style.for_frame(frame)
    # Unconfirmed faces first, so confirmed ones are drawn on top of them; the status line last of all.
    ordered = sorted(faces, key=lambda f: f.confirmed)
    for face, placement in zip(ordered, layout_overlay(frame.shape, ordered, status, avoid), strict=True):
        _draw_face(frame, face, style, placement)
    draw_status(frame, status, status_place(frame.shape, ordered, status)[:2])
