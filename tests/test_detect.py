"""The daemon's detector (small image, full search every N frames, windows around tracks) on the samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.camera import make_lores
from device.config import DetectConfig, TrackConfig
from device.detect import FaceDetector
from device.track import FaceTracker
from tools.bench import decode
from tools.groundtruth import detect_reference, load_calibration, load_truth, reference_detector, score_video

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CALIBRATION = Path(__file__).resolve().parent.parent / "models" / "crop.json"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def read_frames(name: str) -> list[np.ndarray]:
    return decode(SAMPLES / f"{name}.mp4")[0]


def run_fast_path(frames: list[np.ndarray], config: DetectConfig, fps: float = 15.0):
    """Detector + tracker exactly as the pipeline chains them; returns boxes and events per frame."""
    detector = FaceDetector(config)
    tracker = FaceTracker(TrackConfig(), LABELS)
    boxes_per_frame, events = [], []
    for index, image in enumerate(frames):
        now_s = index / fps
        gray, scale = make_lores(image, config.width_px)
        boxes = detector.detect(gray, scale, tracker.live_boxes(now_s), tracker.all_confirmed)
        if boxes is None:  # a coasting frame: the tracks' predicted boxes are the pipeline's output
            events += [(index, e) for e in tracker.coast(now_s)]
            boxes_per_frame.append([t.shown_box for t in tracker.shown(now_s)])
            continue
        boxes_per_frame.append(boxes)
        scores = np.tile(np.eye(len(LABELS), dtype=np.float32)[6], (len(boxes), 1))
        events += [(index, e) for e in tracker.update(boxes, scores, now_s)]
    return boxes_per_frame, events


@pytest.fixture(scope="module", params=["one-face", "four-faces"])
def sample(request):
    """A sample video, its truth, and the fast path's boxes and events on it (computed once)."""
    frames = read_frames(request.param)
    boxes, events = run_fast_path(frames, DetectConfig())
    return request.param, frames, load_truth(SAMPLES / f"{request.param}.json"), boxes, events


def test_fast_path_recall_and_precision(sample):
    name, _frames, truth, boxes, _events = sample
    score = score_video(boxes, truth, load_calibration(CALIBRATION))
    print(f"{name}: recall {score['recall']:.3f} precision {score['precision']:.3f}")
    assert score["recall"] >= 0.9, score
    assert score["precision"] >= 0.95, score


def test_fast_path_recall_within_two_points_of_reference(sample):
    """On every 6th frame, the reference (full frame, every frame) vs the fast path as it runs."""
    _name, frames, truth, fast, _events = sample
    calibration = load_calibration(CALIBRATION)
    cascade = reference_detector()
    every = range(0, len(frames), 6)
    reference = [
        detect_reference(cascade, cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY)) if i in every else None
        for i in range(len(frames))
    ]
    ours = [fast[i] if i in every else None for i in range(len(frames))]
    ref_score = score_video(reference, truth, calibration)
    our_score = score_video(ours, truth, calibration)
    assert our_score["recall"] >= ref_score["recall"] - 0.02, (our_score, ref_score)
    assert our_score["precision"] >= ref_score["precision"] - 0.01, (our_score, ref_score)


def test_every_face_gets_new_within_half_a_second(sample):
    """Including the face that enters the four-face video midway, between two full searches."""
    name, _frames, truth, _boxes, events = sample
    new_frames = sorted(index for index, event in events if event.kind == "new")
    for face_id, (first, _last) in truth.faces.items():
        later = [f for f in new_frames if f >= first]
        assert later, f"face {face_id} of {name} never announced"
        delay_s = (later[0] - first) / truth.fps
        assert delay_s <= 0.5, f"face {face_id} of {name}: new after {later[0] - first} frames"


def test_fast_moving_face_keeps_one_track():
    """A face crossing the frame at 20 px a frame (300 px/s at 15 fps) keeps its id."""
    frames = read_frames("one-face")
    face = frames[30][150:300, 60:220].copy()
    background = np.full((480, 640, 3), 120, np.uint8)
    moving = []
    for i in range(22):
        image = background.copy()
        x = 10 + 20 * i
        image[150 : 150 + face.shape[0], x : x + face.shape[1]] = face
        moving.append(image)
    _, events = run_fast_path(moving, DetectConfig())
    assert [e.kind for _, e in events].count("new") == 1


def test_fast_path_and_reference_give_the_same_labels(sample):
    """The classifier sees the same crop either way: cut from the full-resolution frame at the matched box."""
    from device.classify import EmotionClassifier
    from device.preprocess import face_batch
    from tools.groundtruth import match_pairs

    _name, frames, _truth, fast, _events = sample
    classifier = EmotionClassifier(Path(__file__).resolve().parent.parent / "models" / "emotion-int8.tflite")
    cascade = reference_detector()
    same = total = 0
    for index in range(0, len(frames), 6):
        gray = cv2.cvtColor(frames[index], cv2.COLOR_BGR2GRAY)
        reference = detect_reference(cascade, gray)
        for i, j in match_pairs(fast[index], reference, 0.5):
            ours, theirs = classifier.classify(
                face_batch(gray, [fast[index][i], reference[j]], classifier.card.crop)
            )
            same += int(ours.argmax() == theirs.argmax())
            total += 1
    assert total >= 25
    assert same / total >= 0.9, f"{same} of {total} labels agree"
