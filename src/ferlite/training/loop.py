"""Training: soft-label FER+ training with checkpoints, resume, best-model selection and a sidecar.

:func:`train` is the library function behind ``ferlite-train``. Every epoch it writes
to the output folder:

* ``last.keras`` + ``state.json``: model with optimizer state and the epoch, for ``resume``;
* ``best_mae.keras`` / ``best_major8.keras``: the best models by validation MAE and major8;
* ``history.csv``: one row per epoch with training and validation metrics;
* with ``keep_epochs``, ``epoch_NNN.keras`` + ``epoch_NNN.json``: every epoch's model (the averaged weights with
  ``ema``), to select on other data afterwards (``experiments/checkpoint_photos.py``: real photos).

With ``teacher`` set, the targets are distilled (:mod:`ferlite.training.distill`): the teachers' predictions on
each augmented batch are mixed into the annotators' vote distributions.

At the end: ``curves.png`` (loss, MAE and top-1 per epoch) and ``model.keras`` (the best
model by validation MAE) with ``model.json``, its sidecar (classes, input size, alpha,
command, data, metrics).

:func:`train` runs these steps, each a function of this module: :func:`_load_data` (read and check the faces),
:func:`_start_model` (build a model, or resume one from its checkpoint), :func:`_run_epochs` (fit, score and
:func:`_write_checkpoint` every epoch) and :func:`_finish` (curves, the final model and its sidecar).

This module imports TensorFlow only when :func:`train` runs: the command line reads :data:`LOSSES`,
:data:`OPTIMIZERS` and :data:`SCHEDULES` from it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferlite._atomic import atomic_path, remove_temporaries, write_npz
from ferlite.datasets import DataError, FaceSet, read_dataset, require_faces
from ferlite.labels import FERPLUS_CLASSES, TARGET_MODES, Targets, sample_probability_targets
from ferlite.sidecar import write_sidecar
from ferlite.training.augment import AugmentConfig
from ferlite.training.distill import Teachers, load_teachers, mix_targets
from ferlite.training.distribute import STRATEGIES, scaled_lr
from ferlite.training.metrics import keras_metrics
from ferlite.training.pipeline import make_dataset
from ferlite.weights import file_sha256

__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULES", "TrainConfig", "WeightAverage", "train", "evaluate_arrays"]

LOSSES = ("crossentropy", "bce", "kl")
"""``--loss``: cross-entropy on the target distribution, binary cross-entropy (as the reference did), KL."""
OPTIMIZERS = ("sgd", "adam", "adamw")
"""``--opt``: SGD with Nesterov momentum 0.9, Adam, AdamW."""
SCHEDULES = ("cosine", "plateau", "constant")
"""``--schedule``: cosine decay after a linear warmup, halving on a validation-MAE plateau, constant."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the sidecar)."""

    train: str
    val: str
    model: str = "mobilefacenet"
    alpha: float = 1.0
    img_size: int = 48
    channels: int = 1
    target_mode: str = "seed9"
    num_classes: int | None = None
    loss: str = "crossentropy"
    label_smoothing: float = 0.0
    opt: str = "adamw"
    lr: float = 1e-2
    weight_decay: float = 5e-3
    schedule: str = "cosine"
    warmup_epochs: int = 2
    epochs: int = 30
    batch_size: int = 128
    aug: str = "light"
    seed: int = 0
    patience: int = 0
    output_dir: str | None = None
    init_weights: str | None = None
    freeze_backbone: int = 0
    resume: bool = False
    skip_bad: bool = False
    strategy: str = "auto"
    scale_lr: bool = False
    ema: float = 0.0
    teacher: tuple[str, ...] = ()
    teacher_flip: bool = False
    distill_weight: float = 0.5
    temperature: float = 1.0
    quant_noise: bool = False
    fake_quant: bool = False
    keep_epochs: bool = False
    class_balance: float = 0.0
    model_kwargs: dict = field(default_factory=dict)

    @property
    def peak_lr(self) -> float:
        """``lr``, or with ``scale_lr`` the linear scaling rule's ``lr * batch_size / 128``."""
        return scaled_lr(self.lr, self.batch_size) if self.scale_lr else self.lr

    def check(self) -> None:
        """Raise ValueError naming the first invalid option."""
        if self.target_mode not in TARGET_MODES:
            raise ValueError(f"unknown target mode {self.target_mode!r}; valid: {', '.join(TARGET_MODES)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.opt not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.opt!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.img_size < 16 or self.img_size % 16:
            raise ValueError(f"img_size must be a multiple of 16 (at least 16), got {self.img_size}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.freeze_backbone < self.epochs:
            raise ValueError(f"freeze_backbone must be in 0..epochs-1, got {self.freeze_backbone}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0 = off), got {self.ema}")
        if isinstance(self.teacher, (str, os.PathLike)):
            raise ValueError(f"teacher must be a sequence of model names or paths, e.g. ({str(self.teacher)!r},), got "
                             f"the single {type(self.teacher).__name__} {str(self.teacher)!r}")
        if not 0 < self.distill_weight <= 1:
            raise ValueError(f"distill_weight must be in (0, 1], got {self.distill_weight}")
        if not 0 <= self.class_balance <= 1:
            raise ValueError(f"class_balance must be a power in [0, 1] (0 = off), got {self.class_balance}")
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.quant_noise and self.fake_quant:
            raise ValueError("quant_noise and fake_quant (--quant-noise, --fake-quant) are two ways of training for "
                             "int8: choose one")
        if not self.teacher and (self.teacher_flip or self.distill_weight != 0.5 or self.temperature != 1.0):
            raise ValueError("distill_weight, temperature and teacher_flip (--distill-weight, --temperature, "
                             "--teacher-flip) apply to distillation only: name the teacher(s) with --teacher")
        AugmentConfig.preset(self.aug)


class WeightAverage:
    """Exponential moving average of a model's weights (trainable weights and batch-norm statistics).

    :meth:`update` after every training step (:meth:`callback` does it during ``fit``):
    ``avg = d * avg + (1 - d) * w`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that
    the first steps' weights fade quickly. :meth:`applied` swaps the average in.

    Not the Keras optimizer's ``use_ema``: that overwrites the weights with the average at the end of every
    ``fit`` call, and ferlite calls ``fit`` once per epoch. This one also averages batch-norm statistics.
    """

    def __init__(self, decay: float):
        self.decay = decay
        self.updates = 0
        self.weights: list[np.ndarray] = []

    def update(self, model) -> None:
        """Fold the model's current weights into the average."""
        current = model.get_weights()
        if not self.weights:
            self.weights = [np.array(w, copy=True) for w in current]
        else:
            d = min(self.decay, (1 + self.updates) / (10 + self.updates))
            for avg, w in zip(self.weights, current, strict=True):
                avg *= d
                avg += (1 - d) * w
        self.updates += 1

    def callback(self, model):
        """A Keras callback that updates the average after every training batch of ``model``."""
        import keras

        return keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: self.update(model))

    @contextlib.contextmanager
    def applied(self, model):
        """Within the block the model holds the averaged weights; its own weights come back afterwards."""
        own = model.get_weights()
        model.set_weights(self.weights)
        try:
            yield model
        finally:
            model.set_weights(own)

    def save(self, path: Path) -> None:
        """Write the average and its update count to ``path`` (npz, atomically)."""
        write_npz(path, *self.weights, updates=self.updates)

    def load(self, path: Path) -> None:
        """Read what :meth:`save` wrote."""
        with np.load(path) as z:
            self.updates = int(z["updates"])
            self.weights = [z[f"arr_{i}"] for i in range(len(z.files) - 1)]


def evaluate_arrays(model, faces: FaceSet, batch_size: int = 256) -> tuple[dict, np.ndarray]:
    """Predict ``faces`` with a Keras model; return (metrics dict, predictions).

    The metrics are those of :func:`ferlite.evaluate.score_faces` (FER+ protocols for a FER+ folder, the
    normalised votes for a CSV dataset) for a model with the data's classes.
    """
    import keras

    from ferlite.evaluate import score_faces

    size, channels = model.input_shape[1], model.input_shape[-1]
    ds = make_dataset(faces.images, np.zeros((len(faces), 1), np.float32), batch_size=batch_size,
                      input_size=size, channels=channels)
    # plain calls, not model.predict: under a multi-worker strategy predict would shard the data over workers
    pred = np.concatenate([keras.ops.convert_to_numpy(model(x, training=False)) for x, _ in ds])
    classes = FERPLUS_CLASSES[: pred.shape[1]] if faces.is_ferplus else faces.classes
    r = score_faces(faces, pred, classes)
    keys = ("n", "mae", "top1", "kl", "major8_acc", "major8_n", "class_mae")
    return {k: r[k] for k in keys}, pred


def _optimizer(cfg: TrainConfig, steps_per_epoch: int, epochs: int | None = None):
    import keras

    total = (epochs or cfg.epochs) * steps_per_epoch
    warmup = min(cfg.warmup_epochs * steps_per_epoch, max(total - 1, 0))
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.peak_lr * (0.01 if warmup else 1.0), decay_steps=max(total - warmup, 1),
            alpha=0.0, warmup_target=cfg.peak_lr if warmup else None, warmup_steps=warmup,
        )
    else:
        lr = cfg.peak_lr
    if cfg.opt == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay or None)
    if cfg.opt == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)


def _loss(cfg: TrainConfig):
    import keras

    if cfg.loss == "bce":
        return keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)
    if cfg.loss == "kl":
        return keras.losses.KLDivergence()
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)


def _transfer_weights(model, source: str) -> list[str]:
    """Copy weights layer by layer (matched by name and shape) from a checkpoint path or registered name
    (``default``: the default pretrained model); return the layers that received nothing."""
    from ferlite.training.quantnoise import load_checkpoint
    from ferlite.weights import resolve_model

    source = load_checkpoint(resolve_model(None if source == "default" else source))
    by_name = {layer.name: layer for layer in source.layers}
    missed = []
    for layer in model.layers:
        if not layer.weights:
            continue
        src = by_name.get(layer.name)
        if src is None or [w.shape for w in src.weights] != [w.shape for w in layer.weights]:
            missed.append(layer.name)
            continue
        layer.set_weights(src.get_weights())
    return missed


def _multiworker_epoch(model, strategy, ds, loss, steps: int, global_batch: int,
                       after_step: Callable[[], object] | None = None) -> dict:
    """One epoch of a plain distributed training loop, for MultiWorkerMirroredStrategy, whose ``model.fit`` Keras 3
    does not support (keras-team/keras#20585). Each replica averages its loss over the global batch; the optimizer
    all-reduces the gradients; ``after_step`` runs after every step. Returns the epoch's ``loss``, ``mae``, ``top1``
    and ``kl`` as ``fit`` reports them."""
    import tensorflow as tf

    def step(x, y, *weights):  # weights: the class-balanced loss's, when on
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            per_face = loss.call(y, p) * (weights[0] if weights else 1.0)
            mean_loss = tf.nn.compute_average_loss(per_face, global_batch_size=global_batch)
        grads = tape.gradient(mean_loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        yc, pc = tf.clip_by_value(y, 1e-7, 1.0), tf.clip_by_value(p, 1e-7, 1.0)  # as keras.metrics.KLDivergence
        hits = tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(p, -1)), tf.float32)
        return tf.stack([tf.reduce_sum(per_face), tf.reduce_sum(tf.reduce_mean(tf.abs(y - p), -1)),
                         tf.reduce_sum(hits), tf.reduce_sum(yc * tf.math.log(yc / pc))])

    @tf.function
    def run(batch):
        return strategy.reduce("SUM", strategy.run(step, args=batch), axis=None)

    sums = np.zeros(4)
    for batch in strategy.experimental_distribute_dataset(ds.take(steps)):
        sums += run(batch).numpy()
        if after_step:
            after_step()
    return dict(zip(("loss", "mae", "top1", "kl"), sums / (steps * global_batch), strict=True))


def _val_columns(prefix: str, val: dict) -> dict:
    """The history columns of one validation score: ``{prefix}_mae``, ``_top1``, ``_kl``, ``_major8``."""
    return {f"{prefix}_mae": val["mae"], f"{prefix}_top1": val["top1"], f"{prefix}_kl": val["kl"],
            f"{prefix}_major8": val["major8_acc"]}


def _val_summary(row: dict, prefix: str) -> str:
    """The progress-line text of the columns :func:`_val_columns` wrote."""
    return (f"val_mae {row[f'{prefix}_mae']:.4f}  val_top1 {row[f'{prefix}_top1']:.3f}  "
            f"val_major8 {row[f'{prefix}_major8']:.3f}")


def _sync_batch_norm(model, on: bool) -> None:
    """Batch norm over the global batch (statistics all-reduced across replicas) when ``on``."""
    import keras

    from ferlite.training.quantnoise import inner_layers

    for layer in inner_layers(model):  # also inside --quant-noise and --fake-quant wrappers
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = on


def _set_backbone_trainable(model, trainable: bool) -> None:
    """Freeze or unfreeze every layer but the classifier head (``head_*``); frozen batch norm runs in inference mode."""
    for layer in model.layers:
        if not layer.name.startswith("head_"):
            layer.trainable = trainable


def _plot_curves(history_csv: Path, out: Path) -> None:
    """``curves.png``: loss, MAE and top-1 per epoch, training and validation, from ``history.csv``."""
    import pandas as pd
    from matplotlib.figure import Figure

    from ferlite.report import save_png

    h = pd.read_csv(history_csv)
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for ax, key, title in zip(axes, ("loss", "mae", "top1"), ("loss", "MAE (seed9)", "top-1")):
        if key in h:
            ax.plot(h["epoch"], h[key], label="train")
        if f"val_{key}" in h:
            ax.plot(h["epoch"], h[f"val_{key}"], label="valid")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, out)


def _input_statement(cfg: TrainConfig, ferplus: bool) -> str:
    """How images are converted to the model's input, for the sidecar."""
    if ferplus:
        color = "48x48 gray FER+ faces" + (" repeated to 3 channels" if cfg.channels == 3 else "")
    else:
        color = "images read as gray (OpenCV luma)" if cfg.channels == 1 else "images read as RGB"
    return (f"uint8 {cfg.img_size}x{cfg.img_size}x{cfg.channels}: {color}, resized to {cfg.img_size}x{cfg.img_size} "
            "(area interpolation when shrinking, bilinear when enlarging); scaling to [-1, 1] is inside the model")


def _output_dir(cfg: TrainConfig) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    return Path("checkpoints") / time.strftime(f"{cfg.model}_{cfg.alpha:g}_%Y%m%d-%H%M%S")


def _prepare_run_dir(run_dir: Path) -> bool:
    """Create the run folder if needed and prove that it takes a file, before any data is read or any epoch runs;
    remove temporary files a killed run left in it. Return whether the folder was created here."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-test-")
        # unbuffered writes, and the probe removed before an error is reported (a NamedTemporaryFile whose flush
        # fails on a full disk stays there until it is garbage-collected)
        try:
            os.write(fd, b"ferlite")
            os.fsync(fd)
        finally:
            try:
                os.close(fd)
            finally:
                os.unlink(probe)
    except OSError as exc:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):  # made here for nothing: leave nothing
            run_dir.rmdir()
        raise OSError(f"cannot write the run folder {run_dir}: {exc}; expected a folder ferlite can create and "
                      "write to: choose another --output-dir, fix its permissions or free some space") from exc
    remove_temporaries(run_dir)
    return created


def _save_model(model, path: Path) -> None:
    """``model.save`` atomically: a kill or a full disk mid-save leaves the previous file, never a partial one."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def _checkpoint_files(ema: bool) -> tuple[str, ...]:
    """The files ``state.json`` vouches for (by sha256): what ``resume`` loads."""
    return ("last.keras", "ema.npz") if ema else ("last.keras",)


def _read_state(run_dir: Path, ema: bool) -> tuple[dict, bool]:
    """``state.json`` of a run, checked against the checkpoint files it records, and whether it was rolled forward.

    A run killed between replacing ``last.keras`` (and ``ema.npz``) and ``state.json`` has a complete checkpoint of
    the next epoch: the state is then rolled forward from ``best_mae.json`` / ``best_major8.json``, written earlier
    in that epoch. Raises ValueError when the files cannot be reconciled.
    """
    state_file = run_dir / "state.json"
    try:
        state = json.loads(state_file.read_text())
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--resume: {state_file} is not a training state ({exc}): expected a JSON object with the "
                         "epoch of the last checkpoint") from None
    recorded = state.get("sha256") or {}
    changed = [f for f, digest in recorded.items() if (run_dir / f).is_file() and file_sha256(run_dir / f) != digest]
    if not changed:
        return state, False
    if sorted(changed) != sorted(_checkpoint_files(ema)):
        raise ValueError(f"--resume: {', '.join(changed)} in {run_dir} do not match state.json (epoch "
                         f"{state['epoch']}) but the other checkpoint files do: the run was killed while writing its "
                         "checkpoint and cannot be resumed exactly; start a new run (--init-weights "
                         f"{run_dir / 'last.keras'} keeps the weights)")
    epoch = int(state["epoch"]) + 1  # every checkpoint file is the next epoch's: it completed
    best = {k: json.loads((run_dir / f"best_{k}.json").read_text()) for k in ("mae", "major8")
            if (run_dir / f"best_{k}.json").is_file()}
    return {"epoch": epoch, "best_mae": best["mae"]["valid"]["mae"] if "mae" in best else None,
            "best_major8": best["major8"]["valid"]["major8_acc"] if "major8" in best else None,
            "wait": epoch - best["mae"]["epoch"] if "mae" in best else 0, "distill": state.get("distill"),
            "sha256": {f: file_sha256(run_dir / f) for f in _checkpoint_files(ema)}}, True


def _distill_state(teachers: Teachers | None) -> dict | None:
    """What ``state.json`` records of a run's distillation, for ``resume`` to compare: the teachers (their sha256
    decides, not the names they were given by), the weight, the temperature and the flip."""
    if teachers is None:
        return None
    return {"teachers": teachers.names, "sha256": teachers.sha256, "distill_weight": teachers.weight,
            "temperature": teachers.temperature, "teacher_flip": teachers.flip}


def _describe_distill(record: dict | None) -> str:
    if not record:
        return "no teacher"
    named = ", ".join(f"{n} (sha256 {d[:12]})" for n, d in zip(record["teachers"], record["sha256"], strict=True))
    return (f"--teacher {named}, --distill-weight {record['distill_weight']:g}, --temperature "
            f"{record['temperature']:g}, teacher flip {'on' if record['teacher_flip'] else 'off'}")


def _check_resumed_distill(run_dir: Path, state: dict, teachers: Teachers | None) -> None:
    """Refuse to resume a run with other teachers (by sha256), weight, temperature or flip than it was started with
    (a run without the record, from before distillation existed, had no teacher)."""
    old, new = state.get("distill"), _distill_state(teachers)
    keys = ("sha256", "distill_weight", "temperature", "teacher_flip")
    if bool(old) != bool(new) or (old and any(old.get(k) != new[k] for k in keys)):
        raise ValueError(f"--resume: {run_dir} was trained with {_describe_distill(old)}; this run asks for "
                         f"{_describe_distill(new)}: resume with the original run's teacher options (or start a new "
                         "run)")


def _read_history(path: Path, fields: list[str], epochs: int) -> list[list[str]]:
    """The rows of ``history.csv`` for epochs 1..``epochs`` (a row of an epoch whose checkpoint was not written,
    because the run was killed, is dropped: that epoch runs again)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != fields:
        raise ValueError(f"--resume: {path} has columns {rows[0] if rows else 'none'}, this run writes {fields}: "
                         "resume with the options of the original run (e.g. the same --ema)")
    return [r for r in rows[1:] if len(r) == len(fields) and r[0].isdigit() and int(r[0]) <= epochs]


def _write_history(path: Path, fields: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        writer.writerows(rows)


def _check_trainable(cfg: TrainConfig, train_faces: FaceSet, x_train: np.ndarray, val_faces: FaceSet,
                     n_cls: int) -> None:
    """Refuse, before anything is written, data that cannot make one training step or one validation score."""
    require_faces(train_faces, cfg.train, "train on")
    require_faces(val_faces, cfg.val, "validate on")
    if not len(x_train):
        raise DataError(f"{cfg.train}: none of its {len(train_faces)} faces has a vote for the {n_cls} classes of "
                        f"--target-mode {cfg.target_mode}: nothing to train on")
    if not len(val_faces.targets("seed9", n_cls)[0]):
        raise DataError(f"{cfg.val}: none of its {len(val_faces)} faces has a vote for the model's {n_cls} classes: "
                        "nothing to validate on")
    if len(x_train) < cfg.batch_size:
        raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {len(x_train)} training faces "
                         f"({cfg.target_mode} kept {len(x_train)} of {len(train_faces)}): every step takes one full "
                         f"batch, so pass --batch-size {len(x_train)} or less (the batch size is not shrunk for you: "
                         "it shapes the learning-rate schedule, the batch-norm statistics and, with --scale-lr, the "
                         "peak learning rate)")


def train(cfg: TrainConfig, *, command: str | None = None, log: Callable[[str], object] = print) -> dict:
    """Train a model as ``cfg`` says; return the final sidecar (including validation metrics).

    Args:
        cfg: the run's options.
        command: the command line to record in the sidecar (defaults to ``sys.argv``).
        log: where progress lines go.

    Under a multi-worker strategy every worker runs this with the same ``cfg``; only the chief writes
    the run folder (the others write scratch copies to a temporary folder, removed at the end), and
    ``resume`` reads the chief's checkpoint from ``cfg.output_dir`` (a shared filesystem).
    """
    from ferlite.training.distribute import is_chief, make_strategy, worker_id

    cfg.check()
    strategy = make_strategy(cfg.strategy)
    run_dir = _output_dir(cfg)
    state_file = run_dir / "state.json"
    if cfg.resume and not state_file.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint to resume in {run_dir} (expected {state_file})")
    if not cfg.resume and (run_dir / "last.keras").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another "
                              "--output-dir")
    teachers = None
    if cfg.teacher:  # loaded and checked before the run folder is made; outside the strategy's scope: not replicated
        teachers = load_teachers(cfg.teacher, input_size=cfg.img_size, channels=cfg.channels,
                                 weight=cfg.distill_weight, temperature=cfg.temperature, flip=cfg.teacher_flip)
    created = False
    if is_chief(strategy):
        created = _prepare_run_dir(run_dir)
        folder = contextlib.nullcontext(run_dir)
    else:  # another worker: a scratch folder, removed at the end, and log lines that say who wrote them
        task_type, task_id = worker_id(strategy)
        folder = tempfile.TemporaryDirectory(prefix=f"ferlite-{task_type}{task_id}-", ignore_cleanup_errors=True)
        say = log

        def log(msg: str) -> None:
            say(f"[{task_type} {task_id}] {msg}")

    try:
        with folder as out, strategy.scope():
            return _train(cfg, strategy, Path(out), run_dir, command, log, teachers)
    except BaseException:
        if created and not any(run_dir.iterdir()):  # refused before the first checkpoint: leave nothing behind
            run_dir.rmdir()
        raise


@dataclass
class _Data:
    """The faces of a run: the training faces its target mode keeps and their targets; the validation faces."""

    train_faces: FaceSet
    val_faces: FaceSet
    x_train: np.ndarray
    targets: Targets

    @property
    def num_classes(self) -> int:
        """The classes of the targets: the model's outputs."""
        return self.targets.targets.shape[1]


def _load_data(cfg: TrainConfig, teachers: Teachers | None, replicas: int, log) -> _Data:
    """Step 1: read the training and validation data and check, before anything is written, that they can train and
    score a model (and that the teachers predict their classes)."""
    read = dict(skip_bad=cfg.skip_bad, size=cfg.img_size, channels=cfg.channels)
    train_faces = read_dataset(cfg.train, **read)
    val_faces = read_dataset(cfg.val, **read)
    if val_faces.classes != train_faces.classes:
        raise ValueError(f"--val has class columns {val_faces.classes}, --train has {train_faces.classes}: "
                         "they must be the same, in the same order")
    x_train, t = train_faces.targets(cfg.target_mode, cfg.num_classes)
    n_cls = t.targets.shape[1]
    _check_trainable(cfg, train_faces, x_train, val_faces, n_cls)
    if teachers is not None:
        teachers.check_classes(t.classes)
    log(f"train: {len(x_train)} faces kept by {cfg.target_mode} ({t.dropped} dropped), {n_cls} classes; "
        f"valid: {len(val_faces)} faces; global batch {cfg.batch_size} on {replicas} replica(s), "
        f"peak lr {cfg.peak_lr:g}")
    return _Data(train_faces, val_faces, x_train, t)


@dataclass
class _Model:
    """The model being trained (with its ``--quant-noise`` / ``--fake-quant`` layers, if any), the plain architecture
    its weights are saved in (None: the model itself), its weight average, and where training starts."""

    model: Any
    plain: Any | None
    ema: WeightAverage | None
    start_epoch: int
    state: dict  # the resumed run's state.json; {} for a new run

    def saveable(self):
        """The model to save: the trained weights, without noise layers."""
        if self.plain is None:
            return self.model
        from ferlite.training.quantnoise import copy_to_plain

        return copy_to_plain(self.model, self.plain)


def _start_model(cfg: TrainConfig, data: _Data, run_dir: Path, out: Path, teachers: Teachers | None, replicas: int,
                 log) -> _Model:
    """Step 2: build a new model (``--init-weights``, a frozen backbone, noise layers, compiled), or load the
    checkpoint of the run being resumed and check it against the options; then its weight average."""
    import keras

    from ferlite.training.models import create_model
    from ferlite.training.quantnoise import FakeQuant, StepNoise, load_checkpoint, quant_noise_layer, with_quant_noise

    def build():
        return create_model(cfg.model, alpha=cfg.alpha, input_size=cfg.img_size, channels=cfg.channels,
                            num_classes=data.num_classes, **cfg.model_kwargs)

    noise_layer = FakeQuant if cfg.fake_quant else StepNoise if cfg.quant_noise else None
    state, rolled = {}, False
    keras.utils.set_random_seed(cfg.seed)
    if cfg.resume:
        state, rolled = _read_state(run_dir, bool(cfg.ema))
        _check_resumed_distill(run_dir, state, teachers)
        if rolled:
            log(f"state.json was one epoch behind the checkpoint (the run was killed while writing it): the "
                f"checkpoint of epoch {int(state['epoch'])} is complete, continuing from it")
        model = load_checkpoint(run_dir / "last.keras", compile=True)
        flags = {None: None, StepNoise: "--quant-noise", FakeQuant: "--fake-quant"}
        trained, wanted = flags[quant_noise_layer(model)], flags[noise_layer]
        if trained != wanted:
            raise ValueError(f"{run_dir} was trained {f'with {trained}' if trained else f'without {wanted}'}: resume "
                             "with the options of the original run")
        _sync_batch_norm(model, replicas > 1)
        if not (out / "history.csv").is_file():  # a worker's scratch folder
            shutil.copy(run_dir / "history.csv", out / "history.csv")
        log(f"resuming {run_dir} at epoch {int(state['epoch']) + 1} on {replicas} replica(s)")
    else:
        model = build()
        _sync_batch_norm(model, replicas > 1)
        if cfg.init_weights:
            missed = _transfer_weights(model, cfg.init_weights)
            if missed:
                warnings.warn(f"--init-weights: these layers received no weights: {', '.join(missed)}", stacklevel=2)
        if cfg.freeze_backbone:
            _set_backbone_trainable(model, False)
            log(f"backbone frozen for {cfg.freeze_backbone} epoch(s): training the head only")
        if noise_layer is not None:
            model = with_quant_noise(model, noise_layer)
        model.compile(optimizer=_optimizer(cfg, _steps(cfg, data)), loss=_loss(cfg), metrics=keras_metrics())
    plain = build() if noise_layer is not None else None  # what is saved: the trained weights without noise layers
    ema = WeightAverage(cfg.ema) if cfg.ema else None
    if ema and cfg.resume:
        ema.load(run_dir / "ema.npz")
    if rolled and out == run_dir:  # once the checkpoint has loaded: a resume refused leaves state.json as it was
        write_sidecar(run_dir / "state.json", state)
    return _Model(model, plain, ema, int(state.get("epoch", 0)), state)


def _steps(cfg: TrainConfig, data: _Data) -> int:
    """Training steps per epoch: every step takes one full global batch."""
    return len(data.x_train) // cfg.batch_size


def class_balance_weights(targets: np.ndarray, power: float) -> np.ndarray:
    """Each face's loss weight for a class-balanced loss: ``sum_c target_c * prior_c ** -power``, with ``prior`` the
    mean target over the faces (rare classes weigh more), scaled to a mean of 1. Power 0 weighs every face 1; 1 is
    the inverse class frequency."""
    targets = np.asarray(targets, dtype=np.float64)
    prior = targets.mean(axis=0)
    w = targets @ np.where(prior > 0, prior, 1.0) ** -power
    return (w / w.mean()).astype(np.float32)


def _epoch_datasets(cfg: TrainConfig, data: _Data, teachers: Teachers | None, log) -> Callable[[int], Any]:
    """A function from an epoch's seed to its training ``tf.data.Dataset``, targets distilled from the teachers
    when there are any (computed once here when every epoch sees the same, un-augmented faces)."""
    import tensorflow as tf

    cached = None  # the teachers' distribution of the un-augmented faces, when every epoch sees those
    if teachers is not None:
        where = "each augmented batch, in the input pipeline"
        if cfg.aug == "none":
            cached, where = teachers.predict_arrays(data.x_train), "the un-augmented faces, once (--aug none)"
        log(f"distilling from {len(teachers.models)} teacher(s) ({', '.join(teachers.names)}"
            f"{', flip-averaged' if teachers.flip else ''}): target = {1 - teachers.weight:g} x votes + "
            f"{teachers.weight:g} x teachers at temperature {teachers.temperature:g}, teachers run on {where}")

    weights = None
    if cfg.class_balance:
        weights = class_balance_weights(data.targets.targets, cfg.class_balance)
        log(f"class-balanced loss (power {cfg.class_balance:g}): face weights {weights.min():.2f} to "
            f"{weights.max():.2f}, mean 1")

    def train_dataset(epoch_seed: int):
        targets = data.targets.targets
        if cfg.target_mode == "probability":
            targets = sample_probability_targets(targets, np.random.default_rng(epoch_seed))
        if cached is not None:
            targets = mix_targets(targets, cached, teachers.weight)
        relabel = teachers.relabel if teachers is not None and cached is None else None
        ds = make_dataset(data.x_train, targets, batch_size=cfg.batch_size, training=True, augment=cfg.aug,
                          input_size=cfg.img_size, channels=cfg.channels, seed=epoch_seed, relabel=relabel,
                          weights=weights)
        options = tf.data.Options()  # workers take their share of each global batch
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return ds.with_options(options)

    return train_dataset


@dataclass
class _Progress:
    """What each epoch hands the next, and ``state.json`` records: the ``history.csv`` rows, the best validation
    scores and the epochs since the MAE last improved."""

    fields: list[str]
    history: list[list]
    best_mae: float
    best_major8: float
    wait: int


def _run_epochs(cfg: TrainConfig, strategy, out: Path, data: _Data, run: _Model, datasets: Callable[[int], Any],
                teachers: Teachers | None, log, run_start: float) -> None:
    """Step 3: fit, score and checkpoint (:func:`_write_checkpoint`) each epoch from ``run.start_epoch`` on, until
    ``cfg.epochs`` or an early stop."""
    import keras
    import tensorflow as tf

    model, ema, steps = run.model, run.ema, _steps(cfg, data)
    fields = ["epoch", "loss", "mae", "top1", "kl", "val_mae", "val_top1", "val_kl", "val_major8", "lr", "seconds"]
    if ema:  # the averaged weights' scores, which select the best models
        fields[9:9] = ["ema_val_mae", "ema_val_top1", "ema_val_kl", "ema_val_major8"]
    progress = _Progress(fields, _read_history(out / "history.csv", fields, run.start_epoch) if cfg.resume else [],
                         run.state.get("best_mae") or math.inf, run.state.get("best_major8") or -math.inf,
                         int(run.state.get("wait", 0)))
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_mae", factor=0.5, patience=3, min_lr=1e-6)
    plateau.set_model(model)
    fit_callbacks = [ema.callback(model)] if ema else []
    for epoch in range(run.start_epoch, cfg.epochs):
        if cfg.freeze_backbone and epoch == cfg.freeze_backbone:
            _set_backbone_trainable(model, True)
            model.compile(optimizer=_optimizer(cfg, steps, cfg.epochs - epoch), loss=_loss(cfg),
                          metrics=keras_metrics())
            log(f"epoch {epoch + 1}: backbone unfrozen, fine-tuning every layer")
        t0 = time.time()
        ds = datasets(cfg.seed * 100003 + epoch)  # this epoch's order and augmentation depend on the seed only
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            row = _multiworker_epoch(model, strategy, ds, _loss(cfg), steps, cfg.batch_size,
                                     after_step=(lambda: ema.update(model)) if ema else None)
        else:
            h = model.fit(ds, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps, shuffle=False,
                          callbacks=fit_callbacks, verbose=1 if sys.stdout.isatty() else 0)
            row = {k: h.history[k][-1] for k in ("loss", "mae", "top1", "kl")}
        seconds = time.time() - t0
        val, _ = evaluate_arrays(model, data.val_faces)
        lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        row.update(epoch=epoch + 1, lr=lr, seconds=round(seconds, 1), **_val_columns("val", val))
        _write_checkpoint(cfg, out, run, data.val_faces, epoch, val, row, progress, plateau, teachers)
        done = epoch + 1 - run.start_epoch
        eta = (time.time() - run_start) / done * (cfg.epochs - epoch - 1)
        averaged = f"  ema: {_val_summary(row, 'ema_val')}" if ema else ""
        log(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['loss']:.4f}  {_val_summary(row, 'val')}{averaged}  "
            f"lr {lr:.2e}  "
            f"{steps * cfg.batch_size / seconds:.0f} img/s  {seconds:.0f}s  ETA {eta / 60:.1f} min")
        if cfg.patience and progress.wait >= cfg.patience:
            log(f"early stopping: val_mae has not improved for {progress.wait} epochs")
            break


def _write_checkpoint(cfg: TrainConfig, out: Path, run: _Model, val_faces: FaceSet, epoch: int, val: dict, row: dict,
                      progress: _Progress, plateau, teachers: Teachers | None) -> None:
    """The end of an epoch on disk: with ``--ema`` the averaged weights scored (they select the best models); the
    best models by validation MAE and major8; the ``history.csv`` row; the plateau schedule stepped; ``last.keras``
    (+ ``ema.npz``); and ``state.json`` last, vouching for the checkpoint by sha256. Every file is replaced
    atomically; a write that fails raises OSError saying that the folder keeps the previous epoch's checkpoint."""
    model, ema = run.model, run.ema
    try:
        with ema.applied(model) if ema else contextlib.nullcontext():  # best models: the averaged weights
            if ema:
                val, _ = evaluate_arrays(model, val_faces)
                row.update(_val_columns("ema_val", val))
            improved = val["mae"] < progress.best_mae
            if improved:
                progress.best_mae = val["mae"]
                _save_model(run.saveable(), out / "best_mae.keras")
                write_sidecar(out / "best_mae.json", {"epoch": epoch + 1, "valid": val})
            if val["major8_n"] and val["major8_acc"] > progress.best_major8:
                progress.best_major8 = val["major8_acc"]
                _save_model(run.saveable(), out / "best_major8.keras")
                write_sidecar(out / "best_major8.json", {"epoch": epoch + 1, "valid": val})
            if cfg.keep_epochs:
                _save_model(run.saveable(), out / f"epoch_{epoch + 1:03d}.keras")
                write_sidecar(out / f"epoch_{epoch + 1:03d}.json", {"epoch": epoch + 1, "valid": val})
        progress.history.append([row[k] for k in progress.fields])
        _write_history(out / "history.csv", progress.fields, progress.history)
        progress.wait = 0 if improved else progress.wait + 1
        if cfg.schedule == "plateau":
            plateau.on_epoch_end(epoch, {"val_mae": val["mae"]})
        _save_model(model, out / "last.keras")
        if ema:
            ema.save(out / "ema.npz")
        write_sidecar(out / "state.json", {
            "epoch": epoch + 1, "best_mae": progress.best_mae, "best_major8": progress.best_major8,
            "wait": progress.wait, "distill": _distill_state(teachers),
            "sha256": {f: file_sha256(out / f) for f in _checkpoint_files(bool(ema))}})
    except OSError as exc:
        raise OSError(f"could not write the epoch {epoch + 1} checkpoint in {out}: {exc}; the folder keeps the "
                      f"last complete one (epoch {epoch}): free some space, then run again with --resume") from exc


def _finish(cfg: TrainConfig, out: Path, data: _Data, teachers: Teachers | None, command: str | None, log,
            run_start: float) -> dict:
    """Step 4: ``curves.png``; ``model.keras``, the best model by validation MAE (without optimizer state), and its
    sidecar ``model.json``, which is returned."""
    import keras
    import tensorflow as tf

    from ferlite.training.quantnoise import load_checkpoint

    _plot_curves(out / "history.csv", out / "curves.png")
    best_model = load_checkpoint(out / "best_mae.keras")  # no optimizer state
    _sync_batch_norm(best_model, False)
    best_info = json.loads((out / "best_mae.json").read_text())
    _save_model(best_model, out / "model.keras")
    sidecar = {
        "name": out.name,
        "architecture": cfg.model,
        "alpha": cfg.alpha,
        "input_size": cfg.img_size,
        "channels": cfg.channels,
        "classes": list(data.targets.classes),
        # the mean training target: what ferlite.labels.balance divides by (Recognizer(balance=...))
        "class_prior": {c: round(float(p), 6) for c, p in
                        zip(data.targets.classes, data.targets.targets.mean(axis=0), strict=True)},
        "input": _input_statement(cfg, data.train_faces.is_ferplus),
        "params": int(best_model.count_params()),
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "config": asdict(cfg),
        "data": {"train": str(cfg.train), "train_faces": int(len(data.x_train)), "val": str(cfg.val),
                 "val_faces": len(data.val_faces)},
        "best_epoch": best_info["epoch"],
        "valid": best_info["valid"],
        "wall_time_s": round(time.time() - run_start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    if teachers is not None:
        sidecar["distillation"] = teachers.record()
    write_sidecar(out / "model.json", sidecar)
    v = best_info["valid"]
    major8 = f"  major8 {v['major8_acc']:.3f}" if v.get("major8_acc") is not None else ""
    log(f"best valid (epoch {best_info['epoch']}): MAE {v['mae']:.4f}  top-1 {v['top1']:.3f}{major8}  "
        f"-> {out / 'model.keras'}")
    return sidecar


def _train(cfg: TrainConfig, strategy, out: Path, run_dir: Path, command: str | None, log,
           teachers: Teachers | None) -> dict:
    """The training run of :func:`train` inside ``strategy``'s scope: writes to ``out``, resumes from ``run_dir``;
    distils from ``teachers`` if given."""
    replicas = strategy.num_replicas_in_sync
    data = _load_data(cfg, teachers, replicas, log)
    run = _start_model(cfg, data, run_dir, out, teachers, replicas, log)
    datasets = _epoch_datasets(cfg, data, teachers, log)
    run_start = time.time()
    _run_epochs(cfg, strategy, out, data, run, datasets, teachers, log, run_start)
    return _finish(cfg, out, data, teachers, command, log, run_start)
