"""tools.verifier_weights on real frames and a photograph: the verifier's own weights, counts that add up."""

from __future__ import annotations

import cv2
import pytest

from device.config import DetectConfig
from device.vision.detect import FaceDetector, FaceVerifier
from tools.bench import ROOT, video_path
from tools.groundtruth import load_calibration
from tools.verifier_weights import (
    FACE,
    FALSE,
    MIN_NEIGHBORS,
    frames,
    main,
    scaled_photo,
    table,
    weigh_clip,
    weigh_photos,
)

FRAMES = 4  # of the one-face clip: its face is in each


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DetectConfig(min_neighbors=MIN_NEIGHBORS))


def test_each_clip_box_carries_the_verifiers_weight_and_the_face_is_found(detector):
    weighed = weigh_clip(
        "one-face", detector, FaceVerifier(), load_calibration(ROOT / "models" / "crop.json"), FRAMES
    )
    grays = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in frames(video_path("one-face"), FRAMES)]
    verifier = FaceVerifier()
    assert [w.weight for w in weighed] == [verifier.weight(grays[int(w.image)], w.box) for w in weighed]
    assert sorted({int(w.image) for w in weighed if w.kind == FACE}) == list(range(FRAMES))
    assert all(w.weight > 0 for w in weighed if w.kind == FACE)


def test_boxes_on_a_face_free_photograph_are_all_false_hits_with_the_verifiers_weight(detector):
    weighed = weigh_photos(["coins"], [1.5], detector, FaceVerifier())
    assert weighed, "Haar no longer boxes a coin at 1.5x: pick another photograph or scale"
    assert {w.kind for w in weighed} == {FALSE}
    gray = cv2.cvtColor(scaled_photo("coins", 1.5), cv2.COLOR_BGR2GRAY)
    verifier = FaceVerifier()
    assert [w.weight for w in weighed] == [verifier.weight(gray, w.box) for w in weighed]


def test_the_tables_counts_add_up(detector):
    weighed = weigh_clip(
        "one-face", detector, FaceVerifier(), load_calibration(ROOT / "models" / "crop.json"), FRAMES
    ) + weigh_photos(["coins"], [1.5], detector, FaceVerifier())
    threshold = 54.0
    *rows, total = table(weighed, threshold, ["one-face", "photographs"])
    assert [row.source for row in rows] == ["one-face", "photographs"]
    for row in [*rows, total]:
        assert row.boxes == row.faces + row.false + row.ignored
    assert total.boxes == len(weighed) == sum(row.boxes for row in rows)
    assert total.max_false == max(w.weight for w in weighed if w.kind == FALSE)
    assert total.false_passing == sum(w.weight >= threshold for w in weighed if w.kind == FALSE)
    assert total.faces_below == sum(w.weight < threshold for w in weighed if w.kind == FACE)


def test_the_command_prints_one_row_per_source_and_the_margin(capsys):
    assert main(["--clips", "one-face", "--frames", "2", "--photos", "coins", "--scales", "1.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["one-face", "photographs", "all"]
    assert lines[4].startswith("margin: threshold 55.6 - highest false hit ")


def test_a_source_with_no_box_keeps_its_row_and_no_false_hit_is_said(capsys):
    """The coins at 1x give Haar no box: their row was left out, and the margin read "highest false hit 0.000
    = +55.600" as if a false hit weighed 0."""
    assert main(["--clips", "one-face", "--frames", "2", "--photos", "coins", "--scales", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["false>=55.6", "faces<55.6"]  # the threshold's columns, once
    assert lines[2].split()[:2] == ["photographs", "0"]
    assert lines[4] == "margin: no false hit among the 2 boxes, so none for a threshold to stop"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--scales", "0"], "--scales: expected a size above 0 and at most 4, got 0"),
        (["--scales", "100"], "--scales: expected a size above 0 and at most 4, got 100"),
        (["--frames", "0"], "--frames: expected a whole number >= 1, got 0"),
        (["--threshold", "nan"], "--threshold: expected a finite number, got nan"),
        (["--clips", "--photos"], "--clips, --photos: nothing to weigh"),
    ],
)
def test_bad_arguments_are_one_error_exit_2(flags, expected, capsys):
    """--scales 0 ended in an OpenCV assertion traceback, --frames 0 weighed nothing in silence, and
    --threshold nan printed a margin of +nan."""
    with pytest.raises(SystemExit) as stop:
        main(flags)
    assert stop.value.code == 2
    assert expected in capsys.readouterr().err
