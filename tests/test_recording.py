"""The video backend's recording (display.video_path): which paths it refuses, and why, at --check-config and
at start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import DisplayConfig
from device.display.display import VideoFileDisplay
from device.errors import DisplayError
from tests.test_daemon import ROOT, SAMPLE, daemon, one_line_error


def record(*args: str) -> list[str]:
    """The daemon's arguments that record the annotated video to ``args``' path."""
    return ["--display-backend", "video", "--display-video-path", *args]


def test_the_recording_never_overwrites_the_input_video(tmp_path, shipped_model):
    """``--input self.mp4 --display-video-path self.mp4`` exited 0 with the input replaced by the annotated
    frames, and --check-config said config OK."""
    video = tmp_path / "self.mp4"
    shutil.copy(SAMPLE, video)
    link = tmp_path / "link.mp4"
    link.symlink_to(video)  # another name for the same file
    original = video.read_bytes()
    for out in (video, link):
        checked = daemon(
            "--check-config", "--input", str(video), "--model-path", str(shipped_model), *record(str(out))
        )
        one_line_error(checked, "display.video_path", str(out), f"camera.device {video}", "overwrite")
        started = daemon("--input", str(video), "--model-path", str(shipped_model), *record(str(out)))
        one_line_error(started, "display.video_path", str(out), f"camera.device {video}", "overwrite")
    assert video.read_bytes() == original


def test_replacing_an_earlier_recording_is_said(tmp_path, caplog):
    """An existing file at display.video_path was replaced without a word."""
    out = tmp_path / "out.mp4"
    config = DisplayConfig(backend="video", video_path=out)
    frame = np.zeros((48, 64, 3), np.uint8)
    for replaced in (False, True):
        caplog.clear()
        with caplog.at_level("INFO", logger="device.display.display"):
            display = VideoFileDisplay(config, (64, 48), 15.0)
        display.show(frame)
        display.close()
        said = [r.getMessage() for r in caplog.records if str(out) in r.getMessage()]
        assert said == [
            f"writing annotated video to {out}" + (", replacing the file there" if replaced else "")
        ]


def frames_in(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def write_frames(path: Path, count: int, size: tuple[int, int] = (64, 48)) -> None:
    """``count`` frames of a grey ramp through the video backend, to ``path``."""
    display = VideoFileDisplay(DisplayConfig(backend="video", video_path=path), size, 15.0)
    for index in range(count):
        display.show(np.full((size[1], size[0], 3), 40 * index, np.uint8))
    display.close()


@pytest.mark.parametrize("suffix", [".mp4", ".m4v", ".mov", ".avi", ".mkv", ".MP4"])
def test_each_accepted_container_keeps_every_frame(tmp_path, suffix):
    """.m4v was refused ('use a .mp4 or .avi path'): it was given the MJPG codec, which MP4 cannot hold."""
    out = tmp_path / f"out{suffix}"
    write_frames(out, 3)
    assert frames_in(out) == 3


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".png", ".bmp", ".txt", ".webm", ".gif", ""])
def test_a_path_of_no_video_container_is_refused_at_start_and_by_check_config(tmp_path, suffix):
    """``out.jpg`` was taken, and OpenCV wrote one picture that each frame overwrote: all frames but the last
    were lost. ``out.txt`` passed --check-config ("config OK"), then the daemon refused it at start."""
    out = tmp_path / f"out{suffix}"
    with pytest.raises(
        DisplayError, match=r"expected a video file ending \.mp4, \.m4v, \.mov, \.avi, \.mkv"
    ) as err:
        write_frames(out, 3)
    assert str(err.value).startswith(f"display.video_path: {out}: ")
    if suffix in (".jpg", ".png"):
        assert f"got '{suffix}', an image (only the last frame would be kept)" in str(err.value)
    assert not out.exists()
    if suffix in (".jpg", ".txt"):
        checked = daemon("--check-config", "--input", str(SAMPLE), *record(str(out)))
        one_line_error(checked, f"display.video_path: {out}: expected a video file ending")


def refusal(out: Path, size: tuple[int, int] = (64, 48)) -> str:
    with pytest.raises(DisplayError) as err:
        write_frames(out, 1, size)
    return str(err.value)


def test_a_recording_that_cannot_be_opened_names_the_real_cause(tmp_path):
    """Each of these said "cannot write <path>; use a .mp4 or .avi path", though the path was a .mp4."""
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    assert refusal(folder) == f"display.video_path: {folder}: is a folder, expected the video's path"
    a_file = tmp_path / "notes"
    a_file.write_text("")
    inside = a_file / "out.mp4"
    assert refusal(inside) == f"display.video_path: {inside}: {a_file} is a file, not a folder"
    tiny = tmp_path / "tiny.mp4"
    assert refusal(tiny, (1, 1)) == (
        f"display.video_path: {tiny}: OpenCV's mp4v encoder refuses 1x1 frames (the input's size) for .mp4 "
        "files; use a .avi path, or a larger input"
    )
    write_frames(tmp_path / "tiny.avi", 2, (1, 1))  # what it says to do works
    assert frames_in(tmp_path / "tiny.avi") == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_recording_in_a_folder_this_user_may_not_write_says_so(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = locked / "out.mp4"
    assert (
        refusal(out)
        == f"display.video_path: {out}: the video cannot be written by this user (permission denied)"
    )


def test_a_link_whose_folder_is_gone_is_refused_at_start_naming_the_folder(tmp_path):
    """display.video_path a link into a folder that does not exist passed the start check, and the writer
    then failed with "OpenCV's mp4v encoder refuses 64x48 frames": the link is now judged by the file it
    names. A link that loops is one line too."""
    link = tmp_path / "out.mp4"
    link.symlink_to(tmp_path / "gone" / "rec.mp4")
    assert refusal(link) == (
        f"display.video_path: {link}: a link to {tmp_path / 'gone' / 'rec.mp4'}: folder {tmp_path / 'gone'} "
        "does not exist; create it"
    )
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    assert (
        refusal(loop) == f"display.video_path: {loop}: a link that cannot be followed (a loop?); fix the link"
    )


def test_a_video_path_ending_in_a_slash_is_refused_as_a_folder(tmp_path):
    """``out/`` lost its '/' (Path drops it) and was opened as a file named ``out``: "cannot write"."""
    for args in (["--check-config", "--input", str(SAMPLE)], ["--input", str(SAMPLE)]):
        result = daemon(*args, *record(f"{tmp_path}/out/"))
        one_line_error(result, f"display.video_path: '{tmp_path}/out/' names a folder (it ends in '/')")
    assert not (tmp_path / "out").exists()


def test_frames_are_recorded_at_their_times_not_one_file_frame_each(tmp_path):
    """A recording wrote each frame once at the announced rate: a variable-frame-rate input, or a pipeline
    slower than its camera, played too fast (30 frames over 8.0 s became 2 s). Each file frame now shows the
    newest frame whose time had come; a frame sharing a file frame with a newer one gives way to it."""
    out = tmp_path / "out.avi"
    display = VideoFileDisplay(DisplayConfig(backend="video", video_path=out), (64, 48), 15.0)
    times = [10.0, 10.2, 12.0, 12.01, 12.07]  # file frames 0, 3, 30, 30 (the newer wins), 31
    for index, time_s in enumerate(times):
        display.show(np.full((48, 64, 3), 40 * index, np.uint8), time_s)
    display.close()
    capture = cv2.VideoCapture(str(out))
    shades = []
    while (read := capture.read())[0]:
        shades.append(round(float(read[1].mean()) / 40))
    assert shades == [0] * 3 + [1] * 27 + [3, 4]


def test_a_stalled_source_is_held_for_at_most_the_longest_gap(tmp_path):
    from device.const import RECORDING_MAX_GAP_S

    out = tmp_path / "out.avi"
    display = VideoFileDisplay(DisplayConfig(backend="video", video_path=out), (64, 48), 10.0)
    display.show(np.zeros((48, 64, 3), np.uint8), 0.0)
    display.show(np.zeros((48, 64, 3), np.uint8), 600.0)  # a stream back after ten minutes
    display.close()
    assert frames_in(out) == round(RECORDING_MAX_GAP_S * 10) + 1


def test_a_variable_frame_rate_video_is_recorded_as_long_as_it_plays(tmp_path, shipped_model):
    """The daemon over a 30-frame file spread over 8 s recorded 30 frames at 15 fps: 2 s."""
    from tests.test_sources import uneven_times, write_vfr

    frames = [np.full((120, 160, 3), 8 * index, np.uint8) for index in range(30)]
    times = uneven_times(len(frames))
    vfr = write_vfr(tmp_path / "vfr.mkv", frames, times)
    out = tmp_path / "out.avi"
    result = daemon("--input", str(vfr), "--model-path", str(shipped_model), *record(str(out)))
    assert result.returncode == 0, result.stderr
    fps = cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FPS)
    assert frames_in(out) / fps == pytest.approx(times[-1] - times[0] + 1 / fps, abs=1.5 / fps)


def recording_daemon(out: Path, shipped_model: Path, wrap: list[str], limit_bytes: int = 0):
    """The daemon over the sample, recording to ``out``, events to stdout (a pipe: no file to fill), its
    command prefixed by ``wrap``, and with a file size limit of ``limit_bytes`` (0: none)."""
    import resource
    import sys

    def limit_file_size() -> None:  # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.RLIM_INFINITY))

    command = [*wrap, sys.executable, "-m", "device", "--no-realtime", "--input", str(SAMPLE),
               "--model-path", str(shipped_model), "--events", "-", *record(str(out))]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=ROOT, preexec_fn=limit_file_size
    )


def said_once_and_ran_on(result, out: Path, cause: str) -> None:
    """The run exited 0 with every event, and said once, in a WARNING naming ``out``, that ``cause``."""
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert events[0] == "new" and events[-1] == "end", result.stdout
    said = [line for line in result.stderr.splitlines() if f"recording {out}" in line]
    assert len(said) == 1 and "WARNING" in said[0] and cause in said[0], result.stderr
    assert "restart moodcast to record again" in said[0] and "events and MQTT go on" in said[0]


def test_a_recording_past_the_file_size_limit_is_said_once_and_the_daemon_runs_on(tmp_path, shipped_model):
    """OpenCV's writer fails in silence: the sample's 2.9 MB recording was cut at the 1.5 MiB limit (EFBIG)
    and the run said nothing."""
    out = tmp_path / "out.avi"
    result = recording_daemon(out, shipped_model, [], limit_bytes=3 << 19)
    said_once_and_ran_on(result, out, "of the file size limit of 1572864 bytes")
    # closed before a write failed (it had been cut at the limit itself, and a cut .mp4 plays nothing), at a
    # look that found the room under the limit too small for FFmpeg's block, the next frame raw (a 640x480
    # frame: 900 KiB) and the index, and with all the room before: at 31 frames, 517 KiB
    size, frames = out.stat().st_size, frames_in(out)
    assert (3 << 19) - room_asked_bytes((640, 480), frames) < size < 3 << 19, (size, frames)
    assert frames > 0


def unshare_denied() -> str:
    """Why a mount namespace of this user cannot be had here (unshare -rm), or ""."""

    if shutil.which("unshare") is None:
        return "no unshare command (util-linux)"
    tried = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    return tried.stderr.strip() if tried.returncode else ""


def on_tmpfs(disk: Path, size: str) -> list[str]:
    """The command prefix that runs a command with a tmpfs of ``size`` ("1m") of its own mounted on ``disk``
    (a mount namespace of this user: ``unshare -rm``), gone with the command."""
    return ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size} none "{disk}" && exec "$@"', "sh"]


def run_on_tmpfs(disk: Path, size: str, script: str, *args: str) -> subprocess.CompletedProcess:
    """``script`` run by this Python with ``args``, from the project's root, on a tmpfs of ``size`` mounted on
    ``disk`` (``on_tmpfs``), its output captured as text."""
    import sys

    return subprocess.run(
        [*on_tmpfs(disk, size), sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


READ_ONLY_VIDEO_PATHS = """
import subprocess, sys
from pathlib import Path
from device.display.video_path import video_path_problem

disk, link = Path(sys.argv[1]), Path(sys.argv[2])
subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
print(video_path_problem(disk / "rec.mp4"))
print(video_path_problem(link))
"""


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_video_path_on_a_read_only_mount_is_named_so_through_a_link_too(tmp_path):
    """A recording path on a read-only mount (a card the kernel remounted read-only) was refused as
    "permission denied", and a link to it passed the start check."""
    disk = tmp_path / "disk"
    disk.mkdir()
    link = tmp_path / "out.mp4"
    link.symlink_to(disk / "rec.mp4")
    result = run_on_tmpfs(disk, "1m", READ_ONLY_VIDEO_PATHS, str(disk), str(link))
    assert result.returncode == 0, result.stderr
    read_only = f"{disk} is on a read-only mount ('ro' in mount's list); write the video elsewhere"
    assert result.stdout.splitlines() == [
        f"{disk / 'rec.mp4'}: {read_only}",
        f"{link}: a link to {disk / 'rec.mp4'}: {read_only}",
    ]


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_recording_on_a_full_disk_is_said_once_and_the_daemon_runs_on(tmp_path, shipped_model):
    """The recording on a 1 MiB tmpfs (a full SD card) stopped growing at 1 MiB without a word."""
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out.avi"
    said_once_and_ran_on(
        recording_daemon(out, shipped_model, on_tmpfs(disk, "1m")), out, "its disk is (nearly) full ("
    )


def test_a_recording_removed_while_running_is_said_once(tmp_path, caplog):
    out = tmp_path / "out.avi"
    display = VideoFileDisplay(DisplayConfig(backend="video", video_path=out), (64, 48), 10.0)
    with caplog.at_level("INFO", logger="device.display"):
        for index in range(300):  # 30 s of recording, the file removed after 10 s
            if index == 100:
                out.unlink()
            display.show(np.full((48, 64, 3), index % 250, np.uint8), index / 10)
        display.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if f"recording {out}" in r.getMessage()]
    assert len(said) == 1 and said[0][0] == "WARNING", said
    assert "removed or replaced while recording" in said[0][1], said


@pytest.mark.parametrize("through_link", [False, True])
def test_a_recording_moved_while_running_is_said_to_be_at_its_old_inode(tmp_path, caplog, through_link):
    """A recording file renamed while recording was said to be "removed or replaced, so the frames went to a
    deleted file": the renamed file is whole, the frames go on into it until the writer is closed (at the
    look after the next frame), and it plays them all. So with display.video_path a link, the link removed:
    the frames are in the link's file, which the words said was deleted with them."""
    out, moved = tmp_path / "out.mp4", tmp_path / "moved.mp4"
    if through_link:
        out.symlink_to(moved)
    display = VideoFileDisplay(DisplayConfig(backend="video", video_path=out), (64, 48), 10.0)
    with caplog.at_level("INFO", logger="device.display"):
        for index in range(300):  # 30 s of recording, the file moved (or its link removed) after 10 s
            if index == 100:
                out.unlink() if through_link else out.rename(moved)
            display.show(np.full((48, 64, 3), index % 250, np.uint8), index / 10)
        display.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if f"recording {out}" in r.getMessage()]
    assert len(said) == 1 and said[0][0] == "WARNING", said
    assert (
        "the file, or the link to it, was moved, removed or replaced while recording: its frames went on "
        f"into the file at its old inode, not to {out} (a moved file, or a link's file, holds them all; a "
        "removed or replaced file is deleted with them)"
    ) in said[0][1], said
    assert not out.exists() and frames_in(moved) == 100  # the frame written after the move, at 10 s, too


FULL_DISK_FILLING_UP = """
import logging, sys
from pathlib import Path
import numpy as np
from device.config import DisplayConfig
from device.display.display import VideoFileDisplay

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
disk = Path(sys.argv[1])
events = disk / "events.jsonl"  # another writer on the same disk
display = VideoFileDisplay(DisplayConfig(backend="video", video_path=disk / "out.avi"), (64, 48), 10.0)
for index in range(300):  # 30 s of recording; the other writer adds 150 KiB every 5 s, filling the disk
    if index % 50 == 25:
        with events.open("ab") as handle:
            handle.write(bytes(150 << 10))
    display.show(np.full((48, 64, 3), index % 250, np.uint8), index / 10)
display.close()
"""


def disk_full_said_once(tmp_path: Path, size: str, script: str, name: str) -> str:
    """Run ``script`` with a tmpfs of ``size`` on ``tmp_path/disk`` (its argument), recording to ``name``
    there; assert the recording was said once, as a WARNING that its disk is full, and return that line."""
    disk = tmp_path / "disk"
    disk.mkdir()
    result = run_on_tmpfs(disk, size, script, str(disk))
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if f"recording {disk / name}" in line]
    assert len(said) == 1 and said[0].startswith("WARNING") and "its disk is (nearly) full (" in said[0], said
    return said[0]


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_full_disk_whose_free_space_changes_is_said_once(tmp_path):
    """The WARNING named the free KiB, and was said again at each look (every 5 s) where that number had
    changed: seven WARNINGs for one full disk. The state is now the kind of problem, whatever its words."""
    disk_full_said_once(tmp_path, "1m", FULL_DISK_FILLING_UP, "out.avi")


DISK_FILLED_BETWEEN_TWO_FRAMES = """
import logging, os, sys
from pathlib import Path
import numpy as np
from device.config import DisplayConfig
from device.display.display import VideoFileDisplay

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
disk = Path(sys.argv[1])
display = VideoFileDisplay(DisplayConfig(backend="video", video_path=disk / "out.mp4"), (64, 48), 10.0)
for index in range(100):  # 10 s of recording; after 5 s another program leaves 64 KiB free
    if index == 50:
        free = os.statvfs(disk)
        (disk / "other.bin").write_bytes(bytes(free.f_bavail * free.f_frsize - (64 << 10)))
    display.show(np.full((48, 64, 3), index % 250, np.uint8), index / 10)
display.close()
"""


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_disk_filled_by_another_program_between_two_looks_says_the_file_may_not_play(tmp_path):
    """Another program filled the disk faster than a frame, to under FFmpeg's 256 KiB block: a write of the
    recording had most likely failed already (in a review's run, 3 MB at a time, 0 KiB was left and the .mp4
    played no frame), yet the WARNING said "its file closed with what it holds", as if it played. It now says
    the file may be cut short and not play. Here the other program fills the disk between two frames, so
    that no look can win the race."""
    said = disk_full_said_once(tmp_path, "4m", DISK_FILLED_BETWEEN_TWO_FRAMES, "out.mp4")
    assert "a write of it has most likely failed already: its file may be cut short and not play" in said
    assert "closed with what it holds" not in said, said


def test_a_recording_file_the_writer_creates_later_is_watched_from_then(tmp_path, caplog):
    """The watch asserted that the writer had created the file at open, which FFmpeg does and another OpenCV
    backend need not: an AssertionError at start. The file is now watched once it is there, and its absence
    before is no problem."""
    from device.display.room import RoomWatch

    out = tmp_path / "out.avi"
    with caplog.at_level("INFO", logger="device.display"):
        watch = RoomWatch(out, frame_bytes=64 * 48 * 3)
        watch.check()  # not there yet
        out.write_bytes(b"first frames")
        watch.check()
        watch.check()
        out.unlink()
        watch.check()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if f"recording {out}" in r.getMessage()]
    assert [level for level, _ in said] == ["WARNING"], said
    assert "removed or replaced while recording" in said[0][1], said


FULL_DISK_MP4 = """
import logging, sys
from pathlib import Path
import cv2
import numpy as np
from device.config import DisplayConfig
from device.display.display import VideoFileDisplay

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
out, (width, height, fps, busy, count, quiet, quiet_px) = Path(sys.argv[1]), map(int, sys.argv[2:])
display = VideoFileDisplay(DisplayConfig(backend="video", video_path=out), (width, height), float(fps))
rng = np.random.default_rng(0)
frame = np.full((height, width, 3), 128, np.uint8)
for index in range(count):  # a patch of noise in a grey frame: its size sets the bytes a frame
    patch = quiet_px if index < quiet else busy  # a quiet scene first, then a busy one
    frame[:patch, :patch] = rng.integers(0, 255, (patch, patch, 3), np.uint8)
    display.show(frame.copy(), index / fps)
display.close()
capture = cv2.VideoCapture(str(out))
frames = 0
while capture.read()[0]:
    frames += 1
print("plays", frames, "of", out.stat().st_size, "bytes")
"""


def record_on_small_disk(
    tmp_path: Path,
    size: str,
    frame_size: tuple[int, int],
    fps: int,
    busy_px: int,
    frames: int,
    quiet: tuple[int, int] = (0, 0),
    through_link: bool = False,
) -> tuple[list[str], int, int]:
    """Record ``frames`` frames to an .mp4 on a tmpfs of ``size`` (e.g. "2m") of our own (``unshare -rm``),
    a ``busy_px`` square of noise in each, after ``quiet`` (frames, px) of a smaller one, ``through_link``: to
    a link on ``tmp_path``'s disk to the .mp4 on the tmpfs: the lines logged about the recording, how many
    frames the file plays and its bytes."""

    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out.mp4"
    if through_link:
        out = tmp_path / "link.mp4"
        out.symlink_to(disk / "out.mp4")
    sizes = [*frame_size, fps, busy_px, frames, *quiet]
    result = run_on_tmpfs(disk, size, FULL_DISK_MP4, str(out), *map(str, sizes))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "Failed to write frame" not in result.stderr, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if f"recording {out}" in line]
    plays = result.stdout.split()
    return said, int(plays[-4]), int(plays[-2])


def room_asked_bytes(frame_size: tuple[int, int], frames: int) -> int:
    """The room a recording of ``frame_size`` (width, height) frames asks for at its look after ``frames``
    frames: FFmpeg's block, the next frame raw (BGR) and the index of its frames (``RoomWatch``). A recording
    stops with less than this left, and takes all the rest: closed, its file is longer than the room it had
    less this (and a 4 KiB page of tmpfs)."""
    from device.const import RECORDING_INDEX_BYTES_PER_FRAME, RECORDING_MIN_ROOM_BYTES

    width, height = frame_size
    return RECORDING_MIN_ROOM_BYTES + width * height * 3 + RECORDING_INDEX_BYTES_PER_FRAME * (frames + 1)


def stopped_near_full(said: list[str], size: int, disk_bytes: int, frame_size: tuple[int, int], frames: int):
    """The recording said once that its disk of ``disk_bytes`` was full, before a write of it failed, and
    its file (``size`` bytes, ``frames`` frames) took all the room it safely could."""
    assert len(said) == 1 and said[0].startswith("WARNING") and "its disk is (nearly) full (" in said[0], said
    assert "the recording stops here" in said[0] and "(0 KiB free" not in said[0], said
    assert disk_bytes - room_asked_bytes(frame_size, frames) - 4096 < size < disk_bytes, (size, frames)


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_recording_stopped_by_a_full_disk_is_closed_and_plays(tmp_path):
    """Frames went on to OpenCV's writer after the full disk's WARNING: FFmpeg wrote nothing more once a write
    had failed, each frame was encoded for nothing and said "Failed to write frame" on stderr (OpenCV's own
    line, which the daemon shows at log.level = debug), and the .mp4, cut off by that write, had no index: it
    played no frame at all. The recording now stops at the WARNING, its writer closed while the disk still
    has room: the .mp4 plays up to there."""
    # 90 s at 10 fps, about 2.4 KiB a frame: 2.1 MiB on a 2 MiB disk
    said, frames, size = record_on_small_disk(tmp_path, "2m", (320, 240), 10, 48, 900)
    # it stops with under 492 KiB left (FFmpeg's block, a raw 320x240 frame of 225 KiB, the index): at 742
    # frames, 1796 KiB
    stopped_near_full(said, size, 2 << 20, (320, 240), frames)
    assert 600 < frames < 900, frames


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_recording_writing_more_than_the_minimum_room_between_two_looks_stops_in_time(tmp_path):
    """A recording writing more than RECORDING_MIN_ROOM_BYTES (1 MiB) in the 5 s between two looks (a busy
    640x480 scene at 30 fps: 8.5 MiB) filled the disk between them: the look found '0 KiB free', after
    FFmpeg's write had failed, and the .mp4, cut off there, played no frame. The room is now looked at after
    every frame, for room for the most the next frame can write, so the recording stops while it still
    fits."""
    # 30 s at 30 fps, about 58 KiB a frame: 52 MiB on a 32 MiB disk
    said, frames, size = record_on_small_disk(tmp_path, "32m", (640, 480), 30, 240, 900)
    # it stops with under 1164 KiB left (a raw 640x480 frame is 900 KiB): at 547 frames, 31784 KiB
    stopped_near_full(said, size, 32 << 20, (640, 480), frames)


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_recording_that_starts_on_a_nearly_full_disk_stops_before_its_first_5_s_fill_it(tmp_path):
    """The room a look asks for was measured by what the file grew between two looks, and there was none
    before the first: the look after the first frame asked for RECORDING_MIN_ROOM_BYTES (1 MiB), and the next
    came 5 s later. A busy 640x480 scene at 30 fps writes 8.5 MiB in those 5 s: on a disk with 4 MiB free it
    filled the disk, FFmpeg's write failed, and the .mp4, cut off there, played no frame. The room is now
    looked at after every frame, so the recording stops within its first frames."""
    # 10 s at 30 fps, about 58 KiB a frame: 8.5 MiB in 5 s, on a 4 MiB disk
    said, frames, size = record_on_small_disk(tmp_path, "4m", (640, 480), 30, 240, 300)
    # stopped before its first 5 s (150 frames), with under 1156 KiB left: at 54 frames, 3126 KiB
    stopped_near_full(said, size, 4 << 20, (640, 480), frames)
    assert frames < 150, frames


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_busy_scene_after_a_quiet_one_stops_in_time(tmp_path):
    """The room a look asked for was twice the file's growth a frame measured so far, for the frames up to a
    look set by that measure: a quiet scene (an empty room at night: 2.6 KiB a frame at 640x480) set the
    next look 150 frames later asking 1 MiB, and a busy one (people in the morning: 160 KiB a frame)
    filled the disk before it; FFmpeg's write failed ("Failed to write frame") and the .mp4 played no frame.
    What a frame writes cannot be foreseen from the frames before: the room is now looked at after every
    frame, asking for the most the next one can write, its raw size."""
    # 100 quiet frames fill FFmpeg's first 256 KiB block, then 200 busy ones: 31 MiB on a 4 MiB disk
    said, frames, size = record_on_small_disk(tmp_path, "4m", (640, 480), 30, 400, 300, quiet=(100, 48))
    # it stops 18 frames into the busy scene, at 118 frames, 3194 KiB, and plays them all
    stopped_near_full(said, size, 4 << 20, (640, 480), frames)
    assert frames > 100, frames


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_recording_through_a_link_to_another_disk_watches_the_disk_the_frames_land_on(tmp_path):
    """A display.video_path that is a link to a file on another disk: the look took the room of the folder
    holding the link, a big disk, and never stopped the recording; the small disk the frames landed on
    filled, FFmpeg's write failed ("Failed to write frame", 790 times) and the .mp4 played no frame. The look
    now takes the room of the disk of the file the link points to."""
    # as test_a_busy_scene_after_a_quiet_one_stops_in_time, written through a link on tmp_path's disk
    said, frames, size = record_on_small_disk(
        tmp_path, "4m", (640, 480), 30, 400, 300, quiet=(100, 48), through_link=True
    )
    stopped_near_full(said, size, 4 << 20, (640, 480), frames)
    assert frames > 100, frames


LOOK_THROUGH_A_LINK = """
import os, sys
from pathlib import Path
from device.display.room import recording_problem
link, disk = Path(sys.argv[1]), Path(sys.argv[2])
(disk / "other.bin").write_bytes(bytes(3 << 20))  # another writer left 1 MiB of the 4 MiB free
print(recording_problem(link, None, room_bytes=2 << 20)[0])
"""


@pytest.mark.skipif(bool(unshare_denied()), reason=f"no tmpfs of our own: {unshare_denied()}")
def test_a_link_whose_file_is_not_written_yet_watches_the_disk_it_points_to(tmp_path):
    """Before the writer creates the file, a link to it on another disk is looked at on the disk of the
    folder it points into, not the link's own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    link = tmp_path / "link.mp4"
    link.symlink_to(disk / "out.mp4")  # its file is not there yet
    result = run_on_tmpfs(disk, "4m", LOOK_THROUGH_A_LINK, str(link), str(disk))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "disk full", result.stdout


def test_a_recording_not_written_yet_is_not_said_to_be_0_KiB(tmp_path):
    """A writer that creates its file only at its first write (FFmpeg creates it at open, another OpenCV
    backend need not), under a file size limit below the room a look asks for: the WARNING said "it is 0 KiB,
    within the 1024 KiB it may write before the next look of the file size limit", of a file not there."""
    said = look_under_file_size_limit(tmp_path / "clip.mp4", 512, written_kib=None, room_kib=1024)
    assert said == (
        "it is not written yet, and the 1024 KiB it may write before the next look exceed the file size "
        "limit of 524288 bytes (RLIMIT_FSIZE, systemd's LimitFSIZE=); raise the limit, then restart moodcast "
        "to record again; the recording stops here, its file closed with what it holds"
    )


def test_a_recording_at_its_file_size_limit_says_it_reached_it(tmp_path):
    """A file already at the limit (a burst of frames wrote it full between two looks) was said to be
    "within the 256 KiB it may write before the next look of the file size limit": that wording is for a file
    still short of it; one that reached it says so."""
    said = look_under_file_size_limit(tmp_path / "clip.mp4", 300, written_kib=300, room_kib=256)
    assert said == (
        "it reached the file size limit of 307200 bytes (RLIMIT_FSIZE, systemd's LimitFSIZE=); raise the "
        "limit, then restart moodcast to record again; the recording stops here, but with under FFmpeg's 256 "
        "KiB block left a write of it has most likely failed already: its file may be cut short and not play"
    )


LOOK_UNDER_FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from device.display.room import _identity, recording_problem
path, (limit_kib, written_kib, room_kib) = Path(sys.argv[1]), map(int, sys.argv[2:])
if written_kib >= 0:
    path.write_bytes(bytes(written_kib * 1024))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kib * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
print(recording_problem(path, _identity(path), room_bytes=room_kib * 1024)[1])
"""


def look_under_file_size_limit(path: Path, limit_kib: int, written_kib: int | None, room_kib: int) -> str:
    """The words of ``recording_problem`` for the recording at ``path``, holding ``written_kib`` KiB (None:
    not written yet), under a file size limit of ``limit_kib`` KiB (in a process of its own, whose limit it
    is), a look asking for ``room_kib`` KiB."""
    import sys

    sizes = (limit_kib, -1 if written_kib is None else written_kib, room_kib)
    return subprocess.run(
        [sys.executable, "-c", LOOK_UNDER_FILE_SIZE_LIMIT, str(path), *map(str, sizes)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout.strip()
