"""Short training probes: does a recipe change help? (The comparisons behind the default recipe.)

Each probe builds MobileFaceNet (``--alpha``, 1 channel, 9 classes) with the same seed, or loads
``--init-weights`` (a registered name or ``.keras`` file: a warm restart), trains it for ``--steps`` steps
(or ``--epochs`` passes) of batch 128 on ferlite's augmented pipeline (``--aug``) over the training split,
and scores it on the validation split (seed9 MAE and top-1, major8). ``--cosine`` decays the learning rate
to 0 over the probe (a warm restart's schedule); without it the rate is constant. A probe is a Python dict
literal of overrides:

* ``lr`` (default 2e-3), ``opt`` (``adamw`` with weight decay 5e-3, ``adam``, or ``sgd`` with Nesterov
  momentum 0.9);
* ``model_kw``: keyword arguments of ``create_model`` (``activation``, ``bn_momentum``, ``dropout``...);
* ``label_smoothing``: of the cross-entropy (as ``ferlite-train --label-smoothing``);
* ``erase``: probability of random erasing, added to ``--aug`` (as the ``strong`` preset's);
* ``mix``: ``"mixup"`` or ``"cutmix"`` on soft labels, with ``mix_alpha`` (default 0.2 for mixup, 1.0 for
  cutmix): each batch is mixed with a shuffled copy of itself, images and vote distributions with the same
  weight (for cutmix, the pasted area's share);
* ``sam``: the radius rho of sharpness-aware minimisation (Foret et al. 2021): each step takes the gradient
  at the weights moved by rho along the normalised gradient (two forward and backward passes a step).

    python experiments/recipe_probe.py --data /path/to/ferplus --steps 300 "{}" "{'lr': 1e-2}" \\
        "{'lr': 0.1, 'opt': 'sgd'}" "{'model_kw': {'activation': 'relu'}}"
    python experiments/recipe_probe.py --data /path/to/ferplus --alpha 0.5 --init-weights ferplus-mfn-0.5 \\
        --epochs 4 --cosine --aug light "{}" "{'mix': 'mixup'}" "{'sam': 0.05}" "{'label_smoothing': 0.1}"

Early progress is not final accuracy; it is a cheap way to reject recipes that cannot start, or that do not
move a trained model. Differences under about 0.6 points of top-1 are within one run's noise on FER2013Valid.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def mix_batches(kind: str, alpha: float):
    """A ``tf.data`` map mixing each batch with a shuffled copy of itself: mixup or cutmix on soft labels."""
    import tensorflow as tf

    if kind not in ("mixup", "cutmix"):
        raise ValueError(f"mix must be 'mixup' or 'cutmix', got {kind!r}")

    def beta(a: float):
        g1, g2 = tf.random.gamma([], a), tf.random.gamma([], a)
        return g1 / (g1 + g2)

    def mix(x, y):
        lam, perm = beta(alpha), tf.random.shuffle(tf.range(tf.shape(x)[0]))
        xf, other = tf.cast(x, tf.float32), tf.cast(tf.gather(x, perm), tf.float32)
        if kind == "mixup":
            xf = lam * xf + (1.0 - lam) * other
        else:  # one box of (1 - lam) of the area, at a uniform centre, clipped to the image
            size = tf.shape(x)[1]
            side = tf.cast(tf.round(tf.sqrt(1.0 - lam) * tf.cast(size, tf.float32)), tf.int32)
            cy, cx = tf.random.uniform([], 0, size, tf.int32), tf.random.uniform([], 0, size, tf.int32)
            y0, y1 = tf.clip_by_value(cy - side // 2, 0, size), tf.clip_by_value(cy + (side + 1) // 2, 0, size)
            x0, x1 = tf.clip_by_value(cx - side // 2, 0, size), tf.clip_by_value(cx + (side + 1) // 2, 0, size)
            r, c = tf.range(size)[:, None], tf.range(size)[None, :]
            box = tf.cast((r >= y0) & (r < y1) & (c >= x0) & (c < x1), tf.float32)[None, :, :, None]
            xf = xf * (1.0 - box) + other * box
            lam = 1.0 - tf.reduce_mean(box)  # the share of the first face actually kept
        y = lam * y + (1.0 - lam) * tf.gather(y, perm)
        return tf.cast(tf.clip_by_value(tf.round(xf), 0.0, 255.0), tf.uint8), y

    return mix


def sam_model(model, rho: float):
    """``model`` wrapped so that ``fit`` takes sharpness-aware steps of radius ``rho`` (TensorFlow back end)."""
    import keras
    import tensorflow as tf

    class SAM(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def train_step(self, data):
            x, y = data
            weights = self.trainable_variables
            with tf.GradientTape() as tape:
                loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])  # what Keras's own step reports
            grads = tape.gradient(loss, weights)
            scale = rho / (tf.linalg.global_norm(grads) + 1e-12)
            steps = [g * scale for g in grads]
            for w, e in zip(weights, steps):
                w.assign_add(e)
            with tf.GradientTape() as tape:
                sharp = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
            grads = tape.gradient(sharp, weights)
            for w, e in zip(weights, steps):
                w.assign_sub(e)
            self.optimizer.apply(grads, weights)
            return self.get_metrics_result()

    return SAM(model)


def probe(train, valid, steps: int, aug: str, *, alpha: float = 1.0, init_weights: str | None = None,
          cosine: bool = False, lr: float = 2e-3, opt: str = "adamw", model_kw: dict | None = None,
          label_smoothing: float = 0.0, erase: float = 0.0, mix: str | None = None, mix_alpha: float | None = None,
          sam: float = 0.0) -> dict:
    """Train one recipe for ``steps`` steps; return its mean training loss, valid scores and seconds."""
    import keras
    import numpy as np

    from ferlite.evaluate import score
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.modelfile import load_keras_model
    from ferlite.training.augment import AugmentConfig
    from ferlite.training.models import create_model
    from ferlite.training.pipeline import make_dataset
    from ferlite.weights import resolve_model

    x, t = train.targets("seed9", 9)
    keras.utils.set_random_seed(0)
    if init_weights:
        model = load_keras_model(resolve_model(init_weights))
    else:
        model = create_model("mobilefacenet", alpha=alpha, num_classes=9, **(model_kw or {}))
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps) if cosine else lr
    optimizers = {"adamw": lambda: keras.optimizers.AdamW(schedule, weight_decay=5e-3),
                  "adam": lambda: keras.optimizers.Adam(schedule),
                  "sgd": lambda: keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)}
    trained = sam_model(model, sam) if sam else model
    trained.compile(optimizer=optimizers[opt](),
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing))
    cfg = AugmentConfig.preset(aug)
    if erase:
        cfg = dataclasses.replace(cfg, erase=erase)
    ds = make_dataset(x, t.targets, batch_size=128, training=True, augment=cfg, repeat=True, seed=0)
    if mix:
        ds = ds.map(mix_batches(mix, mix_alpha or (0.2 if mix == "mixup" else 1.0)))
    start = time.perf_counter()
    history = trained.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    val = make_dataset(valid.images, np.zeros((len(valid), 1), np.float32), batch_size=256)
    s = score(valid.votes, model.predict(val.map(lambda a, b: a), verbose=0), FERPLUS_CLASSES[:9])
    return {"loss": float(np.mean(history.history["loss"])), "mae": s["mae"], "top1": s["top1"],
            "major8": s["major8_acc"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding FER2013Train and FER2013Valid")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--epochs", type=float, default=None, help="probe length in passes over the split "
                                                                   "(instead of --steps)")
    parser.add_argument("--aug", default="flip")
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileFaceNet width (ignored with --init-weights)")
    parser.add_argument("--init-weights", default=None, help="start from this model (registered name or .keras)")
    parser.add_argument("--cosine", action="store_true", help="cosine decay of the learning rate to 0")
    parser.add_argument("probes", nargs="+", help="dict literals of overrides, e.g. \"{'lr': 1e-2}\"")
    args = parser.parse_args()
    from ferlite.datasets import read_dataset

    train, valid = read_dataset(Path(args.data) / "FER2013Train"), read_dataset(Path(args.data) / "FER2013Valid")
    steps = round(args.epochs * len(train) / 128) if args.epochs else args.steps
    start = f"from {args.init_weights}" if args.init_weights else f"MobileFaceNet alpha {args.alpha} from scratch"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {start}; {steps} steps of 128, aug {args.aug}, "
          f"{'cosine' if args.cosine else 'constant'} learning rate\n")
    print("| probe | train loss (mean) | valid MAE | valid top-1 | major8 | seconds |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for text in args.probes:
        r = probe(train, valid, steps, args.aug, alpha=args.alpha, init_weights=args.init_weights,
                  cosine=args.cosine, **ast.literal_eval(text))
        print(f"| `{text}` | {r['loss']:.3f} | {r['mae']:.4f} | {100 * r['top1']:.1f}% | {100 * r['major8']:.1f}% "
              f"| {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
