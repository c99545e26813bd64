"""The benchmark's scene clips: their ground truth loads and agrees with the video files."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tools.groundtruth import load_truth

SCENES = Path(__file__).resolve().parent.parent / "samples" / "scenes"


@pytest.mark.parametrize("name", ["hd720-walk", "hd1080-walk", "clutter", "crowd-20"])
def test_scene_truth_matches_its_clip(name):
    truth = load_truth(SCENES / f"{name}.json")
    capture = cv2.VideoCapture(str(SCENES / f"{name}.mp4"))
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == truth.frame_count
        assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
            truth.width,
            truth.height,
        )
    finally:
        capture.release()
    assert (SCENES / f"{name}.mp4").stat().st_size < 1_500_000
    for faces in truth.frames:
        for face in faces:
            x, y, w, h = face.box
            assert x >= 0 and y >= 0 and x + w <= truth.width and y + h <= truth.height
    if name == "clutter":
        assert truth.faces == {} and not any(truth.frames)
    if name == "crowd-20":
        assert max(len(faces) for faces in truth.frames) == 20
