"""The event payload contract of ARCHITECTURE.md, checked field by field (shared by the sink tests)."""

from __future__ import annotations

import re

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {
    "schema": int,
    "type": str,
    "device": str,
    "face_id": int,
    "ts": str,
    "frame": int,
    "seq": int,
    "emotion": str,
    "confidence": float,
    "scores": dict,
    "box": list,
    "frame_size": list,
    "first_seen": str,
    "duration_s": (int, float),
}


def check_event(event: dict, labels: tuple[str, ...]) -> None:
    """Assert that ``event`` follows the schema; ``labels`` are the model card's."""
    for name, kind in FIELDS.items():
        assert name in event, f"missing {name}: {event}"
        assert isinstance(event[name], kind), f"{name} has type {type(event[name]).__name__}: {event}"
    assert event["schema"] == 1
    # Added within schema 1, so older events without it stay valid: the id of the daemon's run.
    assert isinstance(event.get("run", ""), str)
    assert event["type"] in ("new", "update", "end")
    assert ISO_UTC.match(event["ts"]) and ISO_UTC.match(event["first_seen"])
    assert event["emotion"] in labels
    assert set(event["scores"]) == set(labels)
    assert 0.0 <= event["confidence"] <= 1.0
    assert abs(sum(event["scores"].values()) - 1.0) < 0.05
    assert len(event["box"]) == 4 and all(isinstance(v, int) for v in event["box"])
    assert len(event["frame_size"]) == 2
    assert event["duration_s"] >= 0
    if event["type"] == "end":
        assert set(event["summary"]) <= set(labels)
        # Added within schema 1: the last frame the face was found on; duration_s runs to it, not to ts.
        if "last_seen" in event:
            assert ISO_UTC.match(event["last_seen"])
            assert event["first_seen"] <= event["last_seen"] <= event["ts"]


def check_sequence(events: list[dict]) -> None:
    """``seq`` rises by one per event; every face has a ``new`` before its other events and one ``end``."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    announced: set[int] = set()
    ended: set[int] = set()
    for event in events:
        face = event["face_id"]
        assert face not in ended, f"event after end for face {face}"
        if event["type"] == "new":
            assert face not in announced
            announced.add(face)
        else:
            assert face in announced, f"{event['type']} before new for face {face}"
        if event["type"] == "end":
            ended.add(face)
    assert announced == ended, "every announced face ends"
