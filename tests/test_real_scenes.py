"""Issue 14 with real frames: a far face at 1080p, clutter that is no face, a face through a 2 s gap."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import DetectConfig
from device.vision.classify import EmotionClassifier
from device.vision.pipeline import FrameResult
from tests.required import missing
from tools.bench import decode, run_moodcast, run_pipeline
from tools.groundtruth import load_calibration, load_truth
from tools.scene_metrics import identity

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FPS = 15.0


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier(ROOT / "models" / "emotion-int8.tflite")


def sample_face(name: str = "one-face", index: int = 30) -> np.ndarray:
    """A real face from a sample clip, cut at its ground-truth box (FER2013's framing)."""
    frame = decode(SAMPLES / f"{name}.mp4")[0][index]
    x, y, w, h = next(face.box for face in load_truth(SAMPLES / f"{name}.json").frames[index])
    return frame[y : y + h, x : x + w].copy()


def background(width: int, height: int) -> np.ndarray:
    """The sample clip's own background (its last frame, with no face), stretched to this size."""
    last = decode(SAMPLES / "one-face.mp4")[0][-1]
    return cv2.resize(last, (width, height), interpolation=cv2.INTER_LINEAR)


def paste(image: np.ndarray, face: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    out = image.copy()
    out[y : y + size, x : x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return out


def new_ids(results: list[FrameResult]) -> list[int]:
    return [e.track.face_id for r in results for e in r.events if e.kind == "new"]


def test_a_far_face_at_1080p_is_found(classifier):
    """A 56 px face in a 1920x1080 frame: the detection image is sized so Haar's 24 px window fits it.

    At the old fixed width (320 px) the small image shows this face 9 px wide and nothing is found.
    """
    frame = paste(background(1920, 1080), sample_face(), 1300, 400, 56)
    frames = [frame] * 8
    assert DetectConfig().lores_width_px(1920) == 960
    results = run_pipeline(frames, classifier)
    assert len(new_ids(results)) == 1
    box = results[-1].boxes[0]
    assert abs(box[0] + box[2] / 2 - 1328) < 15 and abs(box[1] + box[3] / 2 - 428) < 15, box
    assert new_ids(run_pipeline(frames, classifier, FPS, DetectConfig(width_px=320))) == []


def clutter_frame(scale: float) -> np.ndarray:
    """scikit-image's photograph of coins, scaled, on a gray 1280x720 frame: Haar boxes one of them."""
    try:
        from skimage import data
    except ImportError:
        missing("scikit-image is not installed (make setup installs the dev extra)")
    coins = cv2.resize(data.coins(), None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    frame = np.full((720, 1280), 128, np.uint8)
    h, w = min(coins.shape[0], 720), min(coins.shape[1], 1280)
    frame[:h, :w] = coins[:h, :w]
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


@pytest.mark.slow  # 720p frames with every hint searched at full resolution (2 s): make test-slow
def test_a_clutter_frame_produces_no_event(classifier):
    """Haar takes a coin for a face on every search; the verifier stops it before it becomes a track."""
    frames = [clutter_frame(1.4)] * 12
    unverified = run_pipeline(frames, classifier, FPS, DetectConfig(verify=False))
    assert new_ids(unverified), "the clutter no longer fools Haar: pick another frame"
    results = run_pipeline(frames, classifier)
    assert [e for r in results for e in r.events] == []
    assert all(r.boxes == [] for r in results)


def occluded_walk(face: np.ndarray, gap_frames: int) -> list[np.ndarray]:
    """A face walking right at 3 px a frame, hidden behind a gray board for ``gap_frames`` frames."""
    base = background(640, 480)
    frames = []
    for i in range(20 + gap_frames + 20):
        image = paste(base, face, 120 + 3 * i, 160, 120)
        if 20 <= i < 20 + gap_frames:
            board_x = 100 + 3 * 20
            image[120:330, board_x : board_x + 3 * gap_frames + 180] = (90, 95, 100)
        frames.append(image)
    return frames


def test_a_face_through_a_two_second_gap_keeps_its_id(classifier):
    """Occluded for 2 s (30 frames at 15 fps), the face comes back under the id it had."""
    results = run_pipeline(occluded_walk(sample_face(), 30), classifier)
    assert len(new_ids(results)) == 1, new_ids(results)
    assert not [e for r in results[:50] for e in r.events if e.kind == "end"]
    assert len(results[-1].boxes) == 1


@pytest.mark.slow  # 20 faces verified and classified on 24 frames (seconds): make test-slow
def test_a_crowd_of_twenty_faces_is_announced_and_nothing_else(classifier):
    """20 real faces of 100 px in one 640x480 frame (5 x 4, 24 px and 16 px apart): 20 tracks, 0 false.

    The 320 px detection image finds 19; the wider image (the fourth full search's turn, frame 15) finds
    the 20th, and a full search looks again, in its window, for each live track it did not find. (The
    second cascade's turn, frame 5, boxes it too, but its window's boxes weigh just under the verifier's
    threshold until the wider image gives the track a box that passes.)
    """
    truth, clip = load_truth(SAMPLES / "four-faces.json"), decode(SAMPLES / "four-faces.mp4")[0]
    faces = [sample_face("one-face", i) for i in (10, 80, 120)]
    for index in (20, 150):
        for face in truth.frames[index]:
            x, y, w, h = face.box
            faces.append(clip[index][y : y + h, x : x + w].copy())
    image, spots = background(640, 480), []
    for k in range(20):
        x, y = 14 + (k % 5) * 124, 12 + (k // 5) * 116
        image = paste(image, faces[k % len(faces)], x, y, 100)
        spots.append((x + 50, y + 50))
    results = run_pipeline([image] * 24, classifier)
    assert len(new_ids(results)) == 20
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in results[-1].boxes]
    assert len(centres) == 20
    for cx, cy in centres:  # every box on a face, one box a face
        assert min(np.hypot(cx - sx, cy - sy) for sx, sy in spots) < 20


@pytest.mark.slow  # 240 frames at 720p and 1080p through the pipeline (10-20 s): make test-slow
@pytest.mark.parametrize("clip", ["hd720-walk", "hd1080-walk"])
def test_no_face_changes_id_on_the_occlusion_clips(classifier, clip):
    """Faces cross, and one pauses behind the pillar for about 2 s: no ID switch (py-motmetrics).

    Before: one face took the 2 s hidden face's id as it came out (the lost track took a box of another
    size by overlap), and the hidden face's track was taken back by a false box on its path that no
    verifier had checked (2 switches at 1080p); at 720p the face came out more than a face size from both
    where it was last seen and where its speed would have taken it, and got a new id.
    """
    path = SAMPLES / "scenes" / f"{clip}.mp4"
    truth = load_truth(path.with_suffix(".json"))
    frames = decode(path)[0]
    shown = run_moodcast(frames, classifier, truth.fps, DetectConfig().min_size_px)[4]
    found = identity(shown, truth, load_calibration(ROOT / "models" / "crop.json"))
    assert found["id_switches"] == 0, found
    assert found["false_tracks"] == 0, found
