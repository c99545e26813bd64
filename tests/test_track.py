"""FaceTracker: stable ids through a crossing, a missed detection, and a face leaving and returning."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import TrackConfig
from device.vision.pipeline import keeps
from device.vision.track import FaceTracker, Track

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FPS = 15.0


def one_hot(label: str, weight: float = 0.9) -> np.ndarray:
    scores = np.full(len(LABELS), (1 - weight) / (len(LABELS) - 1), np.float32)
    scores[LABELS.index(label)] = weight
    return scores


def run(tracker: FaceTracker, frames: list[list[tuple[tuple[int, int, int, int], str]]], start: int = 0):
    """Feed frames of (box, label) detections; return all events and the ids seen per frame."""
    events, ids = [], []
    for offset, detections in enumerate(frames):
        index = start + offset
        boxes = [box for box, _ in detections]
        scores = np.stack([one_hot(label) for _, label in detections]) if detections else np.zeros((0, 7))
        events += tracker.update(boxes, scores, index / FPS)
        ids.append({t.face_id: t.box for t in tracker.tracks})
    return events, ids


def test_new_then_end_after_timeout():
    tracker = FaceTracker(TrackConfig(confirm_frames=3, lost_after_s=0.5), LABELS)
    frames = [[((100 + 4 * i, 100, 80, 80), "happy")] for i in range(10)] + [[]] * 10
    events, _ = run(tracker, frames)
    assert [e.kind for e in events] == ["new", "end"]
    assert events[0].emotion == "happy"
    assert events[0].track.face_id == events[1].track.face_id


def test_unconfirmed_flicker_emits_nothing():
    tracker = FaceTracker(TrackConfig(confirm_frames=3, lost_after_s=0.2), LABELS)
    events, _ = run(tracker, [[((10, 10, 50, 50), "sad")], [], [], [], [], []])
    assert events == []


def test_ids_stable_through_a_crossing():
    """Two faces move towards each other, overlap and pass: each keeps its id on its own side."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2, lost_after_s=0.5), LABELS)
    frames = []
    for i in range(40):
        left = (60 + 12 * i, 200, 90, 90)  # moving right
        right = (540 - 12 * i, 210, 90, 90)  # moving left
        frames.append([(left, "happy"), (right, "angry")])
    _, ids = run(tracker, frames)
    first, last = ids[2], ids[-1]
    assert len(first) == len(last) == 2
    left_id = min(first, key=lambda k: first[k][0])
    right_id = max(first, key=lambda k: first[k][0])
    # After crossing the face that started on the left is on the right, with the same id.
    assert last[left_id][0] > last[right_id][0]
    assert set(last) == {left_id, right_id}


def test_missed_detections_keep_the_id():
    tracker = FaceTracker(TrackConfig(confirm_frames=2, lost_after_s=0.5), LABELS)
    frames = []
    for i in range(20):
        frames.append([] if i in (8, 9, 10) else [((100 + 5 * i, 120, 80, 80), "neutral")])
    events, ids = run(tracker, frames)
    assert [e.kind for e in events] == ["new"]
    assert len({face_id for frame in ids for face_id in frame}) == 1


def test_a_face_that_pauses_behind_a_pillar_and_comes_out_keeps_its_id():
    """It walks right, is hidden for 1.7 s (it paused behind the pillar part of that time) and comes out
    two face sizes on: far from where it was and far behind where its speed would have taken it, but on
    the way there."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
    walking = [[((100 + 12 * i, 200, 80, 80), "happy")] for i in range(15)]  # last seen at x = 268
    out = [[((430 + 6 * i, 204, 80, 80), "happy")] for i in range(10)]
    events, ids = run(tracker, walking + [[]] * 25 + out)
    assert [e.kind for e in events] == ["new"]
    assert len({face_id for frame in ids for face_id in frame}) == 1


def test_a_hidden_track_does_not_take_a_face_of_another_size_by_overlap():
    """A face of 88 px walks left behind a pillar as a 120 px face comes out from behind it, right where
    the first was heading: that is a new face, not the first one grown by a third in 0.2 s."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
    walking = [[((1197 - 10 * i, 702, 88, 88), "neutral")] for i in range(10)]  # last seen at x = 1107
    events, ids = run(tracker, walking + [[], []])
    events += tracker.update([(1073, 664, 120, 120)], [one_hot("happy")], 12 / FPS)
    assert [e.kind for e in events] == ["new"]
    assert sorted(t.face_id for t in tracker.tracks) == [1, 2]
    assert next(t for t in tracker.tracks if t.face_id == 2).box == (1073, 664, 120, 120)


def test_a_hidden_track_does_not_take_a_face_29_percent_larger():
    """hd1080-walk's crossing as Haar boxed it: the 80 px face's boxes are 86-96 px (side 90), the 120 px
    face coming out where it was heading is boxed 116 px: 1.29x, which the 1.3 ratio let the hidden track
    take (an ID switch at 1080p while the whole-frame searches alternated between the two cascades).

    The price: a face that grows more than 1.25x while hidden (walking towards the camera behind a pillar)
    comes back as a new face; see the next test for what is kept."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
    sides = [86, 96, 88, 88, 86, 96, 88, 86, 96, 88]
    walking = [[((1197 - 10 * i, 702, side, side), "neutral")] for i, side in enumerate(sides)]
    events, ids = run(tracker, walking + [[], []])
    events += tracker.update([(1076, 666, 116, 116)], [one_hot("happy")], 12 / FPS)
    assert [e.kind for e in events] == ["new"]
    assert sorted(t.face_id for t in tracker.tracks) == [1, 2]


def test_a_face_that_grows_a_fifth_while_hidden_keeps_its_id():
    """Walking towards the camera behind a pillar, an 80 px face comes out 96 px wide on its way: it is the
    same face (within REACQUIRE_SIZE_RATIO, 1.25)."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
    walking = [[((100 + 12 * i, 200, 80, 80), "happy")] for i in range(15)]  # last seen at x = 268
    out = [[((420 + 6 * i, 196, 96, 96), "happy")] for i in range(5)]
    events, ids = run(tracker, walking + [[]] * 15 + out)
    assert [e.kind for e in events] == ["new"]
    assert len({face_id for frame in ids for face_id in frame}) == 1


def test_a_hidden_track_takes_back_its_own_face_by_overlap():
    tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
    walking = [[((1197 - 10 * i, 702, 88, 88), "neutral")] for i in range(10)]
    run(tracker, walking + [[], []])
    tracker.update([(1080, 700, 96, 96)], [None], 12 / FPS)
    assert [(t.face_id, t.box) for t in tracker.tracks] == [(1, (1080, 700, 96, 96))]


def test_of_two_faces_on_a_lost_tracks_way_the_one_where_it_was_heading_takes_its_id():
    """A is hidden 1.9 s and comes out on its way, 70 px short of where its speed would put it; in the same
    frame B appears on that way too, just past where A was last seen. In either order of the boxes A keeps
    its id."""
    for b_first in (False, True):
        tracker = FaceTracker(TrackConfig(confirm_frames=2), LABELS)
        walking = [[((100 + 10 * i, 200, 80, 80), "happy")] for i in range(15)]  # last seen at x = 240
        run(tracker, walking + [[]] * 27)
        a, b = (450, 200, 80, 80), (322, 200, 80, 80)  # predicted at frame 42: x = 240 + 28 x 10 = 520
        boxes = [b, a] if b_first else [a, b]
        tracker.update(boxes, [one_hot("happy"), one_hot("sad")], 42 / FPS)
        assert [t.box for t in tracker.tracks if t.face_id == 1] == [a], b_first


def test_a_track_from_a_zero_sized_box_does_not_crash_when_missed():
    tracker = FaceTracker(TrackConfig(confirm_frames=1), LABELS)
    run(tracker, [[((100, 100, 0, 0), "happy")], []])
    tracker.update([(101, 100, 40, 40)], [one_hot("happy")], 2 / FPS)
    assert len(tracker.tracks) == 2


def test_leaving_and_returning_gets_a_new_id():
    tracker = FaceTracker(TrackConfig(confirm_frames=2, lost_after_s=0.5), LABELS)
    visible = [[((200, 200, 80, 80), "surprise")]] * 10
    events, _ = run(tracker, visible + [[]] * 15 + visible)
    kinds = [(e.kind, e.track.face_id) for e in events]
    assert kinds == [("new", 1), ("end", 1), ("new", 2)]
    assert [(e.kind, e.track.face_id) for e in tracker.finish()] == [("end", 2)]


def test_smoothing_turns_label_after_a_few_frames_and_sends_update():
    tracker = FaceTracker(TrackConfig(confirm_frames=2, smoothing=0.3, heartbeat_s=0), LABELS)
    frames = [[((100, 100, 80, 80), "neutral")]] * 6 + [[((100, 100, 80, 80), "happy")]] * 8
    events, _ = run(tracker, frames)
    updates = [e for e in events if e.kind == "update"]
    assert [e.emotion for e in updates] == ["happy"]
    # One noisy frame does not flip the label: the EMA needs a couple of frames.
    assert events.index(updates[0]) == 1
    assert updates[0].scores["happy"] > updates[0].scores["neutral"]


def test_heartbeat_repeats_an_unchanged_emotion():
    tracker = FaceTracker(TrackConfig(confirm_frames=1, heartbeat_s=1.0), LABELS)
    events, _ = run(tracker, [[((100, 100, 80, 80), "sad")]] * 35)  # 35 frames at 15 fps ≈ 2.3 s
    assert [e.kind for e in events] == ["new", "update", "update"]


def test_hysteresis_stops_two_close_scores_from_flickering():
    """Scores that swap the lead between sad and fear by a hair every few frames produce no updates."""
    tracker = FaceTracker(
        TrackConfig(confirm_frames=1, smoothing=0.5, heartbeat_s=0, hysteresis=0.08), LABELS
    )
    sad, fear = np.full(7, 0.07, np.float32), np.full(7, 0.07, np.float32)
    sad[[LABELS.index("sad"), LABELS.index("fear")]] = (0.31, 0.27)
    fear[[LABELS.index("sad"), LABELS.index("fear")]] = (0.27, 0.31)
    events = []
    for index in range(40):
        scores = (sad if (index // 3) % 2 == 0 else fear)[np.newaxis]
        events += tracker.update([(100, 100, 80, 80)], scores, index / FPS)
    assert [(e.kind, e.emotion) for e in events] == [("new", "sad")]


def test_coasting_moves_tracks_on_without_a_search():
    """On a frame with no search, the tracks found by the last one are shown at their predicted place."""
    tracker = FaceTracker(TrackConfig(confirm_frames=2, lost_after_s=0.5), LABELS)
    for index in range(4):  # moving right at 10 px a frame
        tracker.update([(100 + 10 * index, 100, 80, 80)], one_hot("happy")[np.newaxis], index / FPS)
    assert tracker.all_confirmed
    assert tracker.coast(4 / FPS) == []
    (track,) = tracker.tracks
    assert track.shown_s == 4 / FPS
    x, y, w, h = track.shown_box
    assert 130 < x <= 140 and (y, w, h) == (100, 80, 80)  # moved on by its smoothed velocity
    assert track.box == (130, 100, 80, 80)  # the last detection is kept for association
    # A face not found by the last search is not shown while coasting, and ends after lost_after_s.
    tracker.update([], np.zeros((0, 7)), 5 / FPS)
    tracker.coast(6 / FPS)
    assert track.shown_s == 4 / FPS
    assert [e.kind for e in tracker.coast(14 / FPS)] == ["end"]


def test_a_box_without_scores_moves_its_track_and_keeps_its_scores():
    """A whole-frame search classifies only new faces: the others move their tracks without a reading."""
    tracker = FaceTracker(TrackConfig(confirm_frames=1), LABELS)
    tracker.update([(100, 100, 80, 80)], one_hot("happy")[np.newaxis], 0.0)
    (track,) = tracker.tracks
    scores = track.scores.copy()
    boxes = [(104, 100, 80, 80), (400, 300, 80, 80)]
    owners = tracker.owners(boxes, 1 / FPS)
    assert owners[0] is track and owners[1] is None
    tracker.update(boxes, [None, one_hot("sad")], 1 / FPS)
    assert track.box == (104, 100, 80, 80) and track.hits == 2
    np.testing.assert_array_equal(track.scores, scores)
    assert [t.emotion for t in tracker.tracks] == ["happy", "sad"]
    with pytest.raises(ValueError, match="not classified"):
        tracker.update([(600, 20, 40, 40)], [None], 2 / FPS)
    assert len(tracker.tracks) == 2 and track.last_seen_s == 1 / FPS  # refused whole, nothing changed


def test_a_box_the_verifier_rejects_never_takes_back_a_lost_track():
    """An announced track keeps a box that fails the verifier once, but a lost one (the last search
    missed it) is never taken back by a rejected box: a false face on its way does not become it."""
    track = Track(1, (100, 100, 80, 80), one_hot("happy"), 0.0, 0.0, confirmed=True, failed_checks=1)
    assert keeps(track, passed=False, missed=False)
    assert not keeps(track, passed=False, missed=True)
    assert keeps(track, passed=True, missed=True)
    unannounced = Track(2, (300, 100, 80, 80), one_hot("happy"), 0.0, 0.0, failed_checks=1)
    assert not keeps(unannounced, passed=False, missed=False)


def test_faces_found_together_are_numbered_in_reading_order_whatever_the_detectors_order():
    """OpenCV's threads hand the boxes of one frame over in an order that changes from run to run: the
    four-face clip's first two faces swapped ids between runs of the same file."""
    faces = [((511, 201, 103, 103), "surprise"), ((23, 26, 104, 104), "happy"), ((23, 349, 97, 97), "sad")]
    numbered = []
    for order in (faces, faces[::-1], faces[1:] + faces[:1]):
        tracker = FaceTracker(TrackConfig(confirm_frames=1), LABELS)
        _, ids = run(tracker, [order])
        numbered.append({face_id: box for face_id, box in ids[0].items()})
    assert numbered[0] == numbered[1] == numbered[2], numbered
    assert numbered[0] == {1: (23, 26, 104, 104), 2: (511, 201, 103, 103), 3: (23, 349, 97, 97)}
