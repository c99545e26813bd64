"""The daemon's pipeline (small image every N frames, full-resolution track windows) on the samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import DetectConfig, TrackConfig
from device.const import EXACT_BOX_SCORE_MARGIN
from device.sources.camera import Frame, make_lores
from device.vision.classify import EmotionClassifier
from device.vision.detect import FaceDetector, iou
from device.vision.pipeline import Pipeline
from device.vision.track import FaceTracker
from tools.bench import decode, labelled_faces, reference_faces, reference_self_agreement, run_pipeline
from tools.groundtruth import (
    label_agreement,
    load_calibration,
    load_truth,
    reference_detector,
    score_video,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
CALIBRATION = ROOT / "models" / "crop.json"


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier(ROOT / "models" / "emotion-int8.tflite")


def read_frames(name: str) -> list[np.ndarray]:
    return decode(SAMPLES / f"{name}.mp4")[0]


@pytest.fixture(scope="module")
def pipeline_on():
    """The pipeline's result on each frame of a sample video, computed once per clip for the whole module."""
    done: dict[str, tuple[list[np.ndarray], list]] = {}

    def run(name: str, classifier: EmotionClassifier) -> tuple[list[np.ndarray], list]:
        if name not in done:
            frames = read_frames(name)
            done[name] = frames, run_pipeline(frames, classifier)
        return done[name]

    return run


# The four-face clip's run costs several seconds (and its reference search more): it runs in make test-slow.
@pytest.fixture(scope="module", params=["one-face", pytest.param("four-faces", marks=pytest.mark.slow)])
def sample(request, classifier, pipeline_on):
    """A sample video, its truth, and the pipeline's result on each frame (computed once)."""
    frames, results = pipeline_on(request.param, classifier)
    return request.param, frames, load_truth(SAMPLES / f"{request.param}.json"), results


def test_fast_path_recall_and_precision(sample):
    name, _frames, truth, results = sample
    score = score_video([r.boxes for r in results], truth, load_calibration(CALIBRATION))
    print(f"{name}: recall {score['recall']:.3f} precision {score['precision']:.3f}")
    assert score["recall"] >= 0.9, score
    assert score["precision"] >= 0.95, score


def test_fast_path_recall_within_two_points_of_reference(sample):
    """On every 6th frame, the reference (full frame, every frame) vs the fast path as it runs."""
    from tools.groundtruth import detect_reference

    _name, frames, truth, results = sample
    calibration = load_calibration(CALIBRATION)
    cascade = reference_detector()
    every = range(0, len(frames), 6)
    reference = [
        detect_reference(cascade, cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY)) if i in every else None
        for i in range(len(frames))
    ]
    ours = [results[i].boxes if i in every else None for i in range(len(frames))]
    ref_score = score_video(reference, truth, calibration)
    our_score = score_video(ours, truth, calibration)
    assert our_score["recall"] >= ref_score["recall"] - 0.02, (our_score, ref_score)
    assert our_score["precision"] >= ref_score["precision"] - 0.01, (our_score, ref_score)


def test_every_face_gets_new_within_half_a_second(sample):
    """Including the face that enters the four-face video midway, between two full searches."""
    name, _frames, truth, results = sample
    new_frames = sorted(i for i, r in enumerate(results) for event in r.events if event.kind == "new")
    for face_id, (first, _last) in truth.faces.items():
        later = [f for f in new_frames if f >= first]
        assert later, f"face {face_id} of {name} never announced"
        delay_s = (later[0] - first) / truth.fps
        assert delay_s <= 0.5, f"face {face_id} of {name}: new after {later[0] - first} frames"


def test_fast_moving_face_keeps_one_track(classifier):
    """A face crossing the frame at 20 px a frame (300 px/s at 15 fps) keeps its id."""
    frames = read_frames("one-face")
    x0, y0, w, h = next(face.box for face in load_truth(SAMPLES / "one-face.json").frames[30])
    face = frames[30][y0 - 10 : y0 + h + 10, x0 - 10 : x0 + w + 10].copy()  # the whole face, and a margin
    background = np.full((480, 640, 3), 120, np.uint8)
    moving = []
    for i in range(22):
        image = background.copy()
        x = 10 + 20 * i
        image[150 : 150 + face.shape[0], x : x + face.shape[1]] = face
        moving.append(image)
    results = run_pipeline(moving, classifier)
    assert [e.kind for r in results for e in r.events].count("new") == 1


@pytest.mark.slow  # the reference pipeline on every frame of both clips (10-20 s): make test-slow
def test_tracked_faces_are_classified_at_the_reference_box(sample, classifier):
    """The classifier sees the crop the reference would cut, to the reference's own pixel noise.

    On the frames where the pipeline classified, its labels must agree with the reference pipeline's
    (Haar on the full frame, one invoke per face) at least as often as the reference's agree with
    its own when the camera moves by one pixel: a face near a class boundary flips on a 1-px shift
    of the reference's box, so no detector short of the reference itself can do better.

    The allowance is 0.02 of the matched faces (3 of the four-face clip's 156). With the v2 model the
    reference no longer flips under a 1-px move, while Haar's grouped box still differs by 2-4 px in size
    between the fast path's window and the whole frame: on the four-face clip that flips 3 crops of one
    face (5) that sits on the model's angry/surprise boundary (the fast path says angry, its truth).
    """
    name, frames, _truth, results = sample
    cascade = reference_detector()
    ours = [labelled_faces(r, classifier.labels) for r in results]
    grays = [
        cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if mine else None for f, mine in zip(frames, ours, strict=True)
    ]
    theirs = [reference_faces(cascade, classifier, g) if g is not None else None for g in grays]
    same, total = label_agreement(ours, theirs)
    floor_same, floor_total = reference_self_agreement(cascade, classifier, grays, theirs)
    print(f"{name}: {same}/{total} labels agree; the reference moved 1 px: {floor_same}/{floor_total}")
    assert total >= 25
    assert same / total >= floor_same / floor_total - 0.02


def test_a_change_of_expression_is_announced_within_half_a_second(classifier, pipeline_on):
    """The one-face clip cross-fades to a surprised face; subscribers hear of it soon after the truth changes.

    (Its earlier change, neutral to happy, is no change to the model, which sees the first face as happy.)
    """
    truth = load_truth(SAMPLES / "one-face.json")
    changed = next(i for i, faces in enumerate(truth.frames) if faces and faces[0].label == "surprise")
    _frames, results = pipeline_on("one-face", classifier)
    updates = [
        i for i, r in enumerate(results) for e in r.events if (e.kind, e.emotion) == ("update", "surprise")
    ]
    assert updates, "the change to surprise was never announced"
    assert 0 <= updates[0] - changed <= 0.5 * truth.fps, (
        f"truth changes at frame {changed}, update at {updates[0]}"
    )


def test_warns_once_when_the_small_image_cannot_show_the_smallest_face(caplog):
    """Haar's window is 24 px: at width 320 a 640 px frame's faces under 48 px cannot be found."""
    frame = read_frames("one-face")[0]
    gray, scale = make_lores(frame, 320)
    FaceDetector(DetectConfig()).scan(gray, scale)
    assert not caplog.records  # the default (48 px) is what the default image shows
    detector = FaceDetector(DetectConfig(min_size_px=30))
    with caplog.at_level("WARNING"):
        detector.scan(gray, scale)
        detector.scan(gray, scale)
    (record,) = caplog.records
    message = record.getMessage()
    assert (
        "detect.min_size_px 30" in message and "from 48 px" in message and "detect.width_px to 512" in message
    )


def test_warns_once_when_whole_frame_searches_cannot_keep_up_with_the_source(classifier, caplog):
    """Issue 14: the detector warns once when the camera's resolution and the budget cannot meet the smallest
    face. The one-face clip's whole-frame searches take about 27 ms on this 2-core machine: at the clip's own
    15 fps the 5 frames between them leave 333 ms; fed as a 2000 fps source they leave 2.5 ms, which no
    machine meets (a Pi at 1920x1080 and 30 fps is the real case: searches of 0.5-1 s against 167 ms)."""

    def run(frames: list[np.ndarray], fps: float) -> list[str]:
        config = DetectConfig()
        pipeline = Pipeline(FaceDetector(config), classifier, FaceTracker(TrackConfig(), classifier.labels))
        caplog.clear()
        with caplog.at_level("WARNING", logger="device.vision.schedule"):
            for index, image in enumerate(frames):
                gray, scale = make_lores(image, config.lores_width_px(image.shape[1]))
                pipeline.process(Frame(index, index / fps, image, gray, scale))
        return [r.getMessage() for r in caplog.records if r.name == "device.vision.schedule"]

    frames = read_frames("one-face")[:80]
    assert run(frames, 15.0) == []
    (message,) = run(frames, 2000.0)
    assert "whole-frame searches take" in message and "320 px wide detection image" in message
    assert "at the source's 2000.0 fps" in message and "raise detect.min_size_px (now 48" in message


def test_the_search_budget_is_the_sources_pace_for_bursty_and_dropping_sources(classifier, caplog):
    """The frame interval the budget allows is the source's time over its frames' count. A source that sends
    three frames 2 ms apart and then pauses 300 ms runs at 9.9 fps: its median gap (2 ms, 500 fps) wrongly
    said the one-face clip's ~27 ms searches could not keep up. A 30 fps camera whose frames the pipeline
    takes one in four (indexes 0, 4, 8, ...) still runs at 30 fps, not 7.5."""

    def run(indexes: list[int], times_s: list[float]) -> list[str]:
        config = DetectConfig()
        pipeline = Pipeline(FaceDetector(config), classifier, FaceTracker(TrackConfig(), classifier.labels))
        caplog.clear()
        with caplog.at_level("WARNING", logger="device.vision.schedule"):
            for index, time_s, image in zip(indexes, times_s, frames, strict=True):
                gray, scale = make_lores(image, config.lores_width_px(image.shape[1]))
                pipeline.process(Frame(index, time_s, image, gray, scale))
        return [r.getMessage() for r in caplog.records if r.name == "device.vision.schedule"]

    frames = read_frames("one-face")[:80]
    bursts = [0.304 * (n // 3) + 0.002 * (n % 3) for n in range(80)]
    assert run(list(range(80)), bursts) == []
    # Taken one in four from a 2000 fps source: the searches cannot keep up with it, whatever the gaps seen.
    (message,) = run([4 * n for n in range(80)], [4 * n / 2000 for n in range(80)])
    assert "at the source's 2000.0 fps" in message


def test_a_frame_too_narrow_for_the_smallest_face_names_a_fix_that_also_fits_a_video_file(caplog):
    """min_size_px 20 needs a 768 px frame for Haar's 24 px window: camera.width_px only changes a camera's
    frames, so a video file's or stream's user must be told to use a larger input too."""
    frame = read_frames("one-face")[0]
    gray, scale = make_lores(frame, DetectConfig(min_size_px=20).lores_width_px(640))
    with caplog.at_level("WARNING"):
        FaceDetector(DetectConfig(min_size_px=20)).scan(gray, scale)
    (record,) = caplog.records
    message = record.getMessage()
    assert "from 24 px at best" in message and "camera.width_px" in message and "input" in message


@pytest.mark.parametrize("size", [(8, 8), (1, 1), (40, 30), (640, 20)])
def test_a_frame_too_small_for_any_face_is_said_once(size, caplog):
    """An 8x8 or 1x1 input said only, at INFO, that new faces are found from 48 px (or 24): never that
    none could be."""
    width, height = size
    frame = np.full((height, width, 3), 128, np.uint8)
    detector = FaceDetector(DetectConfig())
    gray, scale = make_lores(frame, DetectConfig().lores_width_px(width))
    with caplog.at_level("WARNING"):
        detector.scan(gray, scale)
        detector.scan(gray, scale)
    (record,) = caplog.records
    assert f"the {width}x{height} frame is smaller than a face" in record.getMessage()
    assert "no face can be found" in record.getMessage()


@pytest.mark.slow  # 1.6-4 s on an idle 2-core machine: make test-slow
def test_a_track_window_gives_the_reference_box_wherever_the_track_is_predicted():
    """The box a track's window gives is the whole-frame search's box, not one that moves with the window.

    On the four-face clip, for each face the full-resolution search finds (at the reference's parameters
    but the daemon's minimum size), the window is placed around that box as found, moved by a few pixels
    and resized, as a track's predicted box is: every window must give back the very same box. A crop
    searched on its own gave the same box in 5 of these 300 windows (the rest 1-5 px off, which flips the
    label of the clip's face on the angry/surprise boundary): its pyramid samples other pixels, and
    OpenCV's scan of each row depends on where the row starts. All of a frame's windows searched at once
    (they share each level's scan) must give the same boxes.
    """
    config = DetectConfig()
    detector = FaceDetector(config)
    cascade = reference_detector()
    frames = read_frames("four-faces")
    windows = same = together = 0
    for frame in frames[::9]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = cascade.detectMultiScale(
            gray, config.scale_factor, config.min_neighbors, minSize=(config.min_size_px,) * 2
        )
        boxes = [tuple(int(v) for v in box) for box in found]
        for dx, dy, dw in [(0, 0, 0), (3, -2, 4), (-4, 3, -5), (6, 6, 0)]:
            moved = [(x + dx, y + dy, w + dw, h + dw) for x, y, w, h in boxes]
            for box, track in zip(boxes, moved, strict=True):
                windows += 1
                same += box in detector.search_tracks(gray, [track])
            found_together = detector.search_tracks(gray, moved)
            together += sum(box in found_together for box in boxes)
    assert windows >= 250
    assert same == windows, f"{same} of {windows} windows gave the whole frame's box"
    assert together == windows, (
        f"{together} of {windows} windows searched together gave the whole frame's box"
    )


def test_a_window_not_marked_exact_falls_back_to_the_whole_frames_hits():
    """A face leaving the frame: the track's window, cut off by the frame's edge, groups no box of its own
    (the pipeline lost the one-face clip's face 3 frames early that way); the whole frame's hits still do."""
    gray = cv2.cvtColor(read_frames("one-face")[145], cv2.COLOR_BGR2GRAY)
    predicted = (499, 101, 146, 146)  # the track's predicted box on this frame, 146 px; the face is 115 px
    detector = FaceDetector(DetectConfig())
    exact = detector.search_tracks(gray, [predicted], exact=[True])
    assert exact == [(517, 119, 115, 115)]
    assert detector.search_tracks(gray, [predicted], exact=[False]) == exact


def window_overlaps(box, others, margin: float) -> bool:
    """Whether a window of ``margin`` face sizes around ``box`` overlaps any of ``others``."""
    x, y, w, h = box
    pad = margin * max(w, h)
    x0, y0, x1, y1 = x - pad, y - pad, x + w + pad, y + h + pad
    return any(o[0] < x1 and o[0] + o[2] > x0 and o[1] < y1 and o[1] + o[3] > y0 for o in others)


def test_a_clear_window_alone_takes_the_coarser_step_and_still_boxes_its_face():
    """A clear label's window that holds no other face is searched with ``ALONE_WINDOW_SCALE_FACTOR``'s
    pyramid (half the levels): its box changes by Haar's noise only, never off its face. A window that holds a
    neighbour (the 20-face crowd) keeps the reference's step, which separates the two faces' hits."""
    config = DetectConfig()
    detector = FaceDetector(config)
    cascade = reference_detector()
    compared = changed = 0
    for frame in read_frames("four-faces")[::15]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = cascade.detectMultiScale(
            gray, config.scale_factor, config.min_neighbors, minSize=(config.min_size_px,) * 2
        )
        boxes = [tuple(int(v) for v in box) for box in found]
        for box in boxes:
            if window_overlaps(box, [b for b in boxes if b != box], config.track_window_frac):
                continue
            coarse = detector.search_tracks(gray, [box], exact=[False])
            fine = detector.search_tracks(gray, [box], exact=[False], coarse=False)
            assert max(iou(box, b) for b in coarse) >= 0.7, (box, coarse)
            compared += 1
            changed += coarse != fine
    assert compared >= 30
    assert changed >= compared // 4, f"the coarser step changed {changed} of {compared} boxes"
    capture = cv2.VideoCapture(str(SAMPLES / "scenes" / "crowd-20.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    boxes = [tuple(int(v) for v in box) for box in cascade.detectMultiScale(gray, 1.1, 5, minSize=(48, 48))]
    shared = [b for b in boxes if window_overlaps(b, [o for o in boxes if o != b], config.track_window_frac)]
    assert len(shared) >= 10
    searched = detector.search_tracks(gray, shared, exact=[False] * len(shared))
    assert searched == detector.search_tracks(gray, shared, exact=[False] * len(shared), coarse=False)


def test_the_coarser_step_is_never_finer_than_detect_scale_factor(monkeypatch):
    """A lone clear window's step ``ALONE_WINDOW_SCALE_FACTOR`` (1.2) is meant to be coarser than
    ``detect.scale_factor``; with a coarser ``detect.scale_factor`` (1.3, set to save CPU) it searched that
    window more finely than the user asked."""
    detector = FaceDetector(DetectConfig(scale_factor=1.3))
    steps: list[float] = []
    search = detector._search

    def spy(gray, min_size, max_size, second, scale_factor):
        steps.append(scale_factor)
        return search(gray, min_size, max_size, second, scale_factor)

    monkeypatch.setattr(detector, "_search", spy)
    gray = cv2.cvtColor(read_frames("one-face")[30], cv2.COLOR_BGR2GRAY)
    (box,) = [
        tuple(int(v) for v in b)
        for b in reference_detector().detectMultiScale(gray, 1.1, 5, minSize=(48, 48))
    ]
    detector.search_tracks(gray, [box], exact=[False])
    assert steps and min(steps) >= 1.3, steps


def test_only_a_track_near_a_class_boundary_is_searched_for_the_reference_box(classifier):
    """The costly exact box (``TRACK_HIT_RANGE``'s levels across the frame) is paid only where a few pixels
    of box could change the label: a confirmed track whose two best smoothed scores are closer than
    ``EXACT_BOX_SCORE_MARGIN``. A clear label's window gives its own box, which moves with the window."""
    frames = read_frames("one-face")[:144]
    cascade = reference_detector()
    config = DetectConfig()
    # Scores whose two best are 0.05 apart: the label sits on the happy/neutral boundary.
    near = np.array([0.05, 0.0, 0.05, 0.45, 0.0, 0.05, 0.4], np.float32)
    boxes: dict[bool, list[list]] = {}
    for boundary in (False, True):
        pipeline = Pipeline(FaceDetector(config), classifier, FaceTracker(TrackConfig(), classifier.labels))
        boxes[boundary] = []
        for index, image in enumerate(frames):
            if boundary:
                for track in pipeline.tracker.tracks:
                    track.scores = near.copy()
            gray, scale = make_lores(image, config.lores_width_px(image.shape[1]))
            boxes[boundary].append(pipeline.process(Frame(index, index / 15, image, gray, scale)).boxes)
        margins = [track.score_margin for track in pipeline.tracker.tracks]
        assert len(margins) == 1 and (margins[0] < EXACT_BOX_SCORE_MARGIN) == boundary
    # With one confirmed track the schedule searches the track windows on frames 3, 8, 13, ... of each 5.
    compared, same = 0, {False: 0, True: 0}
    for index in range(23, len(frames), 5):
        gray = cv2.cvtColor(frames[index], cv2.COLOR_BGR2GRAY)
        reference = [
            tuple(int(v) for v in box)
            for box in cascade.detectMultiScale(
                gray, config.scale_factor, config.min_neighbors, minSize=(config.min_size_px,) * 2
            )
        ]
        if len(reference) == 1:
            compared += 1
            for boundary in (False, True):
                same[boundary] += boxes[boundary][index] == reference
    print(
        f"{compared} track searches; the reference's box: near a boundary {same[True]}, clear {same[False]}"
    )
    assert compared >= 20
    # Near a boundary: the reference's box, even where the track's size, from the small image, is 8 % over the
    # face's (frame 93: the 109 px face's cluster holds hits of 68 px, which TRACK_HIT_RANGE's 0.6 of 118 px
    # left out; 0.55 takes them).
    assert same[True] == compared
    assert same[False] <= compared // 2


def test_the_whole_frame_searches_take_turns_and_the_second_cascade_can_be_turned_off():
    """With nothing to follow every frame is a whole-frame search: usual, second cascade, usual, wider;
    with detect.second_cascade off, usual and wider."""
    from device.vision.schedule import Search, SearchSchedule

    def turns(config: DetectConfig) -> list[Search]:
        schedule = SearchSchedule(config)
        return [schedule.next(has_tracks=False, may_coast=False) for _ in range(8)]

    usual, second, wider = Search.FULL, Search.FULL_SECOND, Search.FULL_WIDER
    assert turns(DetectConfig()) == [usual, second, usual, wider] * 2
    assert turns(DetectConfig(second_cascade=False)) == [usual, wider] * 4
