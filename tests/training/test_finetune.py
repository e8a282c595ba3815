"""Own datasets (generic CSV) and fine-tuning the default model on a different class set."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, load_script

from ferlite.cli import eval_main
from ferlite.datasets import DataError, read_csv_dataset

FER2013 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# FER+ emotion index -> FER2013 name (contempt has no FER2013 class)
FERPLUS_TO_FER2013 = {0: "neutral", 1: "happy", 2: "surprise", 3: "sad", 4: "angry", 5: "disgust", 6: "fear"}


def write_onehot_csv(src, dest, rows, start=0):
    """A 7-class one-hot CSV (FER2013 names) from FER+ argmax labels; images written as 96x96 colour JPEGs."""
    import cv2

    dest.mkdir(parents=True, exist_ok=True)
    out = [["image", *FER2013]]
    for line in list(csv.reader(open(src / "label.csv")))[start:]:
        votes = np.array([float(x) for x in line[2:]])
        top = int(votes.argmax())
        if top not in FERPLUS_TO_FER2013:
            continue
        img = cv2.imread(str(src / line[0]))
        big = cv2.resize(img, (96, 96))  # any size and colour is accepted
        name = line[0].replace(".png", ".jpg")
        cv2.imwrite(str(dest / name), big)
        onehot = [1 if c == FERPLUS_TO_FER2013[top] else 0 for c in FER2013]
        out.append([name, *onehot])
        if len(out) > rows:
            break
    csv.writer(open(dest / "data.csv", "w", newline="")).writerows(out)
    return dest / "data.csv"


def test_read_csv_dataset_and_bad_rows(ferplus_train_sample, tmp_path):
    path = write_onehot_csv(ferplus_train_sample, tmp_path / "ds", 20)
    faces = read_csv_dataset(path)
    assert faces.classes == tuple(FER2013) and faces.images.shape == (20, 48, 48) and not faces.is_ferplus
    rgb = read_csv_dataset(path, channels=3, size=64)
    assert rgb.images.shape == (20, 64, 64, 3)
    rows = list(csv.reader(open(path)))
    rows[2][1:] = ["0"] * 7  # all-zero votes, line 3
    rows[4][0] = "missing.jpg"  # missing file, line 5
    rows[6][1] = "-1"  # negative, line 7
    csv.writer(open(path, "w", newline="")).writerows(rows)
    with pytest.raises(DataError, match=r"data.csv, line 3: .*not all zero"):
        read_csv_dataset(path)
    with pytest.warns(UserWarning, match="3 bad row"):
        faces = read_csv_dataset(path, skip_bad=True)
    assert len(faces) == 17 and [s[1] for s in faces.skipped] == [3, 5, 7]
    (tmp_path / "bad.csv").write_text("path,a\nx.png,1\n")
    with pytest.raises(DataError, match="line 1: expected a header"):
        read_csv_dataset(tmp_path / "bad.csv")


@pytest.mark.slow
def test_finetune_default_model_on_7_classes_with_the_example_script(ferplus_train_sample, ferplus_valid, tmp_path,
                                                                     capsys):
    """examples/finetune_csv.py (the documented way: train() from the default model, head replaced), 2 epochs with
    the backbone frozen for the first; the result is then scored and checked. (One run for both: the example's
    TrainConfig is the one this test used to build.)"""
    train_csv = write_onehot_csv(ferplus_train_sample, tmp_path / "train", 128)
    val_csv = write_onehot_csv(ferplus_valid, tmp_path / "val", 64)
    out = tmp_path / "ft"
    example = load_script(REPO / "examples" / "finetune_csv.py")
    with pytest.warns(UserWarning, match="head_dense"):  # the 9-class head is replaced by a 7-class one
        example_rec = example.main(["--train", str(train_csv), "--val", str(val_csv), "--epochs", "2",
                                    "--freeze-backbone", "1", "--output-dir", str(out)])
    assert list(example_rec.classes) == FER2013 and "classes: " + ", ".join(FER2013) in capsys.readouterr().out
    info = json.loads((out / "model.json").read_text())  # what train() returned
    assert info["classes"] == FER2013 and info["valid"]["major8_acc"] is None and "gray" in info["input"]
    assert [r["epoch"] for r in csv.DictReader(open(out / "history.csv"))] == ["1", "2"]

    from ferlite.recognizer import Recognizer

    rec = Recognizer.from_pretrained(out / "model.keras")
    probs = rec.predict(ferplus_valid / sorted(p.name for p in ferplus_valid.glob("*.png"))[0])
    assert list(probs) == FER2013 and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)

    # ferlite-eval scores the CSV dataset with the model's own classes, as training's validation did
    result = CliRunner().invoke(eval_main, ["--data", str(val_csv), "--model", str(out / "model.keras"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["classes"] == FER2013 and report["n"] == 64 and report["major8_acc"] is None
    for key in ("mae", "top1", "kl"):
        assert report[key] == pytest.approx(info["valid"][key], abs=1e-5)
    assert sum(map(sum, report["confusion_matrix"])) == 64
    human = CliRunner().invoke(eval_main, ["--data", str(val_csv), "--model", str(out / "model.keras")])
    assert "Total MAE" in human.output and "major8 accuracy (FER+ majority protocol): n/a" in human.output

    # a CSV whose columns are not the model's classes is refused, naming both
    rows = list(csv.reader(open(val_csv)))
    rows[0][1:] = list(reversed(FER2013))
    csv.writer(open(tmp_path / "val" / "swapped.csv", "w", newline="")).writerows(rows)
    bad = CliRunner().invoke(eval_main, ["--data", str(tmp_path / "val" / "swapped.csv"), "--model",
                                         str(out / "model.keras")])
    assert bad.exit_code != 0 and "are not the model's" in bad.output and "'neutral', 'surprise'" in bad.output
