"""Input-pipeline throughput with augmentation, beside the training throughput of the default model.

Training must never wait for data: the ``tf.data`` pipeline (shuffle, on-graph augmentation,
batching, prefetch) has to deliver images at least ``--min-ratio`` (5) times faster than training
consumes them. Both are measured in the same run, one after the other, on the same machine:

* pipeline: images/s drawn from ``make_dataset(training=True, augment=--aug)`` (default: the full
  ``standard`` preset) over ``--pipeline-batches`` batches (default: one pass over the split, at
  least 50 batches) after ``--pipeline-warmup`` batches; faces come decoded from the cache;
* training: images/s of ``train_on_batch`` steps of the default model (MobileFaceNet alpha 1.0,
  1 channel, 9 classes, compiled as ``ferlite-train`` compiles it: AdamW, cross-entropy, its metrics)
  on one batch from that pipeline, timed over ``--train-steps`` steps after ``--warmup-steps``.

``--data`` is a FER+ split folder (``label.csv`` + PNGs) or a folder holding ``FER2013Train``
(the full split, e.g. ``/work/data/ferplus``); the default is the shared FER2013Valid.
Exits with status 1 when the ratio is below ``--min-ratio`` (0 turns the check off).

    python benchmarks/pipeline_throughput.py [--data DIR] [--batch-size 128] [--train-steps 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Valid"


def split_folder(path: Path) -> Path:
    """``path`` itself if it holds ``label.csv``, else its ``FER2013Train`` subfolder."""
    for folder in (path, path / "FER2013Train"):
        if (folder / "label.csv").is_file():
            return folder
    raise SystemExit(f"--data {path}: expected a FER+ split folder with label.csv, or a folder holding FER2013Train")


def pipeline_rate(images, targets, args) -> tuple[dict, tuple]:
    """Images/s drawn from the augmented training pipeline, and its first batch."""
    from ferlite.training.pipeline import make_dataset

    ds = make_dataset(images, targets, batch_size=args.batch_size, training=True, augment=args.aug, seed=0,
                      repeat=True)
    batches = args.pipeline_batches or max(len(images) // args.batch_size, 50)
    it = iter(ds)
    first = next(it)
    for _ in range(args.pipeline_warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - t
    n = batches * args.batch_size
    return {"images": n, "seconds": round(seconds, 3), "images_per_s": n / seconds}, first


def training_rate(batch, args) -> dict:
    """Images/s of training steps of the default model on one in-memory batch."""
    import keras

    from ferlite.training.loop import TrainConfig
    from ferlite.training.metrics import keras_metrics
    from ferlite.training.models import create_model

    defaults = TrainConfig(train="", val="")
    model = create_model("mobilefacenet", alpha=args.alpha, channels=1, num_classes=9)
    model.compile(optimizer=keras.optimizers.AdamW(defaults.lr, weight_decay=defaults.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(), metrics=keras_metrics())
    x, y = batch
    for _ in range(args.warmup_steps):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(args.train_steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - t
    n = args.train_steps * len(x)
    return {"model": f"mobilefacenet alpha {args.alpha}, 1 channel, 9 classes", "params": model.count_params(),
            "images": n, "seconds": round(seconds, 3), "images_per_s": n / seconds}


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print them side by side; return 1 if the ratio misses --min-ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED_VALID, help="FER+ split folder, or a folder with FER2013Train")
    p.add_argument("--aug", default="standard", help="augmentation preset (default: standard)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pipeline-batches", type=int, default=0, help="batches to time (0: one pass, at least 50)")
    p.add_argument("--pipeline-warmup", type=int, default=5)
    p.add_argument("--alpha", type=float, default=1.0, help="width of the MobileFaceNet trained")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--min-ratio", type=float, default=5.0)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    import tensorflow as tf

    from ferlite.datasets import read_ferplus_folder

    folder = split_folder(args.data)
    t = time.perf_counter()
    faces = read_ferplus_folder(folder)
    load_s = time.perf_counter() - t
    x, targets = faces.targets("seed9")
    pipe, batch = pipeline_rate(x, targets.targets, args)
    train = training_rate(batch, args)
    ratio = pipe["images_per_s"] / train["images_per_s"]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; tensorflow {tf.__version__}"
    print(f"machine:  {machine}")
    print(f"data:     {folder} ({len(faces):,} faces, loaded in {load_s:.1f} s), batch {args.batch_size}, "
          f"augmentation '{args.aug}'")
    print(f"pipeline: {pipe['images']:,} images in {pipe['seconds']:.2f} s -> {pipe['images_per_s']:,.0f} images/s")
    print(f"training: {train['model']} ({train['params']:,} params), {args.train_steps} steps in "
          f"{train['seconds']:.2f} s -> {train['images_per_s']:,.0f} images/s")
    verdict = "met" if ratio >= args.min_ratio else "NOT met"
    print(f"ratio:    pipeline / training = {ratio:.1f}x (target >= {args.min_ratio:g}x: {verdict})")
    if args.json:
        result = {"machine": machine, "data": str(folder), "faces": len(faces), "batch_size": args.batch_size,
                  "aug": args.aug, "pipeline": pipe, "training": train, "ratio": ratio, "command": sys.argv}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ratio >= args.min_ratio or not args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
