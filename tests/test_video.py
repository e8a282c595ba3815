"""ferlite.video's checked opening of video files; ``ferlite demo --video/--camera`` on bad input, as real processes.

Every video here is written by the test with OpenCV (64x48, 10 frames), then cut, emptied or replaced. A file that
cannot be played is refused with one message naming the file, what it is and what was expected; the demo then exits
with one ``Error:`` line and leaves no annotated video, no CSV. A video that ends early is annotated as far as it
goes, noted, and its annotated copy is whole.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import console_script, offline_env

from ferlite.video import VIDEO_EXPECTED, frame_count, frame_shortfall, open_video

FRAMES, SIZE = 10, (64, 48)


def write_video(path: Path, fourcc: str, frames: int = FRAMES) -> Path:
    """A small synthetic clip (a bar sweeping right over a seeded noise patch) written with cv2.VideoWriter."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        frame[:, : 6 * i] = 200
        frame[10:30, 10:30] = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


def decoded_frames(cap) -> int:
    """How many frames an opened capture decodes to its end (then released)."""
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Whole clips (mp4v in MP4, MJPEG in AVI) and the same writers released without a frame."""
    root = tmp_path_factory.mktemp("clips")
    return {"mp4": write_video(root / "clip.mp4", "mp4v"), "avi": write_video(root / "clip.avi", "MJPG"),
            "mp4_empty": write_video(root / "none.mp4", "mp4v", 0),
            "avi_empty": write_video(root / "none.avi", "MJPG", 0)}


def cut_avi(whole: Path, dest: Path) -> Path:
    """``whole`` cut inside its 6th frame's chunk: a header announcing 10 frames, 5 whole frames, then nothing."""
    data = whole.read_bytes()
    chunks = [m.start() for m in re.finditer(b"00dc", data[data.index(b"movi"):])]
    start = data.index(b"movi") + chunks[5]
    dest.write_bytes(data[: start + 40])
    return dest


def bad_videos(clips: dict[str, Path], folder: Path) -> dict[str, tuple[Path, str]]:
    """Files that cannot be played, each with what open_video says of it."""
    whole = clips["mp4"].read_bytes()
    half, short = folder / "half.mp4", folder / "short.mp4"
    half.write_bytes(whole[: len(whole) // 2])
    short.write_bytes(whole[:300])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video, just text\n")
    return {
        "half": (half, f"truncated: the MP4 ends after {len(whole) // 2} bytes, inside its 'mdat' box, and it has no "
                       "'moov' box (the index a player needs)"),
        "short": (short, "truncated: the MP4 ends after 300 bytes, inside its 'mdat' box, and it has no 'moov' box "
                         "(the index a player needs)"),
        "no frames": (clips["mp4_empty"], "an MP4 without any track: no frame was ever written to it"),
        "empty": (folder / "empty.mp4", "the file is empty (0 bytes)"),
        "text": (folder / "notes.mp4", "not a video file OpenCV can decode"),
    }


def test_open_video_reads_a_whole_clip(clips):
    for kind in ("mp4", "avi"):
        cap = open_video(clips[kind])
        assert frame_count(cap) == FRAMES and decoded_frames(cap) == FRAMES


@pytest.mark.parametrize("case", ["half", "short", "no frames", "empty", "text"])
def test_open_video_refuses_a_file_that_cannot_be_played(clips, tmp_path, case):
    path, problem = bad_videos(clips, tmp_path)[case]
    with pytest.raises(ValueError) as err:
        open_video(path)
    assert str(err.value) == f"cannot open video {str(path)!r}: {problem} (expected {VIDEO_EXPECTED})"


def test_open_video_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        open_video(tmp_path / "gone.mp4")
    assert str(err.value) == (f"video file not found: {str(tmp_path / 'gone.mp4')!r} (expected a path to an existing "
                              "video file)")


def test_a_video_cut_after_some_frames_still_opens_and_ends_early(clips, tmp_path):
    cap = open_video(cut_avi(clips["avi"], tmp_path / "cut.avi"))
    assert frame_count(cap) == FRAMES  # its header still announces the whole clip
    assert 0 < decoded_frames(cap) < FRAMES
    cap = open_video(clips["avi_empty"])  # an AVI without frames opens: the demo says so when no frame comes
    assert frame_count(cap) == 0 and decoded_frames(cap) == 0


def test_frame_shortfall_wording():
    assert frame_shortfall("a.avi", 5, 10, 10) == ("frames 5 to 9 of video 'a.avi' could not be decoded (its header "
                                                   "announces 10): the file is truncated or corrupt there")
    assert frame_shortfall("a.avi", 0, 10, 10) == ("no frame could be decoded from video 'a.avi' (its header "
                                                   "announces 10; expected at least one readable frame)")
    assert frame_shortfall("a.avi", 0, 0, 0) == ("no frame could be decoded from video 'a.avi' (its header gives no "
                                                 "frame count; expected at least one readable frame)")
    assert frame_shortfall("a.avi", 0, 4, 10).startswith("frames 0 to 3 of video 'a.avi' could not be decoded")


# --- ferlite demo as a real process: the bundled LiteRT model and YuNet detector (no download) -----------------

@pytest.fixture
def demo(ferlite_home):
    """Run ``ferlite demo ARGS --no-display`` offline; return (exit code, stdout, stderr)."""
    env, cmd = offline_env(ferlite_home), console_script()

    def run(*args: str) -> tuple[int, str, str]:
        proc = subprocess.run([*cmd, "demo", *args, "--no-display"], capture_output=True,
                              text=True, env=env, timeout=300)
        return proc.returncode, proc.stdout, proc.stderr

    return run


def one_error(stderr: str) -> str:
    """The single ``Error:`` line of a failed command (OpenCV/FFmpeg may log lines of their own beside it)."""
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("Error:")]
    return line


@pytest.mark.parametrize("case", ["half", "short", "no frames", "empty", "text"])
def test_demo_refuses_a_bad_video_and_leaves_nothing(clips, tmp_path, demo, case):
    path, problem = bad_videos(clips, tmp_path)[case]
    out = tmp_path / "out"
    code, _, stderr = demo("--video", str(path), "--output", str(out), "--csv", str(tmp_path / "faces.csv"))
    assert code == 1
    line = one_error(stderr)
    assert line == f"Error: cannot open video {str(path)!r}: {problem} (expected {VIDEO_EXPECTED})"
    assert not out.exists() and not (tmp_path / "faces.csv").exists()


def test_demo_missing_video_is_a_usage_error(tmp_path, demo):
    code, _, stderr = demo("--video", str(tmp_path / "gone.mp4"))
    assert code == 2
    line = one_error(stderr)
    assert "'--video'" in line and str(tmp_path / "gone.mp4") in line and "does not exist" in line


def test_demo_video_without_frames_fails_and_leaves_nothing(clips, tmp_path, demo):
    out = tmp_path / "out"
    code, stdout, stderr = demo("--video", str(clips["avi_empty"]), "--output", str(out), "--csv",
                                str(tmp_path / "faces.csv"))
    assert code == 1 and "0 frame(s)" in stdout
    assert one_error(stderr) == (f"Error: no frame could be decoded from video {str(clips['avi_empty'])!r} (its header "
                                 "gives no frame count; expected at least one readable frame)")
    assert not out.exists() and not (tmp_path / "faces.csv").exists()


def test_demo_video_cut_short_is_noted_and_its_annotated_copy_is_whole(clips, tmp_path, demo):
    cut = cut_avi(clips["avi"], tmp_path / "cut.avi")
    out = tmp_path / "out"
    code, stdout, stderr = demo("--video", str(cut), "--output", str(out), "--csv", str(tmp_path / "faces.csv"))
    assert code == 0, stdout + stderr
    read = int(re.search(r"cut\.avi: (\d+) frame\(s\)", stdout).group(1))
    assert 0 < read < FRAMES
    assert (f"note: {read} frame(s) read; frames {read} to {FRAMES - 1} of video {str(cut)!r} could not be decoded "
            f"(its header announces {FRAMES}): the file is truncated or corrupt there") in stderr
    assert sorted(p.name for p in out.iterdir()) == ["cut_annotated.mp4"]  # no temporary beside it
    cap = open_video(out / "cut_annotated.mp4")
    assert frame_count(cap) == read and decoded_frames(cap) == read
    assert (tmp_path / "faces.csv").read_text().startswith("source,frame,face,")  # kept: the run succeeded


def test_demo_camera_that_does_not_exist(demo):
    code, _, stderr = demo("--camera", "99")
    assert code == 1
    assert one_error(stderr) == ("Error: cannot open camera 99: no camera at that index, or it is busy (try another "
                                 "--camera index, or --image, --video or --sample)")
