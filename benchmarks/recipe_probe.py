"""Short training probes: how fast does each recipe start to learn? (The comparison behind the default recipe.)

Each probe builds MobileFaceNet alpha 1.0 (1 channel, 9 classes) with the same seed, trains it for
``--steps`` steps of batch 128 on the augmented pipeline (``--aug``) over the training split, and scores
it on the validation split (seed9 MAE and top-1). A probe is a Python dict literal of overrides:

* ``lr`` (default 2e-3), ``opt`` (``adamw`` with weight decay 5e-3, ``adam``, or ``sgd`` with Nesterov
  momentum 0.9);
* ``model_kw``: keyword arguments of ``create_model`` (``activation``, ``bn_momentum``, ``dropout``...).

    python benchmarks/recipe_probe.py --data /path/to/ferplus --steps 300 "{}" "{'lr': 1e-2}" \\
        "{'lr': 0.1, 'opt': 'sgd'}" "{'model_kw': {'activation': 'relu'}}"

Early progress is not final accuracy; it is a cheap way to reject recipes that cannot start.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def probe(train, valid, steps: int, aug: str, lr: float = 2e-3, opt: str = "adamw", model_kw: dict | None = None):
    """Train one recipe for ``steps`` steps; return (mean training loss, valid MAE, valid top-1, seconds)."""
    import keras
    import numpy as np

    from ferlite.data import make_dataset
    from ferlite.evaluate import score
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.models import create_model

    x, t = train.targets("seed9", 9)
    keras.utils.set_random_seed(0)
    model = create_model("mobilefacenet", alpha=1.0, num_classes=9, **(model_kw or {}))
    optimizers = {"adamw": lambda: keras.optimizers.AdamW(lr, weight_decay=5e-3),
                  "adam": lambda: keras.optimizers.Adam(lr),
                  "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)}
    model.compile(optimizer=optimizers[opt](), loss="categorical_crossentropy")
    ds = make_dataset(x, t.targets, batch_size=128, training=True, augment=aug, repeat=True, seed=0)
    start = time.perf_counter()
    history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    val = make_dataset(valid.images, np.zeros((len(valid), 1), np.float32), batch_size=256)
    s = score(valid.votes, model.predict(val.map(lambda a, b: a), verbose=0), FERPLUS_CLASSES[:9])
    return history.history["loss"][-1], s["mae"], s["top1"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding FER2013Train and FER2013Valid")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--aug", default="flip")
    parser.add_argument("probes", nargs="+", help="dict literals of overrides, e.g. \"{'lr': 1e-2}\"")
    args = parser.parse_args()
    from ferlite.data import read_dataset

    train, valid = read_dataset(Path(args.data) / "FER2013Train"), read_dataset(Path(args.data) / "FER2013Valid")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.steps} steps of 128, aug {args.aug}\n")
    print("| probe | train loss (mean) | valid MAE | valid top-1 | seconds |\n| --- | --- | --- | --- | --- |")
    for text in args.probes:
        loss, mae, top1, seconds = probe(train, valid, args.steps, args.aug, **ast.literal_eval(text))
        print(f"| `{text}` | {loss:.3f} | {mae:.4f} | {100 * top1:.1f}% | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
