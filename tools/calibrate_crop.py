"""Measure how the Haar detector's box relates to FER2013's framing and write models/crop.json."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.console import print_err, print_out
from device.vision.detect import Box, iou
from device.vision.preprocess import CropSpec, crop_box
from tools.groundtruth import detect_reference, reference_detector
from tools.make_sample_video import paste_face, smooth_background

SIZES_PX = (96, 144)


def measure(
    gray_face: np.ndarray,
    size_px: int,
    cascade: cv2.CascadeClassifier,
    rng: np.random.Generator,
) -> tuple[float, float, float, Box, Box] | None:
    """Paste one face at ``size_px`` on a smooth canvas and detect it.

    Returns ``(margin, off_x, off_y, detected box, pasted square)``, or ``None`` unless exactly one
    detection overlaps the pasted square.
    """
    canvas_px = size_px * 2
    bgr = smooth_background(canvas_px, canvas_px, rng)
    x = int(rng.integers(size_px // 4, canvas_px - size_px - size_px // 4 + 1))
    y = int(rng.integers(size_px // 4, canvas_px - size_px - size_px // 4 + 1))
    face = cv2.resize(gray_face, (size_px, size_px), interpolation=cv2.INTER_CUBIC)
    paste_face(bgr, face, x, y)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    truth = (x, y, size_px, size_px)
    dets = [d for d in detect_reference(cascade, gray) if iou(d, truth) > 0.3]
    if len(dets) != 1:
        return None
    dx, dy, dw, dh = dets[0]
    margin = (size_px / max(dw, dh) - 1.0) / 2.0
    off_x = ((x + size_px / 2.0) - (dx + dw / 2.0)) / dw
    off_y = ((y + size_px / 2.0) - (dy + dh / 2.0)) / dh
    return margin, off_x, off_y, dets[0], truth


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, write the JSON and print a summary."""
    parser = argparse.ArgumentParser(prog="python -m tools.calibrate_crop", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--out", type=Path, default=Path("models/crop.json"))
    parser.add_argument(
        "--faces", type=int, default=1000, help="Training faces to sample (each pasted at every size)"
    )
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    files = sorted((args.data / "train").glob("*/Training_*.jpg"))
    if not files:
        print_err(f"calibrate_crop: no Training_*.jpg under {args.data / 'train'}; pass --data")
        return 1
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(files), size=min(args.faces, len(files)), replace=False)
    cascade = reference_detector()
    started = time.monotonic()
    rows = []
    tried = 0
    for index in picks:
        gray_face = cv2.imread(str(files[index]), cv2.IMREAD_GRAYSCALE)
        if gray_face is None:
            continue
        for size_px in SIZES_PX:
            tried += 1
            found = measure(gray_face, size_px, cascade, rng)
            if found is not None:
                rows.append(found)
    if not rows:
        print_err("calibrate_crop: the detector found no face; check the cascade and data")
        return 1
    margin = float(np.median([r[0] for r in rows]))
    off_x = float(np.median([r[1] for r in rows]))
    off_y = float(np.median([r[2] for r in rows]))
    spec = CropSpec(margin_frac=margin, offset_x_frac=off_x, offset_y_frac=off_y)
    before = [iou(r[3], r[4]) for r in rows]
    after = [iou(crop_box(r[3], spec), r[4]) for r in rows]
    result = {
        "margin_frac": round(margin, 4),
        "offset_x_frac": round(off_x, 4),
        "offset_y_frac": round(off_y, 4),
        "faces": tried,
        "images": len(picks),
        "detected": len(rows),
        "sizes_px": list(SIZES_PX),
        "median_iou_before": round(float(np.median(before)), 4),
        "median_iou_after": round(float(np.median(after)), 4),
        "detector": {
            "cascade": "haarcascade_frontalface_default.xml",
            "scale_factor": 1.1,
            "min_neighbors": 5,
            "min_size_px": 40,
        },
        "data": "FER2013 Training, seeded sample",
        "seed": args.seed,
        "command": shlex.join(
            ["python", "-m", "tools.calibrate_crop", *(sys.argv[1:] if argv is None else argv)]
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_out(
        f"calibrate_crop: {len(rows)}/{tried} pastes detected in {time.monotonic() - started:.0f} s; "
        f"margin_frac={margin:.4f} offset_x_frac={off_x:.4f} offset_y_frac={off_y:.4f}; "
        f"median IoU {result['median_iou_before']} -> {result['median_iou_after']}; wrote {args.out}",
        "calibrate_crop",
    )  # a summary of the file written: a reader gone leaves the status 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
