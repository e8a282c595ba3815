"""``ferlite demo`` on real photos, folders and a video written with OpenCV; the tracking/smoothing helpers."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import console_script, offline_env

from ferlite.cli import main
from ferlite.video import EmotionSmoother, ResultWriter, box_iou

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
CLASSES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown"]


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), skdata.astronaut()[..., ::-1])
    return path


def demo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["demo", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_demo_image_writes_csv_jsonl_and_annotated_png(tmp_path, tiny_model_path, astronaut_png):
    out = tmp_path / "out"
    code, stdout, stderr = demo("--image", str(astronaut_png), "--model", str(tiny_model_path), "--no-display",
                                "--output", str(out), "--csv", str(tmp_path / "r" / "faces.csv"),
                                "--jsonl", str(tmp_path / "faces.jsonl"))
    assert code == 0, stdout + stderr
    assert "detector yunet" in stdout and "astronaut.png: 1 face(s)" in stdout
    (row,) = read_csv(tmp_path / "r" / "faces.csv")
    assert list(row) == ["source", "frame", "face", "x", "y", "w", "h", "score", "top", *CLASSES]
    assert row["source"] == str(astronaut_png) and row["frame"] == "0"
    assert np.allclose([int(row[k]) for k in "xywh"], (181, 66, 86, 113), atol=3)  # YuNet, the default detector
    assert sum(float(row[c]) for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
    (line,) = (tmp_path / "faces.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert rec["box"] == [int(row[k]) for k in "xywh"] and rec["top"] == row["top"] and list(rec["emotions"]) == CLASSES
    annotated = cv2.imread(str(out / "astronaut_annotated.png"))
    original = cv2.imread(str(astronaut_png))
    assert annotated.shape == original.shape and (annotated != original).any()
    assert f"annotated image: {out / 'astronaut_annotated.png'}" in stdout
    assert "1 face record(s) written to" in stdout


def test_demo_image_dir_skips_and_counts_bad_files(tmp_path, tiny_model_path, astronaut_png,
                                                    ferplus_valid):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(astronaut_png, folder / "a_astronaut.png")
    shutil.copy(sorted(ferplus_valid.glob("*.png"))[0], folder / "b_fer.png")
    (folder / "c_corrupt.png").write_bytes(astronaut_png.read_bytes()[:60])
    (folder / "d_notes.txt").write_text("not an image\n")
    code, stdout, stderr = demo("--image-dir", str(folder), "--model", str(tiny_model_path), "--no-display",
                                "--csv", str(tmp_path / "faces.csv"))
    assert code == 0, stdout + stderr
    assert "2 image(s) read, 2 skipped" in stdout
    assert "skipped" in stderr and "c_corrupt.png" in stderr and "d_notes.txt" in stderr
    rows = read_csv(tmp_path / "faces.csv")
    assert [r["source"] for r in rows].count(str(folder / "a_astronaut.png")) == 1


def test_demo_dir_with_nothing_readable_fails_and_leaves_no_files(tmp_path, tiny_model_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    (folder / "y.txt").write_text("text")
    code, stdout, stderr = demo("--image-dir", str(folder), "--model", str(tiny_model_path),
                                "--no-display", "--csv", str(tmp_path / "faces.csv"), "--output", str(tmp_path / "o"))
    assert code == 1
    assert "0 image(s) read, 2 skipped" in stdout and "no image could be read" in stderr
    assert not (tmp_path / "faces.csv").exists() and not (tmp_path / "o").exists()


def astronaut_clip(path: Path, frames: int) -> Path:
    """An MJPEG AVI of astronaut() drifting right by 4 px a frame, written with OpenCV."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 512))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.ascontiguousarray(np.roll(skdata.astronaut(), 4 * i, axis=1)[..., ::-1]))
    writer.release()
    return path


def test_demo_video_with_smoothing(tmp_path, tiny_model_path):
    video = astronaut_clip(tmp_path / "clip.avi", 6)
    out = tmp_path / "out"
    code, stdout, stderr = demo("--video", str(video), "--model", str(tiny_model_path), "--smooth", "--no-display",
                                "--output", str(out), "--csv", str(tmp_path / "v.csv"), "--jsonl",
                                str(tmp_path / "v.jsonl"))
    assert code == 0, stdout + stderr
    assert "6 frame(s), 6 face(s)" in stdout and "FPS end to end" in stdout
    rows = read_csv(tmp_path / "v.csv")
    assert [int(r["frame"]) for r in rows] == list(range(6))
    xs = [int(r["x"]) for r in rows]
    assert xs[-1] - xs[0] == pytest.approx(20, abs=10)  # the boxes follow the face
    assert len((tmp_path / "v.jsonl").read_text().splitlines()) == 6
    cap = cv2.VideoCapture(str(out / "clip_annotated.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 6
    code, stdout, _ = demo("--video", str(video), "--model", str(tiny_model_path), "--no-display", "--max-frames", "2")
    assert code == 0 and "2 frame(s)" in stdout


def test_demo_sample_readme_command_offline(tmp_path, ferlite_home):
    """The README's first command, as a real process, on a fresh cache with no network: the bundled model and the
    bundled YuNet detector, nothing downloaded into the cache."""
    proc = subprocess.run([*console_script(), "demo", "--sample", "--no-display", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=offline_env(ferlite_home), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "model ferplus-mfn-1.0-fp16.tflite" in proc.stdout and "detector yunet, balance 0.7" in proc.stdout
    assert "Error" not in proc.stderr and "Warning" not in proc.stderr
    assert "astronaut: 1 face(s)" in proc.stdout and "1 image(s) read, 0 skipped, 1 face(s) found" in proc.stdout
    assert (tmp_path / "out" / "astronaut_annotated.png").is_file()
    assert [p for p in ferlite_home.rglob("*") if p.is_file()] == []  # nothing fetched: every file was bundled


def test_demo_notes_missing_display(monkeypatch, tmp_path, tiny_model_path, astronaut_png):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, stdout, stderr = demo("--image", str(astronaut_png), "--model", str(tiny_model_path))
    assert code == 0, stdout + stderr
    assert "no display available" in stderr and "continuing as with --no-display" in stderr


def test_demo_sample_without_scikit_image(monkeypatch, tiny_model_path):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    code, _, stderr = demo("--sample", "--model", str(tiny_model_path), "--no-display")
    assert code == 1 and "pip install scikit-image" in stderr


def test_demo_errors(tmp_path, tiny_model_path, astronaut_png):
    code, _, stderr = demo("--no-display")
    assert code == 2 and "give a source: SOURCE paths (images, videos, folders), --image FILE" in stderr
    code, _, stderr = demo("--camera", "0", "--sample", str(astronaut_png))
    assert code == 2 and f"--camera 0 streams until you quit: give it alone, without {astronaut_png}, --sample" \
        in stderr
    code, _, stderr = demo("--image", str(tmp_path / "missing.png"))
    assert code == 2 and "does not exist" in stderr
    code, _, stderr = demo("--camera", "99", "--model", str(tiny_model_path), "--no-display")
    assert code == 1 and "cannot open camera 99" in stderr
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    code, _, stderr = demo("--video", str(fake), "--model", str(tiny_model_path),
                           "--no-display", "--csv", str(tmp_path / "v.csv"))
    assert code == 1 and "cannot open video" in stderr and not (tmp_path / "v.csv").exists()
    code, _, stderr = demo("--sample", "--model", str(tmp_path / "nope.keras"), "--no-display")
    assert code == 1 and "nope.keras" in stderr


def test_demo_annotates_every_source_given(tmp_path, astronaut_png, ferplus_valid):
    """Repeated --image, then paths as arguments (a folder, a video), each annotated in that order. (A second --image
    used to replace the first without a word.) An image given twice gets a second annotated file, not the first's."""
    photos = tmp_path / "photos"
    photos.mkdir()
    mirrored = photos / "mirrored.jpg"
    assert cv2.imwrite(str(mirrored), np.ascontiguousarray(skdata.astronaut()[:, ::-1, ::-1]))
    fer = photos / "fer.png"  # a real 48x48 FER+ face
    shutil.copy(sorted(ferplus_valid.glob("*.png"))[0], fer)
    video = astronaut_clip(tmp_path / "clip.avi", 3)
    out = tmp_path / "out"
    code, stdout, stderr = demo("--image", str(astronaut_png), "--image", str(mirrored), str(photos), str(video),
                                "--no-display", "--output", str(out), "--csv", str(tmp_path / "faces.csv"))
    assert code == 0, stdout + stderr
    images = [str(astronaut_png), str(mirrored), str(fer), str(mirrored)]  # --image twice, then the folder's files
    assert [line.split(": ")[0] for line in stdout.splitlines() if " face(s)" in line and ": " in line] == \
        [*images, str(video)]
    assert "4 image(s) read, 0 skipped" in stdout and f"{video}: 3 frame(s), 3 face(s)" in stdout
    rows = read_csv(tmp_path / "faces.csv")
    by_source = {name: [r for r in rows if r["source"] == name] for name in (*images, str(video))}
    assert len(by_source[str(astronaut_png)]) == 1 and len(by_source[str(mirrored)]) == 2
    assert [int(r["frame"]) for r in by_source[str(video)]] == [0, 1, 2]
    (x, w), (x_mirrored, w_mirrored) = ((int(r["x"]), int(r["w"])) for r in
                                        (by_source[str(astronaut_png)][0], by_source[str(mirrored)][0]))
    # each photo analysed, not one of them twice: the mirrored face's centre is the mirror of the other's (within
    # 10 px: a turned head's box is not symmetric), 64 px from where the unmirrored face's centre is
    assert abs((x_mirrored + w_mirrored / 2) - (512 - (x + w / 2))) <= 10
    assert by_source[str(mirrored)][0]["x"] == by_source[str(mirrored)][1]["x"]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_annotated.png", "clip_annotated.mp4",
                                                    "fer_annotated.png", "mirrored_annotated.png",
                                                    "mirrored_jpg_annotated.png"]
    assert np.array_equal(cv2.imread(str(out / "mirrored_annotated.png")),
                          cv2.imread(str(out / "mirrored_jpg_annotated.png")))


def test_demo_folders_and_repeated_image_dirs(tmp_path, astronaut_png):
    """--image-dir repeated: every folder's files; the same file name in three folders gives three annotated files."""
    folders = [tmp_path / name for name in ("a", "b", "c")]
    for folder in folders:
        folder.mkdir()
        shutil.copy(astronaut_png, folder / "photo.png")
    (folders[2] / "notes.txt").write_text("not an image\n")
    out = tmp_path / "out"
    args = [arg for folder in folders for arg in ("--image-dir", str(folder))]
    code, stdout, stderr = demo(*args, "--no-display", "--output", str(out))
    assert code == 0, stdout + stderr
    assert "3 image(s) read, 1 skipped, 3 face(s) found" in stdout and "notes.txt" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["photo_annotated.png", "photo_png_2_annotated.png",
                                                    "photo_png_annotated.png"]


def test_demo_refuses_an_unplayable_video_among_sources_before_annotating(tmp_path, astronaut_png):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video, just text\n")
    out = tmp_path / "out"
    code, stdout, stderr = demo(str(astronaut_png), str(fake), "--no-display", "--output", str(out), "--csv",
                                str(tmp_path / "faces.csv"))
    assert code == 1 and f"cannot open video {str(fake)!r}" in stderr
    assert str(astronaut_png) not in stdout  # refused before the model loaded: nothing annotated, nothing written
    assert not out.exists() and not (tmp_path / "faces.csv").exists()


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def face(box, p_happy: float) -> dict:
    emotions = {"neutral": 1 - p_happy, "happiness": p_happy}
    return {"box": box, "score": 0.9, "keypoints": [], "emotions": emotions, "top": max(emotions, key=emotions.get)}


def test_smoother_tracks_faces_by_overlap():
    sm = EmotionSmoother(alpha=0.5, max_missing=1)
    first = sm.update([face((0, 0, 100, 100), 1.0), face((300, 0, 100, 100), 0.0)])
    assert [f["emotions"]["happiness"] for f in first] == [1.0, 0.0]
    second = sm.update([face((310, 5, 100, 100), 1.0), face((5, 0, 100, 100), 0.0)])
    assert second[0]["box"] == (310, 5, 100, 100) and second[0]["emotions"]["happiness"] == pytest.approx(0.5)
    assert second[1]["emotions"]["happiness"] == pytest.approx(0.5) and second[1]["top"] in ("neutral", "happiness")
    third = sm.update([face((600, 300, 80, 80), 1.0)])  # a new face far away: not smoothed
    assert third[0]["emotions"]["happiness"] == 1.0
    assert len(sm.tracks) == 3  # the two old tracks survive one missing frame
    sm.update([])
    sm.update([])
    assert sm.tracks == []
    with pytest.raises(ValueError, match="alpha"):
        EmotionSmoother(alpha=0)


def test_result_writer_discard_leaves_nothing(tmp_path):
    w = ResultWriter(["neutral", "happiness"], csv_path=tmp_path / "a.csv", jsonl_path=tmp_path / "b.jsonl")
    w.write("x", 0, [face((1, 2, 3, 4), 0.25)])
    assert (tmp_path / "a.csv").read_text().count("\n") == 2
    w.discard()
    assert list(tmp_path.iterdir()) == []
