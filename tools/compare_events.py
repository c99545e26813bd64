"""Compare two runs' face events (JSON lines) frame by frame: same faces, same labels (make arm64-check).

Each run's events are replayed into a per-frame state. A face (track) lives from its `new` event's frame
to its `end` event's frame (or the last frame either run reached), and its label on a frame is the `emotion`
of its latest event at or before that frame. Faces are matched between the runs by the order in which they
appeared (face ids are per-run counters). The runs have the same faces when they have as many tracks and each
matched pair's first boxes overlap (IoU >= 0.5). A frame agrees when the same matched faces are alive on it in
both runs with the same labels; only frames on which either run has a face count. The check passes when the
faces are the same and at least --min-agreement (0.95) of those frames agree. Prints one summary line; exit 0
pass, 1 fail, 2 unreadable input.

    python -m tools.compare_events runs/x86/events.jsonl runs/arm64/events.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from device.console import print_err, print_out


@dataclass
class Track:
    """One face of one run: where it started and its label from each event's frame on."""

    first_frame: int
    first_box: tuple[int, int, int, int]
    end_frame: int | None = None
    labels: list[tuple[int, str]] = field(default_factory=list)

    def label_at(self, frame: int, last_frame: int) -> str | None:
        """The label on `frame`, or None when the face is not alive then."""
        end = self.end_frame if self.end_frame is not None else last_frame
        if frame < self.first_frame or frame > end:
            return None
        label = None
        for at, emotion in self.labels:
            if at > frame:
                break
            label = emotion
        return label


def load(path: str) -> tuple[list[Track], int]:
    """The run's tracks in order of appearance, and the last frame any event names."""
    tracks: dict[int, Track] = {}
    runs: set[str | None] = set()
    last = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                kind, face, frame = event["type"], int(event["face_id"]), int(event["frame"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: not a face event ({e})") from e
            runs.add(event.get("run"))
            if len(runs) > 1:
                raise ValueError(f"{path}:{number}: events of more than one run (empty the file first)")
            last = max(last, frame)
            if kind == "new":
                tracks[face] = Track(frame, tuple(event["box"]))
            track = tracks.get(face)
            if track is None:
                raise ValueError(f"{path}:{number}: face {face} has a {kind!r} event before its 'new'")
            if "emotion" in event:
                track.labels.append((frame, event["emotion"]))
            if kind == "end":
                track.end_frame = frame
    ordered = sorted(tracks.items(), key=lambda item: (item[1].first_frame, item[0]))
    return [track for _, track in ordered], last


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def compare(ref_path: str, other_path: str, min_agreement: float) -> tuple[bool, str]:
    """(passed, one summary line) for the two runs."""
    ref, ref_last = load(ref_path)
    other, other_last = load(other_path)
    last = max(ref_last, other_last)
    same_faces = len(ref) == len(other) and all(
        iou(a.first_box, b.first_box) >= 0.5 for a, b in zip(ref, other, strict=True)
    )
    face_frames = agree = 0
    for frame in range(last + 1):
        ref_state = [t.label_at(frame, ref_last) for t in ref]
        other_state = [t.label_at(frame, other_last) for t in other]
        if not any(ref_state) and not any(other_state):
            continue
        face_frames += 1
        agree += ref_state == other_state
    share = agree / face_frames if face_frames else 0.0
    passed = same_faces and face_frames > 0 and share >= min_agreement
    line = (
        f"{'PASS' if passed else 'FAIL'}: faces {len(ref)} vs {len(other)} "
        f"({'same' if same_faces else 'differ'}), "
        f"labels agree on {agree}/{face_frames} frames with a face ({share:.1%}, need {min_agreement:.0%}); "
        f"events {sum(len(t.labels) for t in ref)} vs {sum(len(t.labels) for t in other)}"
    )
    return passed, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="events of the reference run (x86)")
    parser.add_argument("other", help="events of the run to check (arm64)")
    parser.add_argument(
        "--min-agreement", type=float, default=0.95, help="share of the frames with a face that must agree"
    )
    args = parser.parse_args(argv)
    try:
        passed, line = compare(args.reference, args.other, args.min_agreement)
    except (OSError, ValueError) as e:
        print_err(f"compare_events: {e}")
        return 2
    print_out(line, "compare_events")  # the status says it too
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
