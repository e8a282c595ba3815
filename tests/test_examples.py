"""Each script in examples/ runs for real on small real inputs (astronaut photo, a short video, the FER+ sample).

examples/finetune_csv.py runs in tests/training/test_finetune.py, whose fine-tuning run it is."""

import csv

import numpy as np
import pytest
from conftest import REPO, load_script


def load_example(name):
    """Import examples/<name>.py as a module."""
    return load_script(REPO / "examples" / f"{name}.py")


@pytest.fixture
def astronaut_png(tmp_path):
    data = pytest.importorskip("skimage.data")
    import cv2

    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def test_predict_photo(astronaut_png, tmp_path, capsys):
    import cv2

    out = tmp_path / "annotated.png"
    results = load_example("predict_photo").main([str(astronaut_png), "--output", str(out)])
    assert len(results) == 1
    x, y, w, h = results[0]["box"]
    assert f"face 0: box x={x} y={y} w={w} h={h}  {results[0]['top']}" in capsys.readouterr().out
    annotated, original = cv2.imread(str(out)), cv2.imread(str(astronaut_png))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)


def test_video_loop(astronaut_png, tmp_path, capsys):
    import cv2

    video, out = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    frame = cv2.imread(str(astronaut_png))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 20, frame.shape[1::-1])
    for _ in range(10):
        writer.write(frame)
    writer.release()
    assert load_example("video_loop").main(["--video", str(video), "--output", str(out), "--max-frames", "8"]) == 8
    assert "8 frames in" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and cap.read()[1].shape == frame.shape
    cap.release()


def test_folder_to_csv(astronaut_png, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(astronaut_png.read_bytes())
    (folder / "broken.png").write_bytes(astronaut_png.read_bytes()[:100])
    (folder / "notes.txt").write_text("not an image\n")
    out = tmp_path / "emotions.csv"
    load_example("folder_to_csv").main([str(folder), "--output", str(out)])
    printed = capsys.readouterr().out
    assert "broken.png" in printed and "notes.txt" in printed and "2 file(s) skipped" in printed
    rows = list(csv.reader(open(out)))
    assert rows[0][:7] == ["file", "face", "x", "y", "w", "h", "score"] and len(rows[0]) == 7 + 9
    assert [r[:2] for r in rows[1:]] == [["a.png", "0"], ["b.png", "0"]]
    assert rows[1][2:] == rows[2][2:]  # same image, same result
    assert sum(map(float, rows[1][7:])) == pytest.approx(1.0, abs=1e-3)
