"""The benchmark's printed scene table: every figure issue 14 asks it to report."""

from __future__ import annotations

import pytest

from tools.bench import (
    PIPELINES,
    ROOT,
    STAGES,
    format_report,
    format_scenes,
    format_table,
    label_agreement,
    measure_one,
    targets,
)


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


def test_the_daemons_peak_rss_is_held_to_150_mb_at_640x480_only():
    """Issue 14 reports peak RSS on every clip; its <= 150 MB target is the 640x480 figures' (no regression).

    The HD clips' daemon figure is reported (a Pi user at 1080p needs it), not held to 640x480's bound.
    """
    goals = [t for t, _, _ in targets([], {"one-face": 100.0, "crowd-20": 108.0, "hd1080-walk": 196.0})]
    assert goals == ["one-face: daemon peak RSS <= 150 MB", "crowd-20: daemon peak RSS <= 150 MB"]
    assert "hd1080-walk 196 MB" in format_table([], {"one-face": 100.0, "hd1080-walk": 196.0})


@pytest.mark.slow  # one real run of moodcast's pipeline on the crowd-20 scene clip (~5-15 s)
def test_scene_clips_alone_print_no_empty_sample_table():
    """--videos with scene clips only printed the sample clips' header and legend with no row under them."""
    result = measure_one("moodcast", "crowd-20", ROOT / "models" / "emotion-int8.tflite")
    del result["labelled"]  # as main() does before printing
    table = format_table([result], {"crowd-20": 104.0})
    assert table == "daemon peak RSS: crowd-20 104 MB"
    assert "crowd-20" in format_scenes([result]).splitlines()[1]  # the scene table has the run


@pytest.mark.slow  # one real run of each pipeline on the one-face sample clip (~10-30 s)
def test_sample_clips_alone_print_no_empty_line_for_the_scene_table():
    """--videos one-face printed an empty line where the scene table would be (format_scenes gives "")."""
    model = ROOT / "models" / "emotion-int8.tflite"
    reference, ours = results = [measure_one(pipeline, "one-face", model) for pipeline in PIPELINES]
    same, total = label_agreement(ours["labelled"], reference["labelled"])  # as main() does
    ours["label_agreement"] = same / total if total else float("nan")
    for result in results:
        del result["labelled"]
    rss = {"one-face": 100.0}
    lines = format_report(results, rss, targets(results, rss), 1.0).splitlines()
    assert "" not in lines, lines
    assert lines[lines.index("daemon peak RSS: one-face 100 MB") + 1] == "targets (issue 14):"


def test_every_clip_run_gets_its_daemons_peak_rss(monkeypatch, tmp_path):
    import tools.bench as bench

    measured = []
    monkeypatch.setattr(bench, "daemon_peak_rss_mb", lambda video, model: measured.append(video) or 100.0)
    monkeypatch.setattr(bench.subprocess, "run", _fake_child)
    monkeypatch.setattr(bench, "classifier_ms", lambda model: 1.0)
    monkeypatch.setattr(bench, "plot", lambda results, path: None)
    bench.main(["--out", str(tmp_path), "--videos", "hd720-walk", "clutter"])
    assert measured == ["hd720-walk", "clutter"]


def _fake_child(command, **_kwargs):
    import json
    import types

    pipeline, video = command[-2:]
    row = scene_row(pipeline, 0, 0.0)
    row.update(video=video, labelled=[])
    row["identity"].update(face_frames=1, mota=1.0)
    return types.SimpleNamespace(stdout=json.dumps(row) + "\n")
