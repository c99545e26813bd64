"""The overlay drawn on real frames: box colours, tag placement, score bars and the status line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.const import EMOTION_COLOURS, FALLBACK_COLOUR, STATUS_BACKGROUND
from device.display.overlay import (
    StatusLine,
    draw_overlay,
    draw_status,
    emotion_colour,
    layout_overlay,
    status_place,
)
from device.vision.pipeline import FaceLabel

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
GREY = 90
STATUS = StatusLine(fps=14.2, faces=1, mqtt="mqtt: offline (12 queued)")


def blank(width: int = 640, height: int = 480) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def face(box: tuple[int, int, int, int], emotion: str = "happy", confirmed: bool = True) -> FaceLabel:
    scores = {emotion: 0.8, "sad": 0.15, "neutral": 0.05}
    return FaceLabel(face_id=7, box=box, emotion=emotion, confidence=0.8, scores=scores, confirmed=confirmed)


def is_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return (pixels == np.array(colour, np.uint8)).all(axis=-1)


def test_every_fer_label_has_its_own_colour_distinct_from_the_fallback() -> None:
    colours = [EMOTION_COLOURS[label] for label in FER_LABELS]
    assert len(set(colours)) == len(FER_LABELS)
    assert FALLBACK_COLOUR not in colours
    assert emotion_colour("contempt") == FALLBACK_COLOUR


@pytest.mark.parametrize("emotion", ["happy", "angry", "contempt"])
def test_box_edges_are_in_the_emotion_colour(emotion: str) -> None:
    frame = blank()
    x, y, w, h = 200, 200, 120, 140
    draw_overlay(frame, [face((x, y, w, h), emotion)], STATUS)
    colour = EMOTION_COLOURS.get(emotion, FALLBACK_COLOUR)
    mid_row, mid_col = y + h // 2, x + w // 2
    assert is_colour(frame[mid_row, x], colour)  # left edge
    assert is_colour(frame[mid_row, x + w - 1], colour)  # right edge
    assert is_colour(frame[y + h - 1, mid_col], colour)  # bottom edge
    assert is_colour(frame[y, mid_col], colour)  # top edge (the tag above shares the colour)
    thick = is_colour(frame[mid_row, x - 5 : x + 6], colour).sum()
    assert thick >= 3  # thick enough to read across a room
    assert (frame[mid_row, x + 10 : x + w - 10] == GREY).all()  # the face itself is left alone


def test_label_tag_is_filled_above_the_box() -> None:
    frame = blank()
    x, y, w, h = 200, 200, 120, 140
    draw_overlay(frame, [face((x, y, w, h), "sad")], STATUS)
    above = frame[y - 25 : y - 3, x : x + 60]
    assert is_colour(above, EMOTION_COLOURS["sad"]).mean() > 0.5  # mostly the filled tag
    assert (above == 255).all(axis=-1).any()  # with light text on the dark blue


def test_tag_stays_inside_the_frame_when_the_box_touches_the_top() -> None:
    frame = blank()
    x, y, w, h = 400, 0, 150, 150
    draw_overlay(
        frame, [face((x, y, w, h), "happy")], StatusLine(9.5, 1, "mqtt: off")
    )  # short: ends left of x
    inside_top = frame[4:20, x + 5 : x + 60]
    assert is_colour(inside_top, EMOTION_COLOURS["happy"]).mean() > 0.4
    assert (inside_top == 0).all(axis=-1).any()  # dark text on the yellow tag


def test_the_status_line_leaves_a_face_at_the_top_left_for_a_free_corner() -> None:
    """It was always drawn at the top-left, over a face there (in a crowd, over one face or two)."""
    frame = blank()
    draw_overlay(frame, [face((20, 0, 120, 150), "angry")], STATUS)
    assert not is_colour(frame[:150, :140], STATUS_BACKGROUND).any()  # the face and its tag: no status line
    assert is_colour(frame[:3, -3:], STATUS_BACKGROUND).all()  # the top-right corner instead
    faces = [face((20, 0, 120, 150), "angry")]
    tag = layout_overlay(frame.shape, faces, STATUS)[0].tag
    assert not overlaps(tag, status_place(frame.shape, faces, STATUS))  # nor does it cover the tag


def test_in_a_crowd_the_status_line_takes_the_corner_covering_least() -> None:
    frame, faces = crowd_faces()
    status = StatusLine(14.2, len(faces), "mqtt: connected")
    chosen = status_place(frame.shape, faces, status)
    x, y, w, h = chosen
    covered = lambda rect: sum(overlap_area(rect, other.box) for other in faces)  # noqa: E731
    corners = [(cx, cy, w, h) for cx in (0, frame.shape[1] - w) for cy in (0, frame.shape[0] - h)]
    assert covered(chosen) == min(covered(corner) for corner in corners) < covered((0, 0, w, h))


def test_score_bars_beside_the_box_use_each_emotions_colour() -> None:
    frame = blank()
    x, y, w, h = 100, 150, 120, 120
    draw_overlay(frame, [face((x, y, w, h), "surprise")], STATUS)
    beside = frame[y : y + h, x + w + 4 :]
    for label in ("surprise", "sad", "neutral"):
        assert is_colour(beside, EMOTION_COLOURS[label]).any(), label


def test_score_bars_go_left_of_a_box_at_the_right_edge() -> None:
    frame = blank()
    x, y, w, h = 520, 200, 120, 120
    draw_overlay(frame, [face((x, y, w, h), "fear")], STATUS)
    assert is_colour(frame[y : y + h, : x - 2], EMOTION_COLOURS["fear"]).any()


def test_unconfirmed_face_is_thin_and_dim() -> None:
    confirmed, unconfirmed = blank(), blank()
    box = (200, 200, 120, 140)
    draw_overlay(confirmed, [face(box, "happy", True)], STATUS)
    draw_overlay(unconfirmed, [face(box, "happy", False)], STATUS)
    bright = EMOTION_COLOURS["happy"]
    dim = emotion_colour("happy", confirmed=False)
    assert sum(dim) < sum(bright)
    row = 270
    assert is_colour(unconfirmed[row, 200], dim) and not is_colour(unconfirmed[row, 200], bright)
    width = lambda frame, colour: is_colour(frame[row, 190:212], colour).sum()  # noqa: E731
    assert width(unconfirmed, dim) < width(confirmed, bright)


def test_status_line_has_a_dark_background_at_the_top_left() -> None:
    frame = blank()
    draw_overlay(frame, [], StatusLine(fps=9.5, faces=0, mqtt="mqtt: off"))
    corner = frame[:3, :3]  # the padding before the text
    assert is_colour(corner, STATUS_BACKGROUND).all()
    strip = frame[:20, :200]
    assert is_colour(strip, STATUS_BACKGROUND).mean() > 0.5
    assert (strip == 255).all(axis=-1).any()  # white text on it
    assert (frame[200:, :] == GREY).all()  # nothing else drawn


def test_longer_status_text_gives_a_wider_background() -> None:
    short, long = blank(), blank()
    draw_overlay(short, [], StatusLine(9.5, 0, "mqtt: off"))
    draw_overlay(long, [], StatusLine(9.5, 0, "mqtt: offline (1234 queued)"))
    assert is_colour(long[2], STATUS_BACKGROUND).sum() > is_colour(short[2], STATUS_BACKGROUND).sum()


@pytest.mark.parametrize("size", [(160, 120), (120, 160), (96, 64)])
def test_the_status_line_fits_a_small_frame_whole(size: tuple[int, int]) -> None:
    """A 160x120 frame showed "949.9 fps | 0 faces | mqtt: of": the MQTT state ran off the edge."""
    width, height = size
    frame = blank(width, height)
    status = StatusLine(fps=949.9, faces=0, mqtt="mqtt: offline (12 queued)")
    x, _, w, _ = status_place(frame.shape, [], status)
    drawn = draw_status(frame, status)
    assert x + w <= width and drawn[0] + drawn[2] <= width
    text_columns = np.nonzero((frame.min(axis=-1) > 150).any(axis=0))[0]  # light text on the dark line
    assert text_columns.max() < width - 1  # the text ends inside the frame, before its padding


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (1920, 1080)])
def test_frame_size_and_type_are_unchanged_and_text_scales(size: tuple[int, int]) -> None:
    width, height = size
    frame = blank(width, height)
    box = (width // 3, height // 3, width // 5, width // 5)
    draw_overlay(frame, [face(box, "neutral"), face((5, height - 60, 50, 50), "joy", False)], STATUS)
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    status_rows = np.nonzero(is_colour(frame[:, 0], STATUS_BACKGROUND))[0]
    assert status_rows.max() + 1 >= height * 0.04  # the status line grows with the frame


def test_rejects_a_frame_that_is_not_bgr_uint8() -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        draw_overlay(np.zeros((48, 64), np.uint8), [], STATUS)


def test_a_kept_tag_is_drawn_exactly_as_drawing_it_afresh() -> None:
    """Tags are rendered once and reused: the pixels must equal a rectangle and text drawn on the frame."""
    import cv2

    from device.const import OVERLAY_FONT, STATUS_TEXT

    status = StatusLine(fps=9.5, faces=2, mqtt="mqtt: connected")
    for _ in range(2):  # the second call is served from the kept tags
        kept = np.full((480, 640, 3), GREY, np.uint8)
        x, y, w, h = draw_status(kept, status)
    fresh = np.full((480, 640, 3), GREY, np.uint8)
    scale, text_px, pad = 0.8 * 480 / 600, 2, 4
    (_, th), _ = cv2.getTextSize("9.5 fps | 2 faces | mqtt: connected", OVERLAY_FONT, scale, text_px)
    cv2.rectangle(fresh, (x, y), (x + w - 1, y + h - 1), STATUS_BACKGROUND, cv2.FILLED)
    cv2.putText(
        fresh, "9.5 fps | 2 faces | mqtt: connected", (x + pad, y + pad + th), OVERLAY_FONT, scale,
        STATUS_TEXT, text_px, cv2.LINE_AA,
    )  # fmt: skip
    np.testing.assert_array_equal(kept[y : y + h, x : x + w], fresh[y : y + h, x : x + w])


def crowd_faces() -> tuple[np.ndarray, list[FaceLabel]]:
    """The first frame of samples/scenes/crowd-20.mp4 and its 20 faces as tracks, at their truth boxes."""
    import cv2

    from tools.groundtruth import load_truth

    scenes = Path(__file__).resolve().parent.parent / "samples" / "scenes"
    capture = cv2.VideoCapture(str(scenes / "crowd-20.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    truth = load_truth(scenes / "crowd-20.json")
    scores = dict(zip(FER_LABELS, np.linspace(0.4, 0.02, len(FER_LABELS)).tolist(), strict=True))
    faces = [
        FaceLabel(f.id, f.box, FER_LABELS[f.id % 7], 0.4, dict(scores), confirmed=f.id % 5 != 0)
        for f in truth.frames[0]
    ]
    assert len(faces) == 20
    return frame, faces


def test_in_a_crowd_no_tag_or_panel_covers_another_face() -> None:
    frame, faces = crowd_faces()
    status = StatusLine(14.2, len(faces), "mqtt: connected")
    ordered = sorted(faces, key=lambda f: f.confirmed)
    placements = layout_overlay(frame.shape, ordered, status)
    for face, placement in zip(ordered, placements, strict=True):
        for other in ordered:
            if other is face:
                continue
            assert not overlaps(placement.tag, other.box), (face.face_id, other.face_id)
            if placement.panel is not None:
                assert not overlaps(placement.panel, other.box), (face.face_id, other.face_id)
    # What is drawn is that layout: inside each face, away from its own box line and tag (and the status line,
    # which covers part of a face in so full a frame), nothing changes.
    before = frame.copy()
    sx, sy, sw, sh = status_place(frame.shape, ordered, status)
    draw_overlay(frame, faces, status)
    for face, placement in zip(ordered, placements, strict=True):
        x, y, w, h = face.box
        inside = np.zeros(frame.shape[:2], bool)
        inside[y + 8 : y + h - 8, x + 8 : x + w - 8] = True
        tx, ty, tw, th = placement.tag
        inside[ty : ty + th, tx : tx + tw] = False
        inside[sy : sy + sh, sx : sx + sw] = False
        assert (frame[inside] == before[inside]).all(), face.face_id


def test_a_lone_face_keeps_its_full_tag_and_panel() -> None:
    placement = layout_overlay((480, 640, 3), [face((200, 200, 120, 140))], STATUS)[0]
    assert placement.text.endswith("%") and placement.panel is not None
    assert placement.tag[1] + placement.tag[3] <= 200  # above the box
    assert placement.panel[0] >= 320  # right of it


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def overlap_area(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    return max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])) * max(
        0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    )


def test_a_still_image_has_no_frame_rate_on_its_status_line() -> None:
    """/api/v1/analyze?annotate=true drew "0.0 fps" on a photo."""
    from device.display.overlay import _status_text

    assert _status_text(StatusLine(None, 2, "model moodcast-emotion")) == (
        "still image | 2 faces | model moodcast-emotion"
    )
    assert _status_text(StatusLine(14.25, 1, "mqtt: off")) == "14.2 fps | 1 face | mqtt: off"
    frame = blank(320, 240)
    draw_overlay(frame, [], StatusLine(None, 0, "model x"))
    assert is_colour(frame[:3, :3], STATUS_BACKGROUND).all()


def test_a_tracked_face_missed_on_this_frame_is_not_covered_by_a_neighbours_panel() -> None:
    """In the crowd clip a live track the last search missed is not drawn (not shown on this frame), but its
    face is still there: the daemon put #6's score panel over the crying child's eyes on 31 of the clip's
    last 60 frames. The overlay keeps tags and panels off such faces too (``avoid``)."""
    frame, faces = crowd_faces()
    status = StatusLine(14.2, len(faces), "mqtt: off")
    for missed in faces:
        drawn = [f for f in faces if f is not missed]
        ordered = sorted(drawn, key=lambda f: f.confirmed)
        for placement in layout_overlay(frame.shape, ordered, status, avoid=[missed.box]):
            assert not overlaps(placement.tag, missed.box), missed.face_id
            if placement.panel is not None:
                assert not overlaps(placement.panel, missed.box), missed.face_id
        before = frame.copy()
        draw_overlay(before, drawn, status, avoid=[missed.box])
        x, y, w, h = missed.box
        sx, sy, sw, sh = status_place(frame.shape, ordered, status)
        inside = np.zeros(frame.shape[:2], bool)
        inside[y + 8 : y + h - 8, x + 8 : x + w - 8] = True
        inside[sy : sy + sh, sx : sx + sw] = False
        assert (before[inside] == frame[inside]).all(), missed.face_id
