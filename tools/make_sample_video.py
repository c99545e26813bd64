"""Build the sample videos (real FER2013 PublicTest faces moving on a smooth background) and their truth."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.console import print_err, print_out
from device.vision.detect import iou
from tools.groundtruth import (
    clip_box,
    detect_reference,
    detect_video,
    load_calibration,
    load_truth,
    reference_detector,
    score_video,
)
from train.votes import Votes, VotesError, load_votes

WIDTH_PX = 640
HEIGHT_PX = 480
FPS = 15
MIN_VISIBLE_FRAC = 0.7
MIN_AGREEING_VOTES = 7  # of FER+'s 10 raters, for the FER2013 label of every face shown
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# --- rendering helpers (shared with tools.calibrate_crop) -------------------------------------------


def smooth_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth BGR background: a two-colour gradient, a few soft blobs and slight static noise."""
    c0 = rng.uniform(70, 190, 3)
    c1 = rng.uniform(70, 190, 3)
    angle = rng.uniform(0, 2 * math.pi)
    xx, yy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    t = (xx * math.cos(angle) + yy * math.sin(angle)) / (
        abs(math.cos(angle)) * width + abs(math.sin(angle)) * height
    )
    t = (t - float(t.min())) / max(float(t.max() - t.min()), 1e-6)
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    blobs: np.ndarray = np.zeros((height, width, 3), np.float32)  # then blurred, a cv2 result
    for _ in range(3):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 8, height // 3)))
        colour = tuple(float(v) for v in rng.uniform(-35, 35, 3))
        cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    sigma = max(width, height) / 12.0
    blobs = cv2.GaussianBlur(blobs, (0, 0), sigma)
    img = img + blobs + rng.normal(0, 2.0, (height, width, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _feather(size_px: int) -> np.ndarray:
    """Alpha mask of a pasted face: 1 inside, ramping to 0 over the outer ~8 % of each side."""
    ramp = max(2.0, 0.08 * size_px)
    d = np.arange(size_px, dtype=np.float32) + 0.5
    edge = np.minimum(d, size_px - d)
    one_d = np.clip(edge / ramp, 0.0, 1.0)
    alpha: np.ndarray = np.minimum(one_d[:, None], one_d[None, :])  # a ufunc's result is Any to mypy
    return alpha


def paste_face(bgr: np.ndarray, face_gray: np.ndarray, x: int, y: int, alpha: float = 1.0) -> None:
    """Blend a square gray face (already at its pasted size) into ``bgr`` at ``(x, y)``, clipped."""
    size = face_gray.shape[0]
    height, width = bgr.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + size, width), min(y + size, height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = _feather(size)[y0 - y : y1 - y, x0 - x : x1 - x, None] * alpha
    src = face_gray[y0 - y : y1 - y, x0 - x : x1 - x, None].astype(np.float32)
    dst = bgr[y0:y1, x0:x1].astype(np.float32)
    bgr[y0:y1, x0:x1] = np.clip(dst * (1 - mask) + src * mask + 0.5, 0, 255).astype(np.uint8)


# --- scenes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """One face of a scene: its images (class per image), path, size and expression schedule.

    ``path(t)`` gives the face's top-left corner and side in frame pixels at frame t; ``shown(t)``
    gives ``(index_a, index_b, weight_b)``, a cross-fade between two of ``faces``.
    """

    id: int
    faces: tuple[str, ...]  # FER2013 classes, one per image, chosen by the scene
    path: Callable[[int], tuple[float, float, float]]
    shown: Callable[[int], tuple[int, int, float]]
    frames: range


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * min(max(t, 0.0), 1.0)


def _smooth(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def _schedule(changes: list[tuple[int, int]]) -> Callable[[int], tuple[int, int, float]]:
    """Expression schedule: ``changes[k] = (start, end)`` of the cross-fade from image k to k+1."""

    def shown(t: int) -> tuple[int, int, float]:
        for k, (start, end) in enumerate(changes):
            if t < start:
                return (k, k, 0.0)
            if t < end:
                return (k, k + 1, _smooth((t - start) / (end - start)))
        return (len(changes), len(changes), 0.0)

    return shown


def one_face_scene() -> tuple[int, list[Actor]]:
    """One face drifting right, neutral → happy → surprise, then leaving by the right edge."""
    n = 180

    def path(t: int) -> tuple[float, float, float]:
        size = _lerp(120, 150, t / 130)
        x = _lerp(70, 400, t / 130) + 12 * math.sin(t / 14)
        y = 150 + 40 * math.sin(t / 30)
        if t > 130:  # leave quickly by the right edge
            x += (t - 130) ** 1.6 * 1.5
        return x, y, size

    actor = Actor(1, ("neutral", "happy", "surprise"), path, _schedule([(45, 60), (95, 110)]), range(0, 160))
    return n, [actor]


def four_faces_scene() -> tuple[int, list[Actor]]:
    """Four faces (two passing each other), one leaving by the right edge, a fifth entering midway."""
    n = 180
    still = _schedule([])

    def a1(t: int) -> tuple[float, float, float]:  # top lane, left → right
        return _lerp(15, 500, t / (n - 1)), _lerp(20, 45, t / (n - 1)), 115

    def a2(t: int) -> tuple[float, float, float]:  # middle lane, right → left (passes face 1)
        return _lerp(510, 20, t / (n - 1)), _lerp(195, 170, t / (n - 1)), 115

    def a3(t: int) -> tuple[float, float, float]:  # bottom left, growing (coming closer)
        size = _lerp(100, 140, t / (n - 1))
        return 30 + 60 * t / (n - 1), 460 - size - 20 * math.sin(t / 25), size

    def a4(t: int) -> tuple[float, float, float]:  # bottom right, leaves by the right edge
        x = 470 + 6 * math.sin(t / 10) + max(0, t - 55) ** 1.5 * 0.9
        return x, 320, 120

    def a5(t: int) -> tuple[float, float, float]:  # enters from the right edge, settles bottom right
        x = 640 - _smooth((t - 95) / 35) * 200
        return x, 330 + 10 * math.sin(t / 12), 110

    actors = [
        Actor(1, ("happy",), a1, still, range(0, n)),
        Actor(2, ("surprise",), a2, still, range(0, n)),
        Actor(3, ("neutral",), a3, still, range(0, n)),
        Actor(4, ("sad",), a4, still, range(0, 110)),
        Actor(5, ("angry",), a5, still, range(95, n)),
    ]
    return n, actors


SCENES = {"one-face": one_face_scene, "four-faces": four_faces_scene}


# --- face selection ----------------------------------------------------------------------------------


def _detectable(
    face: np.ndarray, cascade: cv2.CascadeClassifier, rng: np.random.Generator, sizes: tuple[int, ...]
) -> bool:
    """True when Haar finds exactly one face on this image pasted alone at every size in ``sizes``."""
    for size in sizes:
        canvas = smooth_background(size * 2, size * 2, rng)
        paste_face(
            canvas, cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC), size // 2, size // 2
        )
        dets = detect_reference(cascade, cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY))
        if len(dets) != 1 or iou(dets[0], (size // 2, size // 2, size, size)) < 0.3:
            return False
    return True


class FacePicker:
    """Picks PublicTest faces of a class, in a seeded order, that the reference Haar detects and on whose
    expression people agree: at least ``MIN_AGREEING_VOTES`` of FER+'s 10 raters chose the FER2013 label."""

    def __init__(self, data: Path, seed: int, votes: Votes) -> None:
        self.rng = np.random.default_rng(seed)
        self.cascade = reference_detector()
        self.pool: dict[str, list[Path]] = {}
        self.votes = votes
        for label in CLASSES:
            files = sorted((data / "test" / label).glob("PublicTest_*.jpg"))
            order = self.rng.permutation(len(files))
            self.pool[label] = [files[i] for i in order]
        self.used: set[Path] = set()

    def votes_for(self, path: Path) -> dict[str, int]:
        """FER+'s votes for the face at ``path`` by FER2013 class (the 7 emotions only)."""
        counts, _ = self.votes.emotion_counts((f"test/{path.parent.name}/{path.name}",))
        return {label: int(count) for label, count in zip(CLASSES, counts[0], strict=True)}

    def pick(self, label: str, sizes: tuple[int, ...] = (96, 120, 150)) -> tuple[np.ndarray, str]:
        """The next unused detectable face of ``label`` that the raters agree on, with its file name."""
        for path in self.pool[label]:
            if path in self.used or self.votes_for(path)[label] < MIN_AGREEING_VOTES:
                continue
            face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if face is None or face.std() < 25:
                continue
            if _detectable(face, self.cascade, self.rng, sizes):
                self.used.add(path)
                return face, path.name
        raise RuntimeError(
            f"no detectable PublicTest face of class {label!r} with {MIN_AGREEING_VOTES}+ votes"
        )


def _crossfade_ok(
    a: np.ndarray, b: np.ndarray, cascade: cv2.CascadeClassifier, rng: np.random.Generator
) -> bool:
    mid = cv2.addWeighted(a, 0.5, b, 0.5, 0)
    return _detectable(mid, cascade, rng, (130,))


# --- rendering ---------------------------------------------------------------------------------------


def render(name: str, data: Path, out: Path, seed: int, votes: Votes) -> dict[str, Any]:
    """Render one scene to ``out/<name>.mp4`` and ``out/<name>.json``; return a summary."""
    n, actors = SCENES[name]()
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    picker = FacePicker(data, seed + len(name), votes)
    images: dict[int, list[np.ndarray]] = {}
    sources: dict[int, list[str]] = {}
    ferplus: dict[int, list[dict[str, int]]] = {}
    for actor in actors:
        imgs: list[np.ndarray] = []
        names: list[str] = []
        for label in actor.faces:
            for _ in range(20):
                face, fname = picker.pick(label)
                if not imgs or _crossfade_ok(imgs[-1], face, picker.cascade, picker.rng):
                    break
            imgs.append(face)
            names.append(fname)
        images[actor.id] = imgs
        sources[actor.id] = names
        ferplus[actor.id] = [
            picker.votes_for(data / "test" / label / fname)
            for label, fname in zip(actor.faces, names, strict=True)
        ]

    background = smooth_background(WIDTH_PX, HEIGHT_PX, rng)
    out.mkdir(parents=True, exist_ok=True)
    video_path = out / f"{name}.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH_PX, HEIGHT_PX))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {video_path} with fourcc mp4v")
    frames: list[list[dict[str, Any]]] = []
    partial: list[list[dict[str, Any]]] = []
    for t in range(n):
        frame = background.copy()
        placed = []  # (id, full box, label), in drawing order
        for actor in actors:
            if t not in actor.frames:
                continue
            fx, fy, fsize = actor.path(t)
            size, x, y = round(fsize), round(fx), round(fy)
            ia, ib, wb = actor.shown(t)
            imgs = images[actor.id]
            face_a = cv2.resize(imgs[ia], (size, size), interpolation=cv2.INTER_CUBIC)
            if wb > 0:
                face_b = cv2.resize(imgs[ib], (size, size), interpolation=cv2.INTER_CUBIC)
                face_a = cv2.addWeighted(face_a, 1 - wb, face_b, wb, 0)
            paste_face(frame, face_a, x, y)
            label = actor.faces[ib if wb > 0.5 else ia]
            placed.append((actor.id, (x, y, size, size), label))
        visible_rows: list[dict[str, Any]] = []
        partial_rows: list[dict[str, Any]] = []
        for k, (face_id, box, label) in enumerate(placed):
            clipped = clip_box(box, WIDTH_PX, HEIGHT_PX)
            if clipped[2] == 0 or clipped[3] == 0:
                continue
            frac = _visible_frac(box, [p[1] for p in placed[k + 1 :]])
            row = {"id": face_id, "box": list(clipped), "label": label}
            (visible_rows if frac >= MIN_VISIBLE_FRAC else partial_rows).append(row)
        frames.append(visible_rows)
        partial.append(partial_rows)
        writer.write(frame)
    writer.release()

    faces = []
    for actor in actors:
        seen = [t for t, rows in enumerate(frames) if any(r["id"] == actor.id for r in rows)]
        faces.append(
            {
                "id": actor.id,
                "first_frame": seen[0],
                "last_frame": seen[-1],
                "labels": list(actor.faces),
                "sources": sources[actor.id],
                "ferplus_votes": ferplus[actor.id],
            }
        )
    truth = {
        "video": video_path.name,
        "fps": FPS,
        "width": WIDTH_PX,
        "height": HEIGHT_PX,
        "frame_count": n,
        "min_visible_frac": MIN_VISIBLE_FRAC,
        "faces": faces,
        "frames": frames,
        "partial": partial,
    }
    (out / f"{name}.json").write_text(dump_truth(truth))
    check = cv2.VideoCapture(str(video_path))
    read_back = int(check.get(cv2.CAP_PROP_FRAME_COUNT))
    check.release()
    if read_back != n:
        raise RuntimeError(f"{video_path}: wrote {n} frames but cv2 reads back {read_back}")
    return {"video": str(video_path), "frames": n, "bytes": video_path.stat().st_size}


def _visible_frac(box: tuple[int, int, int, int], above: list[tuple[int, int, int, int]]) -> float:
    """Fraction of ``box`` inside the frame and not covered by the boxes drawn above it."""
    x, y, w, h = box
    mask = np.zeros((h, w), bool)
    cx0, cy0 = max(0, -x), max(0, -y)
    cx1, cy1 = min(w, WIDTH_PX - x), min(h, HEIGHT_PX - y)
    if cx1 <= cx0 or cy1 <= cy0:
        return 0.0
    mask[cy0:cy1, cx0:cx1] = True
    for ox, oy, ow, oh in above:
        x0, y0 = max(0, ox - x), max(0, oy - y)
        x1, y1 = min(w, ox + ow - x), min(h, oy + oh - y)
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = False
    return float(mask.mean())


def dump_truth(truth: dict[str, Any]) -> str:
    """JSON with one line per frame, so the file stays readable and diffs stay small."""
    head = {k: v for k, v in truth.items() if k not in ("frames", "partial")}
    text = json.dumps(head, indent=2)[:-2]
    for key in ("frames", "partial"):
        rows = ",\n    ".join(json.dumps(r) for r in truth[key])
        text += f',\n  "{key}": [\n    {rows}\n  ]'
    return text + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and render every scene."""
    parser = argparse.ArgumentParser(prog="python -m tools.make_sample_video", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument(
        "--votes", type=Path, default=Path("../shared/data/ferplus/votes.csv"), help="FER+ votes.csv"
    )
    parser.add_argument("--out", type=Path, default=Path("samples"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=sorted(SCENES), help="render one scene")
    parser.add_argument(
        "--verify",
        type=Path,
        metavar="CROP_JSON",
        help="score the reference Haar on every frame against the truth, mapped with this calibration",
    )
    args = parser.parse_args(argv)
    if not (args.data / "test").is_dir():
        print_err(f"make_sample_video: no test/ folder under {args.data}; pass --data")
        return 1
    try:
        votes = load_votes(args.votes)
    except VotesError as err:
        print_err(f"make_sample_video: {err}")
        return 1
    cv2.setNumThreads(1)
    for name in [args.only] if args.only else list(SCENES):
        summary = render(name, args.data, args.out, args.seed, votes)
        made = f"{summary['video']}: {summary['frames']} frames, {summary['bytes']} bytes"
        print_out(f"make_sample_video: {made}", "make_sample_video")
        if args.verify:
            score = score_video(
                detect_video(summary["video"]),
                load_truth(args.out / f"{name}.json"),
                load_calibration(args.verify),
            )
            print_out(
                f"make_sample_video: {name}: recall {score['recall']:.3f} precision {score['precision']:.3f} "
                f"(tp {score['true_pos']} fp {score['false_pos']} fn {score['false_neg']}, "
                f"ignored {score['ignored']}, mean IoU {score['mean_iou']:.3f})",
                "make_sample_video",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
