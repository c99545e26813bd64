"""Scores for the scene clips: detection by face size, identity (py-motmetrics), false and late tracks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import motmetrics as mm
import numpy as np

from device.vision.detect import Box, iou
from tools.groundtruth import GroundTruth, clip_box, match_pairs, to_fer_box

SIZE_BANDS = ((48, 72), (72, 110), (110, 160), (160, 10_000))  # face side in pixels, [low, high)
MIN_IOU = 0.5

Shown = Sequence[tuple[int, Box]]  # one frame's announced tracks: (face_id, detector box)


class IdentityScores(TypedDict):
    """What ``identity`` returns (a plain dict: the benchmark writes it into its JSON report)."""

    id_switches: int
    fragmentations: int
    idf1: float
    mota: float
    face_frames: int
    announced: int
    false_tracks: int
    false_tracks_per_min: float
    new_delay_s: list[float | None]  # per face in id order; None: no track ever covered it


def band_of(side: float) -> str:
    """The size band a face of ``side`` pixels falls in (smaller ones count in the first)."""
    for low, high in SIZE_BANDS:
        if side < high:
            return band_name(low, high)
    return band_name(*SIZE_BANDS[-1])


def band_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 10_000 else f"{low}-{high - 1}"


def _fer(boxes: Sequence[Box], truth: GroundTruth, calibration: tuple[float, float, float]) -> list[Box]:
    return [clip_box(to_fer_box(b, *calibration), truth.width, truth.height) for b in boxes]


def _on_partial(box: Box, partial: list[Box]) -> bool:
    return any(iou(box, p) >= MIN_IOU / 2 for p in partial)


def score_by_size(
    detections: Sequence[Sequence[Box] | None], truth: GroundTruth, calibration: tuple[float, float, float]
) -> dict[str, dict[str, float]]:
    """Recall and precision (IoU >= 0.5 in FER framing) per face-size band, and over all sizes (``all``).

    A missed face counts in its own band, a false box in the band of its own size; boxes on faces less
    than 70 % visible are ignored, as in ``tools.groundtruth.score_video``.
    """
    tally: dict[str, list[int]] = {band_name(*b): [0, 0, 0] for b in SIZE_BANDS}  # tp, fp, fn
    for index, dets in enumerate(detections):
        if dets is None:
            continue
        mapped = _fer(dets, truth, calibration)
        faces = truth.boxes(index)
        pairs = match_pairs(mapped, faces, MIN_IOU)
        hit_d, hit_t = {i for i, _ in pairs}, {j for _, j in pairs}
        for j, box in enumerate(faces):
            tally[band_of(max(box[2:]))][0 if j in hit_t else 2] += 1
        for i, box in enumerate(mapped):
            if i not in hit_d and not _on_partial(box, truth.partial_boxes(index)):
                tally[band_of(max(box[2:]))][1] += 1
    tally["all"] = [sum(v[k] for v in tally.values()) for k in range(3)]
    return {
        band: {
            "faces": tp + fn,
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "false_pos": fp,
        }
        for band, (tp, fp, fn) in tally.items()
    }


def identity(
    shown: Sequence[Shown], truth: GroundTruth, calibration: tuple[float, float, float]
) -> IdentityScores:
    """ID switches, fragmentations and IDF1 of the announced tracks (py-motmetrics), plus per-face figures.

    Hypotheses are the confirmed tracks as the screen shows them, mapped to FER framing; a track on a face
    less than 70 % visible is left out of that frame (neither a hit nor a false one). Also returns
    ``announced`` (tracks ever shown), ``false_tracks`` (announced tracks that never lay on a face, counted or
    partial) and ``new_delay_s`` per face (first frame a track covers it minus its first counted frame).

    An empty run (``shown`` holds no frame) scores as py-motmetrics scores it: counts of 0, NaN for ``idf1``
    and ``mota``, and NaN ``false_tracks_per_min`` (no minute was shown), as ``score_by_size`` gives NaN
    for a band without faces; each face's ``new_delay_s`` is None.
    """
    acc = mm.MOTAccumulator(auto_id=True)
    on_face: dict[int, bool] = {}
    first_cover: dict[int, int] = {}
    for index, tracks in enumerate(shown):
        faces = truth.frames[index]
        partial = truth.partial_boxes(index)
        boxes = _fer([box for _, box in tracks], truth, calibration)
        gt = [face.box for face in faces]
        keep = []
        for (face_id, _), box in zip(tracks, boxes, strict=True):
            hits = any(iou(box, g) >= MIN_IOU for g in gt)
            on_face[face_id] = on_face.get(face_id, False) or hits or _on_partial(box, partial)
            if hits or not _on_partial(box, partial):
                keep.append((face_id, box))
        distance = np.full((len(gt), len(keep)), np.nan)
        for j, g in enumerate(gt):
            for k, (_, box) in enumerate(keep):
                value = iou(g, box)
                if value >= MIN_IOU:
                    distance[j, k] = 1.0 - value
        acc.update([face.id for face in faces], [face_id for face_id, _ in keep], distance)
        for j, _k in match_pairs(gt, [box for _, box in keep], MIN_IOU):
            first_cover.setdefault(faces[j].id, index)
    summary = mm.metrics.create().compute(
        acc, metrics=["num_switches", "num_fragmentations", "idf1", "num_objects", "mota"], name="clip"
    )
    row = summary.loc["clip"]
    delays = {
        face_id: (first_cover[face_id] - first) / truth.fps if face_id in first_cover else None
        for face_id, (first, _last) in truth.faces.items()
    }
    false_tracks = sum(not hit for hit in on_face.values())
    minutes = len(shown) / truth.fps / 60.0
    return {
        "id_switches": int(row["num_switches"]),
        "fragmentations": int(row["num_fragmentations"]),
        "idf1": float(row["idf1"]),
        "mota": float(row["mota"]),
        "face_frames": int(row["num_objects"]),
        "announced": len(on_face),
        "false_tracks": false_tracks,
        "false_tracks_per_min": false_tracks / minutes if minutes else float("nan"),
        "new_delay_s": [delays[k] for k in sorted(delays)],
    }
