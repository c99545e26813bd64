"""Build the benchmark's scene clips: real FER2013 faces on real photographs, at 720p, 1080p and in a crowd.

    python -m tools.make_scene_clips --data ../shared/data/fer2013 --out samples/scenes   # = make scenes

Deterministic (same seed, data and OpenCV: same files). Faces come from FER2013's PublicTest split only,
picked as ``tools.make_sample_video`` picks them (FER+ raters agree with the label, the reference Haar finds
the face alone at 48, 100 and 200 px). Backgrounds are scikit-image's photographs (``skimage.data``) with no
person in them. Each clip gets a ground-truth JSON in the format of ``samples/*.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.console import print_err, print_out
from tools.groundtruth import clip_box
from tools.make_sample_video import FacePicker, dump_truth, paste_face
from train.votes import VotesError, load_votes

FPS = 15
MIN_VISIBLE_FRAC = 0.7
CRF = 23  # x264 quality: each clip stays under 1.5 MB
PICK_SIZES = (48, 100, 200)  # a face is used only if the reference finds it alone at each of these sizes

Key = tuple[int, float, float, float]  # (frame, x, y, side): a face's top-left corner and size at a frame
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Actor:
    """One face: its FER2013 class and its keyframes (linear in between, absent outside)."""

    id: int
    label: str
    keys: tuple[Key, ...]

    def at(self, t: int) -> tuple[int, int, int] | None:
        """``(x, y, side)`` at frame t, or None when the face is not in the scene."""
        keys = self.keys
        if t < keys[0][0] or t > keys[-1][0]:
            return None
        for (t0, x0, y0, s0), (t1, x1, y1, s1) in zip(keys, keys[1:], strict=False):
            if t0 <= t <= t1:
                a = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                return round(x0 + a * (x1 - x0)), round(y0 + a * (y1 - y0)), round(s0 + a * (s1 - s0))
        _, x, y, s = keys[-1]
        return round(x), round(y), round(s)


@dataclass(frozen=True)
class Scene:
    """A clip: its size and length, a background (per frame, for a pan), the faces and the occluders.

    Faces are drawn in ``actors`` order (later ones cover earlier ones), then the occluders above all.
    """

    width: int
    height: int
    frames: int
    background: Callable[[int], np.ndarray]
    actors: tuple[Actor, ...]
    occluders: tuple[Rect, ...] = ()
    occluder_image: str = "brick"


# --- backgrounds: scikit-image's photographs, none with a person in it --------------------------------


def photo(name: str) -> np.ndarray:
    """A photograph from ``skimage.data`` as BGR uint8."""
    from skimage import data

    image: np.ndarray | tuple[np.ndarray, ...] = getattr(data, name)()  # looked up by name
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def mosaic(width: int, height: int, names: list[str], columns: int) -> np.ndarray:
    """``names``' photographs as a ``columns``-wide grid of tiles filling ``width`` x ``height``."""
    rows = -(-len(names) // columns)
    tile_w, tile_h = -(-width // columns), -(-height // rows)
    canvas = np.zeros((rows * tile_h, columns * tile_w, 3), np.uint8)
    for k, name in enumerate(names):
        image = photo(name)
        scale = max(tile_w / image.shape[1], tile_h / image.shape[0])  # cover the tile, crop the rest
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y0, x0 = (image.shape[0] - tile_h) // 2, (image.shape[1] - tile_w) // 2
        r, c = divmod(k, columns)
        canvas[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w] = image[
            y0 : y0 + tile_h, x0 : x0 + tile_w
        ]
    return canvas[:height, :width].copy()


def still(image: np.ndarray) -> Callable[[int], np.ndarray]:
    return lambda _t: image


def walk(
    face_id: int, label: str, side: float, start: tuple[int, float, float], *legs: tuple[int, float, float]
) -> Actor:
    """A face of constant ``side`` from ``start`` (frame, x, y) through ``legs`` (frame, x, y)."""
    keys = [(start[0], start[1], start[2], side)] + [(t, x, y, side) for t, x, y in legs]
    return Actor(face_id, label, tuple(keys))


# --- scenes -------------------------------------------------------------------------------------------


def hd720() -> Scene:
    """1280x720, 8 s: five faces of 48-200 px enter, leave, cross and pause behind a brick pillar."""
    bg = mosaic(
        1280,
        720,
        [
            "rocket",
            "coffee",
            "stereo_motorcycle",
            "immunohistochemistry",
            "hubble_deep_field",
            "chelsea",
            "clock",
            "gravel",
        ],
        4,
    )
    pillar = (560, 0, 170, 720)
    actors = (
        walk(1, "happy", 48, (0, -40, 90), (119, 1300, 110)),  # enters left, leaves right, passes the pillar
        walk(2, "surprise", 64, (0, 1230, 330), (119, 700, 300)),  # right to left, crosses face 3
        # walks behind the pillar, pauses 1 s there and comes out: hidden for about 2 s (33 frames)
        walk(3, "neutral", 100, (0, 300, 260), (15, 590, 270), (30, 590, 270), (100, 1200, 280)),
        walk(4, "sad", 150, (0, 880, 420), (50, 960, 430), (95, 1300, 440)),  # leaves by the right edge
        walk(5, "angry", 200, (40, 1290, 40), (80, 1040, 60), (119, 1000, 70)),  # enters from the right
    )
    return Scene(1280, 720, 120, still(bg), actors, (pillar,))


def hd1080() -> Scene:
    """1920x1080, 8 s: six faces of 48-200 px enter, leave, cross and pause behind a brick pillar."""
    bg = mosaic(
        1920,
        1080,
        [
            "stereo_motorcycle",
            "coffee",
            "rocket",
            "chelsea",
            "hubble_deep_field",
            "immunohistochemistry",
            "coins",
            "clock",
        ],
        4,
    )
    pillar = (900, 0, 200, 1080)
    actors = (
        walk(1, "surprise", 48, (0, 200, 140), (119, 1500, 160)),  # far face crossing the whole frame
        walk(2, "happy", 60, (0, 1960, 520), (119, 1100, 500)),  # enters from the right
        walk(3, "neutral", 80, (0, 1500, 700), (119, 400, 720)),  # crosses face 4, passes the pillar
        # walks behind the pillar, pauses 1 s there and comes out: hidden for about 2 s (32 frames)
        walk(4, "happy", 120, (0, 500, 640), (18, 940, 660), (33, 940, 660), (119, 1900, 680)),
        walk(5, "sad", 160, (0, 1500, 220), (60, 1600, 240), (110, 1960, 260)),  # leaves by the right
        walk(6, "angry", 200, (30, -210, 820), (80, 150, 800), (119, 220, 790)),  # enters from the left
    )
    return Scene(1920, 1080, 120, still(bg), actors, (pillar,))


def crowd() -> Scene:
    """640x480, 6 s: 20 faces of 100 px in a 5 x 4 grid (24 and 16 px apart), each swaying a few pixels."""
    bg = mosaic(640, 480, ["coffee", "rocket", "chelsea", "gravel"], 2)
    labels = ("happy", "surprise", "neutral", "sad", "angry")
    actors = []
    for k in range(20):
        x, y = 14 + (k % 5) * 124, 12 + (k // 5) * 116
        dx, dy = 3 * (1 if k % 2 else -1), 2 * (1 if k % 3 else -1)
        keys = ((0, x, y, 100), (30, x + dx, y + dy, 100), (60, x - dx, y - dy, 100), (89, x, y, 100))
        actors.append(Actor(k + 1, labels[k % len(labels)], keys))
    return Scene(640, 480, 90, still(bg), tuple(actors))


def clutter() -> Scene:
    """1280x720, 10 s, no face: a pan over photographs (a cat, coins, a motorcycle, text, a clock, a moon)."""
    strip = mosaic(
        2560,
        720,
        [
            "chelsea",
            "coins",
            "stereo_motorcycle",
            "text",
            "clock",
            "moon",
            "coffee",
            "page",
            "rocket",
            "colorwheel",
            "hubble_deep_field",
            "cell",
        ],
        6,
    )
    coins = cv2.resize(photo("coins"), None, fx=1.4, fy=1.4, interpolation=cv2.INTER_LINEAR)
    strip[720 - coins.shape[0] :, 1000 : 1000 + coins.shape[1]] = coins  # fools Haar (tests/test_real_scenes)
    n = 150
    return Scene(1280, 720, n, lambda t: strip[:, round(t * 1280 / (n - 1)) :][:, :1280].copy(), ())


SCENES = {"hd720-walk": hd720, "hd1080-walk": hd1080, "crowd-20": crowd, "clutter": clutter}


# --- rendering ----------------------------------------------------------------------------------------


def visible_frac(box: Rect, above: list[Rect], width: int, height: int) -> float:
    """Fraction of ``box`` inside the frame and not covered by the rectangles drawn above it."""
    x, y, w, h = box
    mask = np.zeros((h, w), bool)
    cx0, cy0, cx1, cy1 = max(0, -x), max(0, -y), min(w, width - x), min(h, height - y)
    if cx1 <= cx0 or cy1 <= cy0:
        return 0.0
    mask[cy0:cy1, cx0:cx1] = True
    for ox, oy, ow, oh in above:
        x0, y0, x1, y1 = max(0, ox - x), max(0, oy - y), min(w, ox + ow - x), min(h, oy + oh - y)
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = False
    return float(mask.mean())


def render(name: str, picker: FacePicker, data: Path, out: Path) -> dict[str, Any]:
    """Render ``name`` to ``out/<name>.mp4`` and its truth to ``out/<name>.json``; return a summary."""
    scene = SCENES[name]()
    faces, sources, votes = {}, {}, {}
    for actor in scene.actors:
        face, source = picker.pick(actor.label, PICK_SIZES)
        faces[actor.id], sources[actor.id] = face, source
        votes[actor.id] = picker.votes_for(data / "test" / actor.label / source)
    cover = photo(scene.occluder_image)
    out.mkdir(parents=True, exist_ok=True)
    video_path = out / f"{name}.mp4"
    writer = H264Writer(video_path, scene.width, scene.height)
    frames, partial = [], []
    for t in range(scene.frames):
        image = scene.background(t).copy()
        placed: list[tuple[Actor, Rect]] = []
        for actor in scene.actors:
            where = actor.at(t)
            if where is None:
                continue
            x, y, side = where
            paste_face(image, cv2.resize(faces[actor.id], (side, side), interpolation=cv2.INTER_CUBIC), x, y)
            placed.append((actor, (x, y, side, side)))
        for ox, oy, ow, oh in scene.occluders:
            image[oy : oy + oh, ox : ox + ow] = cv2.resize(cover, (ow, oh), interpolation=cv2.INTER_AREA)
        shown: list[dict[str, object]] = []
        hidden: list[dict[str, object]] = []
        for k, (actor, box) in enumerate(placed):
            clipped = clip_box(box, scene.width, scene.height)
            if clipped[2] == 0 or clipped[3] == 0:
                continue
            above = [b for _, b in placed[k + 1 :]] + list(scene.occluders)
            row = {"id": actor.id, "box": list(clipped), "label": actor.label}
            frac = visible_frac(box, above, scene.width, scene.height)
            (shown if frac >= MIN_VISIBLE_FRAC else hidden).append(row)
        frames.append(shown)
        partial.append(hidden)
        writer.write(image)
    writer.close()
    rows = []
    for actor in scene.actors:
        seen = [t for t, r in enumerate(frames) if any(f["id"] == actor.id for f in r)]
        rows.append(
            {
                "id": actor.id,
                "first_frame": seen[0],
                "last_frame": seen[-1],
                "labels": [actor.label],
                "sources": [sources[actor.id]],
                "ferplus_votes": [votes[actor.id]],
                "side_px": sorted({round(k[3]) for k in actor.keys}),
            }
        )
    truth = {
        "video": video_path.name,
        "fps": FPS,
        "width": scene.width,
        "height": scene.height,
        "frame_count": scene.frames,
        "min_visible_frac": MIN_VISIBLE_FRAC,
        "faces": rows,
        "frames": frames,
        "partial": partial,
    }
    (out / f"{name}.json").write_text(dump_truth(truth))
    check = cv2.VideoCapture(str(video_path))
    read_back = int(check.get(cv2.CAP_PROP_FRAME_COUNT))
    check.release()
    if read_back != scene.frames:
        raise RuntimeError(f"{video_path}: wrote {scene.frames} frames but cv2 reads back {read_back}")
    return {"video": str(video_path), "frames": scene.frames, "bytes": video_path.stat().st_size}


class H264Writer:
    """H.264 (x264, CRF 23, one thread: the same bytes on every run) in mp4, through PyAV: mp4v would make
    the cluttered HD clips 2-3 MB each; OpenCV's own FFmpeg reads these back."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        import av

        self._av = av
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream("libx264", rate=FPS)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.thread_count = 1
        self._stream.options = {"crf": str(CRF), "preset": "medium", "threads": "1"}
        self._count = 0

    def write(self, bgr: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(bgr, format="bgr24")
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and render every scene (or one)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_scene_clips", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fer2013"))
    parser.add_argument("--votes", type=Path, default=Path("../shared/data/ferplus/votes.csv"))
    parser.add_argument("--out", type=Path, default=Path("samples/scenes"))
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--only", choices=sorted(SCENES), help="render one scene")
    args = parser.parse_args(argv)
    if not (args.data / "test").is_dir():
        print_err(f"make_scene_clips: no test/ folder under {args.data}; pass --data")
        return 1
    try:
        votes = load_votes(args.votes)
    except VotesError as err:
        print_err(f"make_scene_clips: {err}")
        return 1
    cv2.setNumThreads(1)
    for name in [args.only] if args.only else list(SCENES):
        picker = FacePicker(args.data, args.seed + len(name), votes)  # one seeded order per scene
        summary = render(name, picker, args.data, args.out)
        made = f"{summary['video']}: {summary['frames']} frames, {summary['bytes']} bytes"
        print_out(f"make_scene_clips: {made}", "make_scene_clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
