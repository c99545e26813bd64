"""The sample videos agree with their ground truth, and the reference Haar finds their faces."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from device.vision.preprocess import CropSpec, crop_box
from tools.groundtruth import (
    detect_video,
    from_fer_box,
    iou,
    load_calibration,
    load_truth,
    match,
    score_video,
    to_fer_box,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
CROP_JSON = ROOT / "models" / "crop.json"
NAMES = ("one-face", "four-faces")


@pytest.mark.parametrize("name", NAMES)
def test_truth_matches_video(name: str) -> None:
    truth = load_truth(SAMPLES / f"{name}.json")
    assert truth.video == f"{name}.mp4"
    capture = cv2.VideoCapture(str(SAMPLES / truth.video))
    assert capture.isOpened()
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == truth.frame_count
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(truth.fps, abs=0.01)
        ok, frame = capture.read()
        assert ok
        assert frame.shape == (truth.height, truth.width, 3)
    finally:
        capture.release()
    assert (SAMPLES / truth.video).stat().st_size < 3_000_000
    assert 150 <= truth.frame_count <= 180  # 10-12 s at 15 fps


@pytest.mark.parametrize("name", NAMES)
def test_face_ids_consistent_with_frames(name: str) -> None:
    truth = load_truth(SAMPLES / f"{name}.json")
    seen: dict[int, list[int]] = {}
    for index, faces in enumerate(truth.frames):
        ids = [face.id for face in faces]
        assert len(ids) == len(set(ids)), f"frame {index} lists a face twice"
        for face in faces:
            x, y, w, h = face.box
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= truth.width and y + h <= truth.height
            assert face.label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
            seen.setdefault(face.id, []).append(index)
    assert set(seen) == set(truth.faces)
    for face_id, (first, last) in truth.faces.items():
        assert (first, last) == (seen[face_id][0], seen[face_id][-1])


def test_one_face_changes_expression_and_leaves_early() -> None:
    truth = load_truth(SAMPLES / "one-face.json")
    labels = [faces[0].label for faces in truth.frames if faces]
    changes = [b for a, b in zip(labels, labels[1:], strict=False) if a != b]
    assert len(changes) == 2
    ((first, last),) = truth.faces.values()
    assert first == 0 and truth.frame_count - 1 - last >= 2 * truth.fps  # gone 2 s before the end


def test_four_faces_has_an_exit_and_an_entry() -> None:
    truth = load_truth(SAMPLES / "four-faces.json")
    assert len(truth.faces) == 5
    assert max(len(faces) for faces in truth.frames) == 4
    assert any(last < truth.frame_count - 1 for _, last in truth.faces.values())
    assert any(first > 0 for first, _ in truth.faces.values())
    raw = json.loads((SAMPLES / "four-faces.json").read_text())
    labels = [face["labels"][0] for face in raw["faces"]]
    assert len(set(labels)) == len(labels)


def test_iou_hand_made() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (2, 2, 5, 5)) == pytest.approx(25 / 100)
    assert iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0


def test_match_is_greedy_and_one_to_one() -> None:
    truth = [(0, 0, 10, 10), (100, 100, 10, 10)]
    # Two detections on the first face: one matches, the other is a false positive.
    assert match([(0, 0, 10, 10), (1, 0, 10, 10)], truth) == (1, 1, 1)
    # The best pair wins even when listed second.
    assert match([(3, 0, 10, 10), (0, 0, 10, 10), (100, 101, 10, 10)], truth) == (2, 1, 0)
    assert match([], truth) == (0, 0, 2)
    assert match([(50, 50, 10, 10)], []) == (0, 1, 0)
    assert match([(5, 0, 10, 10)], truth, min_iou=0.5) == (0, 1, 2)
    assert match([(5, 0, 10, 10)], truth, min_iou=0.3) == (1, 0, 1)


def test_to_fer_box_follows_crop_box_and_inverts() -> None:
    det = (100, 80, 60, 60)
    assert to_fer_box(det, 0.25, 0.1, -0.05) == crop_box(
        det, CropSpec(margin_frac=0.25, offset_x_frac=0.1, offset_y_frac=-0.05)
    )
    # side 60 * 1.5 = 90, centre (130 + 6, 110 - 3) -> (91, 62, 90, 90)
    assert to_fer_box(det, 0.25, 0.1, -0.05) == (91, 62, 90, 90)
    fer = (200, 150, 120, 120)
    back = tuple(round(v) for v in from_fer_box(fer, -0.05, 0.02, 0.04))
    assert to_fer_box(back, -0.05, 0.02, 0.04) == fer


def test_score_video_maps_and_ignores_partial() -> None:
    truth = load_truth(SAMPLES / "one-face.json")
    index = 10
    box = truth.frames[index][0].box
    det = tuple(round(v) for v in from_fer_box(box, 0.3, 0.0, 0.1))
    calibration = (0.3, 0.0, 0.1)
    dets: list = [None] * truth.frame_count
    dets[index] = [det, (600, 440, 40, 40)]
    score = score_video(dets, truth, calibration)
    assert (score["frames"], score["true_pos"], score["false_pos"], score["false_neg"]) == (1, 1, 1, 0)
    assert score["mean_iou"] > 0.95
    unmapped = score_video(dets, truth)  # without calibration the box is too small to match
    assert unmapped["true_pos"] == 0


@pytest.mark.parametrize(
    "name",
    ["one-face", pytest.param("four-faces", marks=pytest.mark.slow)],  # the reference Haar: seconds
)
def test_haar_finds_the_faces(name: str) -> None:
    truth = load_truth(SAMPLES / f"{name}.json")
    calibration = load_calibration(CROP_JSON)
    score = score_video(detect_video(SAMPLES / truth.video, step=10), truth, calibration)
    assert score["frames"] == len(range(0, truth.frame_count, 10))
    assert score["recall"] >= 0.9, score
    assert score["precision"] >= 0.9, score


@pytest.mark.parametrize("name", NAMES)
def test_every_face_shown_is_one_people_agree_on(name: str) -> None:
    """At least 7 of FER+'s 10 raters gave each sample face the FER2013 label its ground truth carries."""
    raw = json.loads((SAMPLES / f"{name}.json").read_text())
    for face in raw["faces"]:
        assert len(face["ferplus_votes"]) == len(face["labels"]) == len(face["sources"])
        for label, votes in zip(face["labels"], face["ferplus_votes"], strict=True):
            assert votes[label] >= 7 and sum(votes.values()) <= 10, (face["id"], label, votes)


@pytest.mark.slow  # the daemon's pipeline over both clips, a FER accuracy check: make test-slow
@pytest.mark.parametrize("brightness", [1.0, 0.4])
def test_the_shipped_model_labels_the_sample_faces_as_their_truth(brightness: float) -> None:
    """What the demo shows. A face is labelled correctly when its track label (smoothed, as on the screen
    and in the events) equals its ground truth on at least 80 % of the frames it is counted in (a missed
    frame counts as wrong). All 6 of the samples' faces must be (issue 12's target). Models v2 and v3
    called four-faces' face 5 (angry, 9 of 10 raters agree) surprise once it is upscaled into the video,
    though they said angry on the 48x48 original; v4 calls it angry on 90 % of its frames.

    And in dim light: the whole clip at 0.4x brightness (issue 12: the v1 model changed label on 19 of 57
    faces filmed so), through detection, crop, normalisation and the tracker, as a camera in a dim room
    would give it. v4's shares at 0.4x (and at 0.3x) are the clip's own, face for face."""
    from device.vision.classify import EmotionClassifier
    from tools.bench import decode, shown_labels
    from tools.groundtruth import track_label_agreement

    classifier = EmotionClassifier(ROOT / "models" / "emotion-int8.tflite")
    shares = {}
    for name in NAMES:
        truth = load_truth(SAMPLES / f"{name}.json")
        frames, _ = decode(SAMPLES / truth.video)
        frames = [(frame * brightness).clip(0, 255).astype(frame.dtype) for frame in frames]
        agreement = track_label_agreement(
            shown_labels(frames, classifier, truth.fps), truth, load_calibration(CROP_JSON)
        )
        shares.update({f"{name}/{face_id}": same / total for face_id, (same, total) in agreement.items()})
    print(shares)
    correct = [face for face, share in shares.items() if share >= 0.8]
    assert len(shares) == 6 and len(correct) == 6, shares
