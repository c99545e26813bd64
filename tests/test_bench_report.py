"""The benchmark's printed scene table: every figure issue 14 asks it to report."""

from __future__ import annotations

from tools.bench import STAGES, format_scenes


def scene_row(pipeline: str, false_tracks: int, per_min: float) -> dict:
    stages = {s: {"median_ms": 1.0, "p95_ms": 2.0} for s in ("capture", *STAGES)}
    return {
        "video": "clutter",
        "pipeline": pipeline,
        "fps": 3.0,
        "stages": stages,
        "recall": 1.0,
        "precision": 0.0,
        "peak_rss_mb": 500.0,
        "by_size": {"48-71": {"recall": 1.0, "precision": 0.0, "faces": 0}},
        "identity": {
            "id_switches": 0,
            "fragmentations": 0,
            "idf1": 0.0,
            "announced": false_tracks,
            "false_tracks": false_tracks,
            "false_tracks_per_min": per_min,
            "new_delay_s": [],
        },
    }


def test_the_scene_table_gives_false_tracks_per_minute():
    """Issue 14: 'false tracks per minute on the no-face clip', for moodcast and the reference alike."""
    table = format_scenes([scene_row("reference", 26, 156.0), scene_row("moodcast", 0, 0.0)])
    head, reference, ours = table.splitlines()[:3]
    assert "false/min" in head
    end = head.index("false/min") + len("false/min")  # the columns are right-aligned
    start = end - len(" false/min")
    assert head[start] == " "
    assert reference[start:end].strip() == "156.0"
    assert ours[start:end].strip() == "0.0"
    assert "false/min" in table.split("stage columns:")[1]  # and the legend says what it is
