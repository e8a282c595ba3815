"""ferlite-eval / ferlite eval: JSON and human output, plots, bad data, the default model, a folder per class."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import copy_split, majority_class_folder, paste_into_scene

from ferlite.cli import eval_main, main

JSON_KEYS = {"n", "mae", "top1", "class_mae", "major8_acc", "major8_n", "kl", "model", "data", "confusion_matrix",
             "skipped"}


def seed9_count(folder: Path) -> int:
    """Faces of a FER+ folder with at least one vote among the first nine classes, counted from label.csv."""
    with open(folder / "label.csv", newline="") as f:
        return sum(sum(map(int, row[2:11])) > 0 for row in csv.reader(f))


def run_eval(*args: str):
    result = CliRunner().invoke(eval_main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def folder_with_nf_face(valid_subset) -> Path:
    """The 200-face subset plus one real face whose only votes are NF (seed9 drops it)."""
    first = (valid_subset / "label.csv").read_text().splitlines()[0].split(",")[0]
    shutil.copy(valid_subset / first, valid_subset / "nf_only.png")
    with open(valid_subset / "label.csv", "a") as f:
        f.write('nf_only.png,"(0, 0, 48, 48)",0,0,0,0,0,0,0,0,0,10\n')
    return valid_subset


def test_console_script_json_is_one_object_equal_to_library(tiny_model_path, folder_with_nf_face, tmp_path):
    from ferlite.evaluate import evaluate

    script = Path(sys.executable).parent / "ferlite-eval"
    plots = tmp_path / "plots"
    proc = subprocess.run([str(script), "--data", str(folder_with_nf_face), "--model", str(tiny_model_path),
                           "--json", "--plots", str(plots), "--batch-size", "64"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole of stdout is exactly one JSON object
    assert isinstance(out, dict) and JSON_KEYS <= set(out)
    assert out["n"] == seed9_count(folder_with_nf_face) == 200
    assert (out["rows"], out["faces"], out["dropped"], out["skipped"]) == (201, 201, 1, 0)
    assert set(out["class_mae"]) == set(out["classes"]) and len(out["classes"]) == 9
    assert sum(map(sum, out["confusion_matrix"])) == out["n"]
    for name in ("confusion_matrix.png", "class_mae.png"):
        assert cv2.imread(str(plots / name)) is not None, name
    assert "wrote" in proc.stderr

    lib = evaluate(str(tiny_model_path), folder_with_nf_face).to_json()
    assert lib.keys() == out.keys()
    for key, value in lib.items():
        if isinstance(value, float):
            assert out[key] == pytest.approx(value, rel=1e-5), key
        elif key == "class_mae":
            assert out[key] == pytest.approx(value, rel=1e-5)
        else:
            assert out[key] == value, key


def test_human_report_and_group_command(tiny_model_path, valid_subset):
    result = run_eval("--data", valid_subset, "--model", tiny_model_path)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for needle in ("Top result accuracy:", "Class-wise MAE:", "Total MAE:", "major8 accuracy", "KL(target",
                   "200 rows, 0 skipped as bad, 200 read, 200 scored", "Confusion matrix"):
        assert needle in text, needle
    via_group = CliRunner().invoke(main, ["eval", "--help"])
    assert via_group.exit_code == 0 and "--skip-bad" in via_group.stdout


def test_missing_label_csv_and_missing_model(tiny_model_path, tmp_path):
    result = run_eval("--data", tmp_path, "--model", tiny_model_path, "--json")
    assert result.exit_code != 0 and result.stdout == ""
    assert f"no label.csv in {tmp_path}" in result.stderr
    result = run_eval("--data", tmp_path, "--model", tmp_path / "nope.keras")
    assert result.exit_code != 0 and "no model file" in result.stderr and "nope.keras" in result.stderr


@pytest.mark.parametrize("damage, message", [
    ("corrupt_png", r"label.csv, line 3: image .*fer\d+\.png: not a readable image"),
    ("malformed_row", r"label.csv, line 7: expected 12 columns \(name, face box, 10 votes\), got 5"),
], ids=["corrupt_png", "malformed_row"])
def test_bad_data_stops_naming_file_and_line_unless_skip_bad(damage, message, tiny_model_path, ferplus_valid,
                                                            tmp_path):

    folder = copy_split(ferplus_valid, tmp_path / "v30", 30)
    lines = (folder / "label.csv").read_text().splitlines()
    if damage == "corrupt_png":
        png = folder / lines[2].split(",")[0]
        png.write_bytes(png.read_bytes()[:40])  # a truncated PNG
    else:
        lines[6] = "fer0000000.png,1,2,3,4"
        (folder / "label.csv").write_text("\n".join(lines) + "\n")

    result = run_eval("--data", folder, "--model", tiny_model_path, "--json")
    assert result.exit_code != 0 and result.stdout == ""
    assert re.search(message, result.stderr), result.stderr
    assert str(folder) in result.stderr

    with pytest.warns(UserWarning, match="1 bad row"):
        result = run_eval("--data", folder, "--model", tiny_model_path, "--json", "--skip-bad")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["rows"], out["skipped"], out["n"]) == (30, 1, 29)
    assert out["skipped_rows"][0]["line"] == (3 if damage == "corrupt_png" else 7)
    assert re.search(r"skipped .*label\.csv, line \d+: ", result.stderr)


def test_default_model_without_model_option(valid_subset):
    from ferlite import weights

    bundled = weights.registry_entry(weights.DEFAULT_MODEL).bundled_path
    assert bundled.is_file(), f"the bundled default model {bundled} is missing: the package ships it"
    assert weights.status(weights.DEFAULT_MODEL) == "bundled", \
        f"the bundled {bundled} does not match the sha256 registered for {weights.DEFAULT_MODEL}"
    result = run_eval("--data", valid_subset, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == weights.DEFAULT_MODEL and out["backend"] == "keras"
    assert out["n"] == 200 and len(out["class_mae"]) == 9
    assert 0 <= out["top1"] <= 1 and 0 < out["mae"] < 1


@pytest.mark.slow
def test_tflite_model_gives_the_keras_numbers_without_tensorflow(tiny_model_path, valid_subset, tmp_path):
    from ferlite.evaluate import evaluate
    from ferlite.training.export import export_tflite

    tflite = export_tflite(tiny_model_path, tmp_path / "tiny.tflite", "none")
    code = ("import json, sys; from ferlite.evaluate import evaluate; r = evaluate(sys.argv[1], sys.argv[2]); "
            "print(json.dumps({'tensorflow_imported': 'tensorflow' in sys.modules, **r.to_json()}))")
    proc = subprocess.run([sys.executable, "-c", code, str(tflite), str(valid_subset)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    lite = json.loads(proc.stdout)
    assert lite["tensorflow_imported"] is False and lite["backend"] == "litert"
    keras_report = evaluate(tiny_model_path, valid_subset)
    assert lite["n"] == keras_report.n == 200
    assert lite["mae"] == pytest.approx(keras_report.mae, abs=1e-5)
    assert lite["class_mae"] == pytest.approx(keras_report.class_mae, abs=1e-5)
    assert lite["top1"] == pytest.approx(keras_report.top1, abs=0.011)  # at most one face may flip on a near-tie


# --------------------------------------------------------------------------- a folder per class


def test_folder_per_class_with_class_map_json_plots_and_human_report(bundled_fp16, ferplus_valid, tmp_path):
    from ferlite.evaluate import evaluate

    folder = majority_class_folder(ferplus_valid, tmp_path / "by_class", 60)
    (folder / "happiness").rename(folder / "happy")
    result = run_eval("--data", folder, "--model", bundled_fp16, "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(r"^Error: .*by_class: sub-folder name\(s\) 'happy' are not classes of the model \(the model's "
                     r"classes: neutral, happiness, .*did you mean 'happy' -> 'happiness'\? e\.g\. --class-map "
                     r"happy=happiness$", result.stderr.strip()), result.stderr

    plots = tmp_path / "plots"
    result = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", " happy = happiness ", "--json",
                      "--plots", plots, "--min-images", "1")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert JSON_KEYS <= set(out) and (out["layout"], out["class_map"]) == ("folders", {"happy": "happiness"})
    assert (out["mae"], out["kl"], out["major8_acc"], out["class_mae"]) == (None, None, None, None)
    assert out["n"] == out["rows"] == sum(1 for _ in folder.rglob("*.png")) == sum(map(sum, out["confusion_matrix"]))
    assert out["balanced_accuracy"] == pytest.approx(np.mean(list(out["class_recall"].values())))
    lib = evaluate(bundled_fp16, folder, class_map={"happy": "happiness"}, min_images=1).to_json()
    assert out == {**lib, "model": str(bundled_fp16)} and out["balance"] == 0.7  # what Recognizer gives
    own = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness", "--min-images", "1",
                   "--balance", "0", "--json")
    lib = evaluate(bundled_fp16, folder, class_map={"happy": "happiness"}, min_images=1, balance=0).to_json()
    assert json.loads(own.stdout) == {**lib, "model": str(bundled_fp16)} and lib["balance"] == 0
    assert sorted(p.name for p in plots.iterdir()) == ["class_recall.png", "confusion_matrix.png"]
    assert f"wrote {plots / 'class_recall.png'}" in result.stderr

    # the default --min-images 20: of the first 60 faces only neutral has 21; --exclude leaves classes out by name
    text = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness",
                    "--exclude", "contempt").stdout
    assert text.index("Balanced accuracy (mean class-wise recall): ") < \
        text.index("Accuracy (top-1 against the folder): ") < text.index("Class-wise recall:\nneutral ")
    assert "classes scored: the 1 with at least 20 images, less contempt (excluded); left out: happiness (12 " \
           "images), surprise (11 images)" in text
    assert "contempt (1 image, excluded by name)" in text
    assert "(one folder per class; renamed happy=happiness)" in text and "Total MAE" not in text
    result = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness", "--min-images", "0")
    assert result.exit_code == 2 and "Invalid value for '--min-images'" in result.stderr
    result = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness", "--balance", "2")
    assert result.exit_code == 2 and "Invalid value for '--balance'" in result.stderr
    result = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness", "--exclude",
                      "contempt,,fear")
    assert result.exit_code == 2 and "expected class names separated by commas" in result.stderr
    result = run_eval("--data", folder, "--model", bundled_fp16, "--class-map", "happy=happiness", "--min-images", "30")
    assert result.exit_code == 1 and result.stdout == ""
    assert "Error: no class to score: each class has fewer than 30 images or is excluded (neutral 21, " \
           in result.stderr


@pytest.mark.parametrize("value, message", [
    ("happy", r"expected FOLDER=CLASS pairs separated by commas, e\.g\. happy=happiness,angry=anger; got the item "
              r"'happy'"),
    ("happy=happiness,happy=joy", r"folder 'happy' is mapped twice \('happiness' and 'joy'\)"),
    ("=anger", r"got the item '=anger'"),
], ids=["no_equals", "twice", "no_folder"])
def test_bad_class_map_is_a_usage_error(value, message, bundled_fp16, tmp_path):
    result = run_eval("--data", tmp_path, "--model", bundled_fp16, "--class-map", value)
    assert result.exit_code == 2 and result.stdout == ""
    assert "Invalid value for '--class-map'" in result.stderr and re.search(message, result.stderr), result.stderr


def test_detect_and_skip_bad_through_the_cli(bundled_fp16, ferplus_valid, tmp_path):
    crops = majority_class_folder(ferplus_valid, tmp_path / "crops", 20)
    photos, rng = tmp_path / "photos", np.random.default_rng(1)
    for c in ("neutral", "happiness"):
        face = sorted((crops / c).iterdir())[0]
        (photos / c).mkdir(parents=True)
        cv2.imwrite(str(photos / c / f"{face.stem}.jpg"),
                    paste_into_scene(cv2.imread(str(face), cv2.IMREAD_GRAYSCALE), "grass", rng))
    cv2.imwrite(str(photos / "neutral" / "gravel.png"), paste_into_scene(None, "gravel", rng))
    bad = photos / "happiness" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")

    result = run_eval("--data", photos, "--model", bundled_fp16, "--detect")
    assert result.exit_code == 1 and result.stdout == ""
    assert f"Error: image {bad}: not a readable image" in result.stderr and "--skip-bad" in result.stderr
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\) skipped"):
        result = run_eval("--data", photos, "--model", bundled_fp16, "--detect", "--detector", "yunet",
                          "--skip-bad", "--min-images", "1", "--json")
    assert result.exit_code == 0, result.stderr
    assert re.search(rf"^skipped {re.escape(str(bad))}: not a readable image: ", result.stderr, re.M), result.stderr
    out = json.loads(result.stdout)
    neutral, happiness = out["confusion_matrix"]  # the gravel scene is a miss of neutral, in the no-face column
    assert out["confusion_columns"] == ["neutral", "happiness", "no face"] and neutral[2] == 1
    assert (out["rows"], out["skipped"], out["faces"], out["n"], out["no_face"]) == (4, 1, 3, 3, 1)
    assert out["balanced_accuracy"] == pytest.approx((neutral[0] / 2 + happiness[1] / 1) / 2)
    assert out["top1"] == pytest.approx((neutral[0] + happiness[1]) / 3)
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\) skipped"):
        text = run_eval("--data", photos, "--model", bundled_fp16, "--detect", "--skip-bad", "--min-images", "1").stdout
    assert "samples: 4 images, 1 skipped as bad, 3 read, 0 of classes left out, 3 scored" in text, text
    assert "the largest face found by the yunet detector in each photo; 1 photo(s) without one, counted as misses" \
        in text
    assert text.endswith(f"No face found in 1 photo(s) (counted as misses):\n  {photos / 'neutral' / 'gravel.png'}\n")
    result = run_eval("--data", ferplus_valid, "--model", bundled_fp16, "--detect")
    assert result.exit_code == 1 and "detect (--detect) applies to a folder with one sub-folder" in result.stderr
