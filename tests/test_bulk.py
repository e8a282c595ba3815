"""Bulk annotation on a real local Ray (2 CPUs): Parquet rows against ``Recognizer.analyze``, bad files, videos, CLI.

One Ray runs for the whole module; its workers find the real BlazeFace file through FERLITE_HOME.
The pictures are scikit-image's astronaut at several scales (one picture holds two faces), a blank
image, a truncated PNG and a text file, written here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferlite.bulk import annotate, resolve_inputs
from ferlite.cli import main
from ferlite.recognizer import Recognizer

ray = pytest.importorskip("ray", reason="Ray is the optional bulk extra: pip install 'ferlite[bulk]'")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with ray[data]")
cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data", reason="the test pictures are scikit-image's astronaut")

BAD = ("corrupt.png", "notes.txt")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local 2-CPU Ray for the module; its workers' FERLITE_HOME is empty (the detector comes from the package)."""
    home = tmp_path_factory.mktemp("ray_home")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"FERLITE_HOME": str(home)}})
    yield
    ray.shutdown()


def _scaled(scale: float) -> np.ndarray:
    img = skimage_data.astronaut()
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else img


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Astronaut at 1.0 (PNG), 0.6 (JPEG), 1.5 (PNG), two faces side by side, a blank, a corrupt PNG, a .txt."""
    folder = tmp_path_factory.mktemp("photos")
    face = skimage_data.astronaut()[30:330, 80:380]
    small = cv2.resize(face, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    pair = np.concatenate([face, np.pad(small, ((0, 300 - small.shape[0]), (0, 0), (0, 0)))], axis=1)
    for name, rgb in (("astro_1.0.png", _scaled(1.0)), ("astro_0.6.jpg", _scaled(0.6)),
                      ("astro_1.5.png", _scaled(1.5)), ("pair.png", pair),
                      ("blank.png", np.full((240, 320, 3), 128, np.uint8))):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    png = (folder / "astro_1.0.png").read_bytes()
    (folder / "corrupt.png").write_bytes(png[:len(png) // 3])
    (folder / "notes.txt").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def annotated(local_ray, photos, tmp_path_factory):
    """One run over the photo folder: (summary, table)."""
    out = tmp_path_factory.mktemp("out") / "faces.parquet"
    summary = annotate(photos, out, detector="yunet", num_actors=2, batch_size=2)
    return summary, pq.read_table(out)


def _rows(table, source: str, frame: int = 0) -> list[dict]:
    return [r for r in table.to_pylist() if r["source"] == source and r["frame"] == frame]


def _assert_same(rows: list[dict], results: list[dict], classes) -> None:
    assert len(rows) == len(results)
    for i, (row, r) in enumerate(zip(rows, results)):
        assert row["face"] == i and row["error"] is None
        assert (row["x"], row["y"], row["w"], row["h"]) == tuple(r["box"])
        assert row["score"] == pytest.approx(r["score"], abs=1e-6)
        np.testing.assert_allclose([row[c] for c in classes], [r["emotions"][c] for c in classes], atol=1e-5)


@pytest.mark.slow
def test_rows_equal_analyze_image_by_image(annotated, photos):
    summary, table = annotated
    rec = Recognizer.from_pretrained(detector="yunet")
    assert table.column_names == ["source", "frame", "face", "x", "y", "w", "h", "score", *rec.classes, "error"]
    n_faces = 0
    for name in ("astro_0.6.jpg", "astro_1.0.png", "astro_1.5.png", "pair.png"):
        results = rec.analyze(photos / name)
        assert results, f"the detector found no face in {name}"
        _assert_same(_rows(table, str(photos / name)), results, rec.classes)
        n_faces += len(results)
    assert len(_rows(table, str(photos / "pair.png"))) == 2  # both astronauts, the larger first
    assert summary.faces == n_faces == table.num_rows - len(BAD)
    assert table.column("source").to_pylist() == sorted(table.column("source").to_pylist())  # input order kept


@pytest.mark.slow
def test_bad_files_counted_never_fatal(annotated, photos):
    summary, table = annotated
    assert (summary.inputs, summary.images, summary.frames) == (7, 5, 0)
    assert (summary.unreadable, summary.no_face) == (2, 1)  # corrupt.png + notes.txt; blank.png
    assert not _rows(table, str(photos / "blank.png"))
    for name in BAD:
        (row,) = _rows(table, str(photos / name))
        assert row["face"] == -1 and "is not a readable image" in row["error"] and name in row["error"]
        assert row["x"] is None and row["neutral"] is None
    assert summary.to_json()["output"].endswith("faces.parquet") and json.dumps(summary.to_json())


@pytest.mark.slow
def test_existing_output_refused_unless_overwrite(local_ray, photos, tmp_path):
    out = tmp_path / "faces.parquet"
    out.write_bytes(b"earlier results")
    with pytest.raises(FileExistsError, match=r"faces\.parquet.*--overwrite \(overwrite=True\)"):
        annotate(photos / "astro_1.0.png", out, detector="yunet")
    assert out.read_bytes() == b"earlier results"
    summary = annotate(photos / "astro_1.0.png", out, detector="yunet", overwrite=True)
    assert (summary.inputs, summary.images, summary.faces) == (1, 1, 1)
    assert pq.read_table(out).num_rows == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.parquet"]  # no temporary file left


@pytest.mark.slow
def test_failed_job_leaves_no_file(local_ray, photos, tmp_path):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"not a flatbuffer")
    out = tmp_path / "out" / "faces.parquet"
    with pytest.raises(RuntimeError, match=r"(?s)the Ray job failed; nothing was written.*not a valid \.tflite"):
        annotate(photos, out, model=bogus, detector="yunet", num_actors=1)
    assert list(out.parent.iterdir()) == []  # the temporary file beside the output is gone too


@pytest.mark.slow
def test_video_frames_indexed(local_ray, tmp_path):
    video = tmp_path / "clip.mp4"
    base = cv2.cvtColor(_scaled(0.5), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (base.shape[1], base.shape[0]))
    for i in range(7):
        writer.write(np.roll(base, 6 * i, axis=1))  # the face moves: every frame has its own box
    writer.release()
    summary = annotate(video, tmp_path / "video.parquet", detector="yunet", num_actors=2, batch_size=3)
    table = pq.read_table(tmp_path / "video.parquet")
    assert (summary.inputs, summary.images, summary.frames, summary.unreadable) == (1, 0, 7, 0)
    rec = Recognizer.from_pretrained(detector="yunet")
    cap = cv2.VideoCapture(str(video))
    for frame in range(7):  # ranges [0, 3), [3, 6), [6, 7): seeking past key frames lands on the right ones
        ok, bgr = cap.read()
        assert ok
        _assert_same(_rows(table, str(video), frame), rec.analyze(bgr, color="bgr"), rec.classes)
    cap.release()
    assert table.column("frame").to_pylist() == list(range(7))


def test_resolve_inputs(tmp_path):
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    assert resolve_inputs(tmp_path) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.png")]  # sorted, files only
    assert resolve_inputs(tmp_path / "**" / "*.png") == [str(tmp_path / "b.png"), str(tmp_path / "sub" / "c.png")]
    listing = tmp_path / "sub" / "list.txt"
    listing.write_text("c.png\n\n../a.jpg\nmissing.png\n")
    assert resolve_inputs(listing) == [str(tmp_path / "sub" / "c.png"), os.path.abspath(tmp_path / "a.jpg"),
                                       str(tmp_path / "sub" / "missing.png")]  # missing: an unreadable input
    assert resolve_inputs(tmp_path / "b.png") == [str(tmp_path / "b.png")]
    with pytest.raises(FileNotFoundError, match=r"input not found: .*nope.*expected a folder, a glob pattern"):
        resolve_inputs(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"glob pattern .*\*\.webp.* matches no file"):
        resolve_inputs(tmp_path / "*.webp")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        resolve_inputs(tmp_path / "empty")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="path list .* is empty"):
        resolve_inputs(tmp_path / "blank.txt")


def test_bad_options_fail_before_ray(tmp_path):
    with pytest.raises(ValueError, match="unknown detector 'blaze'"):
        annotate(tmp_path, tmp_path / "o.parquet", detector="blaze")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        annotate(tmp_path, tmp_path / "o.parquet", batch_size=0)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        annotate(tmp_path, tmp_path)


def test_import_does_not_import_ray():
    code = "import sys, ferlite, ferlite.bulk, ferlite.cli; print(sorted(m for m in sys.modules if m == 'ray' " \
           "or m.startswith(('ray.', 'pyarrow'))))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_without_ray_the_cli_says_what_to_install(photos, tmp_path):
    code = ("import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
            "from ferlite.cli import main\n"
            "main(['bulk', sys.argv[1], '-o', sys.argv[2]])")
    r = subprocess.run([sys.executable, "-c", code, str(photos), str(tmp_path / "o.parquet")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and 'pip install "ferlite[bulk]"' in r.stderr, r.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.slow
def test_cli_json_and_refusal(local_ray, photos, tmp_path):
    out = tmp_path / "cli.parquet"
    args = ["bulk", str(photos / "*.png"), "--output", str(out), "--detector", "yunet", "--actors", "1", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("inputs", "images", "unreadable", "no_face")} == \
        {"inputs": 5, "images": 4, "unreadable": 1, "no_face": 1}
    assert summary["faces"] == pq.read_table(out).num_rows - 1 and summary["output"] == str(out)
    assert summary["detector"] == "yunet"
    again = CliRunner().invoke(main, args[:-1])
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output


@pytest.mark.slow
def test_console_script_starts_and_stops_its_own_ray(photos, tmp_path):
    """Without a running Ray, `ferlite bulk` starts a local one and shuts it down; auto finds MediaPipe here."""
    exe = Path(sys.executable).parent / "ferlite"
    out = tmp_path / "one.parquet"
    r = subprocess.run([str(exe), "bulk", str(photos / "astro_1.0.png"), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "1 input(s): 1 image(s) and 0 video frame(s) read, 0 unreadable, 0 without a face" in r.stdout
    assert f"1 face(s) written to {out}" in r.stdout and "(detector: yunet)" in r.stdout
    assert pq.read_table(out).num_rows == 1
