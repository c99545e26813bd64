"""Weigh Haar's boxes with the face verifier: hits on faces against false hits, to check VERIFY_MIN_WEIGHT.

    python -m tools.verifier_weights                       # every sample and scene clip, 18 photographs x 5
    python -m tools.verifier_weights --clips one-face --photos coins moon --scales 1 --threshold 55.2

Haar is the daemon's whole-frame search (``FaceDetector.scan`` on the detection image that
``DetectConfig.lores_width_px`` sizes, default config) at ``min_neighbors`` 3, two below the daemon's 5, so
that the weak boxes a threshold must also stop are counted. On each frame of a clip its boxes are split by the
clip's ground truth (``tools.groundtruth``; boxes mapped to FER2013's framing with ``models/crop.json``): a
face hit matches a counted face one to one at IoU >= 0.5 (``match_pairs``), a false hit overlaps no face,
counted or partly hidden, at all; the rest (a loose box on a face, a box on a hidden one) are ignored. Every
box on scikit-image's face-free photographs (bundled with it: nothing is downloaded), each scaled by each of
``--scales``, is a false hit. Each box is weighed by ``FaceVerifier.weight``, the verifier's own score.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.config import DetectConfig
from device.console import print_out
from device.const import VERIFY_MIN_WEIGHT
from device.sources.camera import make_lores
from device.vision.detect import Box, FaceDetector, FaceVerifier, iou
from tools.bench import ROOT, SCENES, VIDEOS, video_path
from tools.groundtruth import GroundTruth, clip_box, load_calibration, load_truth, match_pairs, to_fer_box
from tools.make_scene_clips import photo
from tools.scene_metrics import MIN_IOU

MIN_NEIGHBORS = 3  # Haar's boxes weighed: the daemon's detector, with two fewer neighbours than its 5
# scikit-image's bundled images with no face in them that make_scene_clips.photo reads (astronaut and camera
# show people; horse and shepp_logan_phantom are not 8-bit images; checkerboard and logo are drawings).
PHOTOGRAPHS = (
    "brick",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "stereo_motorcycle",
    "text",
)
SCALES = (1.0, 1.5, 2.0, 2.5, 3.0)  # each photograph is searched at these sizes (most are 300-600 px wide)
MAX_SCALE = 4.0  # a larger photograph (over 2,400 px) only makes the search slow
FACE, FALSE, IGNORED = "face", "false", "ignored"


@dataclass(frozen=True)
class Weighed:
    """One of Haar's boxes: where it was found, what it lies on (``FACE``, ``FALSE`` or ``IGNORED``) and
    the verifier's weight for it (``FaceVerifier.weight``: the best hit's level weight, 0.0 for none)."""

    source: str  # a clip's name, or "photographs"
    image: str  # the frame's index in the clip, or "<photograph> x<scale>"
    box: Box  # in the frame's (or the scaled photograph's) pixels
    kind: str
    weight: float


def haar_boxes(detector: FaceDetector, image_bgr: np.ndarray) -> list[Box]:
    """The boxes of the daemon's whole-frame search on ``image_bgr`` (main-frame pixels): ``scan`` on the
    detection image the camera path makes (``make_lores`` at ``DetectConfig.lores_width_px``)."""
    gray_lores, scale_to_main = make_lores(image_bgr, detector.config.lores_width_px(image_bgr.shape[1]))
    return detector.scan(gray_lores, scale_to_main).boxes


def kinds(
    boxes: Sequence[Box], truth: GroundTruth, index: int, calibration: tuple[float, float, float]
) -> list[str]:
    """What each box of frame ``index`` lies on: a counted face it matches one to one (IoU >= ``MIN_IOU``
    in FER2013's framing), no face at all (IoU 0 with every face, counted or partial), or neither."""
    mapped = [clip_box(to_fer_box(box, *calibration), truth.width, truth.height) for box in boxes]
    matched = {i for i, _ in match_pairs(mapped, truth.boxes(index), MIN_IOU)}
    faces = truth.boxes(index) + truth.partial_boxes(index)
    return [
        FACE if i in matched else FALSE if all(iou(box, face) == 0 for face in faces) else IGNORED
        for i, box in enumerate(mapped)
    ]


def frames(path: Path, count: int | None = None) -> Iterator[np.ndarray]:
    """The frames of a video in order (BGR), the first ``count`` of them when given."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open the video")
    try:
        index = 0
        while count is None or index < count:
            ok, image = capture.read()
            if not ok:
                return
            yield image
            index += 1
    finally:
        capture.release()


def weigh_clip(
    name: str,
    detector: FaceDetector,
    verifier: FaceVerifier,
    calibration: tuple[float, float, float],
    count: int | None = None,
) -> list[Weighed]:
    """Haar's boxes on each frame of a sample or scene clip (the first ``count``), split by its ground truth
    (``samples/<name>.json`` or ``samples/scenes/<name>.json``) and weighed."""
    path = video_path(name)
    truth = load_truth(path.with_suffix(".json"))
    weighed = []
    for index, image in enumerate(frames(path, count)):
        boxes = haar_boxes(detector, image)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for box, kind in zip(boxes, kinds(boxes, truth, index, calibration), strict=True):
            weighed.append(Weighed(name, str(index), box, kind, verifier.weight(gray, box)))
    return weighed


def scaled_photo(name: str, scale: float) -> np.ndarray:
    """scikit-image's photograph ``name`` (BGR), resized by ``scale`` (area-averaged when shrunk)."""
    image = photo(name)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)


def weigh_photos(
    names: Iterable[str], scales: Iterable[float], detector: FaceDetector, verifier: FaceVerifier
) -> list[Weighed]:
    """Haar's boxes on face-free photographs at each scale: all false hits, weighed."""
    weighed = []
    for name in names:
        for scale in scales:
            image = scaled_photo(name, scale)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            for box in haar_boxes(detector, image):
                weighed.append(
                    Weighed("photographs", f"{name} x{scale:g}", box, FALSE, verifier.weight(gray, box))
                )
    return weighed


@dataclass(frozen=True)
class Row:
    """One line of the table: a source's boxes by kind, and how their weights lie about the thresholds."""

    source: str
    boxes: int
    faces: int
    false: int
    ignored: int
    max_false: float  # the highest false hit's weight (0.0 when there is none)
    false_passing: int  # false hits that reach the threshold (the verifier would let them through)
    faces_below_const: int  # face hits under VERIFY_MIN_WEIGHT (the verifier would stop them)
    faces_below: int  # face hits under the threshold


def summarize(source: str, weighed: Sequence[Weighed], threshold: float) -> Row:
    """``weighed``'s counts and weights as one ``Row`` named ``source``, against ``threshold``."""
    faces = [w.weight for w in weighed if w.kind == FACE]
    false = [w.weight for w in weighed if w.kind == FALSE]
    return Row(
        source=source,
        boxes=len(weighed),
        faces=len(faces),
        false=len(false),
        ignored=sum(w.kind == IGNORED for w in weighed),
        max_false=max(false, default=0.0),
        false_passing=sum(weight >= threshold for weight in false),
        faces_below_const=sum(weight < VERIFY_MIN_WEIGHT for weight in faces),
        faces_below=sum(weight < threshold for weight in faces),
    )


def table(weighed: Sequence[Weighed], threshold: float, sources: Sequence[str]) -> list[Row]:
    """One ``Row`` per source of ``sources`` (a clip's name or "photographs"), in that order, one that gave
    no box too, then ``all``."""
    rows = [summarize(s, [w for w in weighed if w.source == s], threshold) for s in sources]
    return [*rows, summarize("all", weighed, threshold)]


def format_table(rows: Sequence[Row], threshold: float) -> str:
    """The table as text, with the margin: the threshold less the highest false hit's weight. The
    ``VERIFY_MIN_WEIGHT`` column is left out when ``threshold`` is that weight."""
    other = threshold != VERIFY_MIN_WEIGHT
    const_column = f" {'faces<' + format(VERIFY_MIN_WEIGHT, 'g'):>11}" if other else ""
    header = (
        f"{'source':<13} {'boxes':>6} {'faces':>6} {'false':>6} {'ignored':>7} {'max false':>9} "
        f"{'false>=' + format(threshold, 'g'):>12}{const_column} {'faces<' + format(threshold, 'g'):>11}"
    )
    lines = [header]
    for r in rows:
        const_value = f" {r.faces_below_const:>11}" if other else ""
        lines.append(
            f"{r.source:<13} {r.boxes:>6} {r.faces:>6} {r.false:>6} {r.ignored:>7} {r.max_false:>9.3f} "
            f"{r.false_passing:>12}{const_value} {r.faces_below:>11}"
        )
    total = rows[-1]
    if total.false == 0:
        lines.append(f"margin: no false hit among the {total.boxes} boxes, so none for a threshold to stop")
    else:
        const_margin = (
            f" (VERIFY_MIN_WEIGHT {VERIFY_MIN_WEIGHT:g}: {VERIFY_MIN_WEIGHT - total.max_false:+.3f})"
        )
        lines.append(
            f"margin: threshold {threshold:g} - highest false hit {total.max_false:.3f} = "
            f"{threshold - total.max_false:+.3f}{const_margin if other else ''}"
        )
    return "\n".join(lines)


def _at_least_one(text: str) -> int:
    """argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _scale(text: str) -> float:
    """argparse type: a photograph size above 0 and at most ``MAX_SCALE``."""
    value = float(text)
    if not 0 < value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(f"expected a size above 0 and at most {MAX_SCALE:g}, got {value:g}")
    return value


def _weight(text: str) -> float:
    """argparse type: a finite verifier weight."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, weigh Haar's boxes on the clips and photographs, print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.verifier_weights", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--clips", nargs="*", default=[*VIDEOS, *SCENES], choices=[*VIDEOS, *SCENES], help="clips to run"
    )
    parser.add_argument("--frames", type=_at_least_one, help="only the first FRAMES frames of each clip")
    parser.add_argument(
        "--photos",
        nargs="*",
        default=list(PHOTOGRAPHS),
        choices=PHOTOGRAPHS,
        help="face-free scikit-image photographs to search (default: all 18)",
    )
    parser.add_argument(
        "--scales",
        nargs="+",
        type=_scale,
        default=list(SCALES),
        help=f"photograph sizes, up to {MAX_SCALE:g}",
    )
    parser.add_argument(
        "--threshold",
        type=_weight,
        default=VERIFY_MIN_WEIGHT,
        help="a weight to compare with VERIFY_MIN_WEIGHT",
    )
    args = parser.parse_args(argv)
    if not args.clips and not args.photos:
        parser.error(
            "--clips, --photos: nothing to weigh; name a clip or a photograph, or leave them out for all"
        )
    started = time.perf_counter()
    detector = FaceDetector(DetectConfig(min_neighbors=MIN_NEIGHBORS))
    verifier = FaceVerifier()
    calibration = load_calibration(ROOT / "models" / "crop.json")
    weighed = [
        w for clip in args.clips for w in weigh_clip(clip, detector, verifier, calibration, args.frames)
    ]
    weighed += weigh_photos(args.photos, args.scales, detector, verifier)
    sources = [*args.clips, *(["photographs"] if args.photos else [])]
    lines = [format_table(table(weighed, args.threshold, sources), args.threshold)]
    lines.append(f"weighed in {time.perf_counter() - started:.0f} s")
    return print_out("\n".join(lines), "verifier_weights")  # the table is the result: 1 without it


if __name__ == "__main__":
    sys.exit(main())
