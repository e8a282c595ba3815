"""Training throughput of the default model under settings that might remove waste, side by side.

Each variant trains MobileFaceNet alpha 1.0 (1 channel, 9 classes, compiled as ``ferlite-train``
compiles it: AdamW, cross-entropy, its metrics) with ``model.fit`` on the real augmented ``tf.data``
pipeline over FER+ faces held in memory, in its own process (TensorFlow fixes its thread pools at
start-up), for ``--steps`` steps after ``--warmup`` steps. Variants run in turn, ``--rounds`` times in
alternating order, and each reports its best round (the least disturbed, timeit's convention):

* ``baseline``: as ``ferlite-train`` runs;
* ``jit``: ``jit_compile=True`` (XLA);
* ``spe8``: ``steps_per_execution=8`` (fewer Python round trips);
* ``threads``: intra-op threads = cores, inter-op threads = 1;
* ``ema``: the baseline plus ``--ema`` (a weight average updated after every step), to price that option;
* ``distill``: the baseline distilled from ``--teacher`` (``ferlite-train --teacher``: the teacher runs on every
  augmented batch in the input pipeline), to price distillation;
* ``distill-flip``: the same with ``--teacher-flip`` (the teacher also runs on the mirrored batch);
* ``quant-noise``: the baseline with ``--quant-noise`` (int8-step noise after every batch norm and activation).

The table also gives the seconds an epoch of the full FER+ training split (28,556 faces) would take at each rate.

    python benchmarks/train_throughput.py [--data DIR] [--steps 30] [--rounds 2] [--aug light] [--json FILE]
        [--variants baseline,distill,distill-flip] [--teacher MODEL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

SHARED_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Valid"
TEACHER = Path(__file__).resolve().parents[1] / "models" / "teacher-mfn-2.0.keras"
VARIANTS = ("baseline", "jit", "spe8", "threads", "ema", "distill", "distill-flip", "quant-noise")
FULL_SPLIT = 28_556  # FER2013Train faces kept by seed9


def run_variant(variant: str, data: str, steps: int, warmup: int, batch: int, aug: str, teacher: str = "") -> float:
    """Images/s of one variant, measured in this process."""
    import time

    import tensorflow as tf

    if variant == "threads":
        tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from ferlite.datasets import read_dataset
    from ferlite.training.loop import WeightAverage
    from ferlite.training.metrics import keras_metrics
    from ferlite.training.models import create_model
    from ferlite.training.pipeline import make_dataset

    x, t = read_dataset(data).targets("seed9", 9)
    model = create_model("mobilefacenet", alpha=1.0, num_classes=9)
    if variant == "quant-noise":
        from ferlite.training.quantnoise import with_quant_noise

        model = with_quant_noise(model)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3, weight_decay=5e-3), loss="categorical_crossentropy",
                  metrics=keras_metrics(), jit_compile=variant == "jit",
                  steps_per_execution=8 if variant == "spe8" else 1)
    relabel = None
    if variant.startswith("distill"):
        from ferlite.training.distill import load_teachers

        relabel = load_teachers([teacher], input_size=48, channels=1, flip=variant == "distill-flip").relabel
    ds = make_dataset(x, t.targets, batch_size=batch, training=True, augment=aug, repeat=True, relabel=relabel)
    callbacks = [WeightAverage(0.999).callback(model)] if variant == "ema" else []
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0, callbacks=callbacks)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_VALID), help="FER+ split folder (default: shared FER2013Valid)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=8, help="steps before timing (tracing, XLA compilation)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--aug", default="light")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--teacher", default=None,
                        help=f"teacher of the distill variants (default: {TEACHER.relative_to(TEACHER.parents[1])} "
                             "if present, else an untrained MobileFaceNet alpha 2.0: the same cost)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one variant and print
    args = parser.parse_args()
    if args.one:
        print(run_variant(args.one, args.data, args.steps, args.warmup, args.batch_size, args.aug, args.teacher))
        return
    variants = args.variants.split(",")
    teacher = (args.teacher or _default_teacher()) if any(v.startswith("distill") for v in variants) else ""
    rates: dict[str, list[float]] = {v: [] for v in variants}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for r in range(args.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            cmd = [sys.executable, __file__, "--one", v, "--data", args.data, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--aug", args.aug,
                   "--teacher", teacher]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rates[v].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {v:9s} {rates[v][-1]:7.0f} img/s", flush=True)
    best = {v: max(r) for v, r in rates.items()}
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
          f"python {platform.python_version()}")
    print(f"batch {args.batch_size}, aug {args.aug}, {args.steps} timed steps after {args.warmup}, best of "
          f"{args.rounds} rounds" + (f", teacher {teacher}" if teacher else "") + "\n")
    print(f"| variant | images/s (best) | all rounds | vs baseline | s per epoch of {FULL_SPLIT:,} faces |\n"
          "| --- | --- | --- | --- | --- |")
    for v in variants:
        ratio = best[v] / best["baseline"] if "baseline" in best else float("nan")
        print(f"| {v} | {best[v]:.0f} | {', '.join(f'{x:.0f}' for x in rates[v])} | {ratio:.2f}x | "
              f"{FULL_SPLIT // args.batch_size * args.batch_size / best[v]:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rates": rates, "best": best}, indent=2))


def _default_teacher() -> str:
    """:data:`TEACHER` if present, else an untrained MobileFaceNet alpha 2.0 saved to a temporary file."""
    if TEACHER.is_file():
        return str(TEACHER)
    import tempfile

    from ferlite.training.models import create_model

    path = Path(tempfile.mkdtemp(prefix="ferlite-bench-")) / "teacher-mfn-2.0-untrained.keras"
    create_model("mobilefacenet", alpha=2.0, num_classes=9).save(path)
    return str(path)


if __name__ == "__main__":
    main()
