"""One small end-to-end run on real faces: every output file, finite metrics, resume, no silent overwrite."""

import csv
import json
import math

import pytest
from conftest import copy_split

from ferlite.train import TrainConfig, train


@pytest.fixture
def small_splits(ferplus_train_sample, ferplus_valid, tmp_path):
    return (copy_split(ferplus_train_sample, tmp_path / "train", 256),
            copy_split(ferplus_valid, tmp_path / "val", 128))


def test_train_end_to_end_and_resume(small_splits, tmp_path):
    tr, va = small_splits
    out = tmp_path / "run"
    cfg = TrainConfig(train=str(tr), val=str(va), alpha=0.25, epochs=1, batch_size=32, output_dir=str(out),
                      warmup_epochs=0, aug="standard")
    info = train(cfg, log=lambda *_: None)
    for name in ("last.keras", "state.json", "best_mae.keras", "best_major8.keras", "history.csv", "curves.png",
                 "model.keras", "model.json"):
        assert (out / name).is_file(), name
    side = json.loads((out / "model.json").read_text())
    assert side["classes"] == ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                               "unknown"]
    assert side["input_size"] == 48 and side["alpha"] == 0.25 and side["data"]["train_faces"] == 256
    for key in ("mae", "top1", "kl", "major8_acc"):
        assert math.isfinite(info["valid"][key])
    assert set(info["valid"]["class_mae"]) == set(side["classes"])
    assert all(math.isfinite(x) for x in info["valid"]["class_mae"].values())
    (row,) = csv.DictReader(open(out / "history.csv"))
    assert all(math.isfinite(float(x)) for x in row.values()), row

    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, log=lambda *_: None)

    cfg.epochs, cfg.resume = 2, True
    train(cfg, log=lambda *_: None)
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads((out / "state.json").read_text())["epoch"] == 2


def test_bad_options(small_splits, tmp_path):
    tr, va = small_splits
    with pytest.raises(ValueError, match="unknown loss"):
        train(TrainConfig(train=str(tr), val=str(va), loss="hinge", output_dir=str(tmp_path / "x")))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainConfig(train=str(tr), val=str(va), resume=True, output_dir=str(tmp_path / "y")))
