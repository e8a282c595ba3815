"""Train ferlite architectures on FER+ with Keras 3 on JAX: for a GPU machine that has JAX but no TensorFlow.

``ferlite-train`` runs on TensorFlow (its ``tf.data`` pipeline and ``tf.distribute``). The GPU machine this
project is sometimes lent has JAX and no TensorFlow, and no network, so this script trains the same
architectures (:func:`ferlite.training.models.create_model`) with ferlite's recipe, imported from it rather than
restated: the targets (``seed9`` vote distributions over 9 classes) and the optimizer, learning-rate schedule and
loss of a :class:`ferlite.training.loop.TrainConfig` (AdamW, cosine decay after a linear warmup, cross-entropy on
the distribution; the defaults of ``--lr``, ``--warmup-epochs``, ``--weight-decay``, ``--batch-size`` and
``--aug`` are ``ferlite-train``'s), the augmentation presets (:data:`ferlite.training.augment.PRESETS`) and the
distilled target (:func:`ferlite.training.distill.mix_targets`); selection is by best FER2013Valid MAE. It runs on
the JAX backend (``KERAS_BACKEND=jax``, the default here) or on TensorFlow's. The data travels packed, as one xz
file:

    python tools/train_jax.py pack FER2013Train FER2013Valid ferplus.npz.xz        # here (TensorFlow-free)
    KERAS_BACKEND=jax python tools/train_jax.py train ferplus.npz.xz OUT \\
        --run mobilefacenet:2.0:0:80 --run mobilenet:1.0:0:80 --budget 420     # there

Each ``--run ARCH:ALPHA:SEED:EPOCHS[:AUG]`` writes ``OUT/<arch>-<alpha>-s<seed>.keras`` (a Keras 3 file, loadable
on TensorFlow) and its JSON sidecar with per-epoch validation history; a run that would not finish within the
time ``--budget`` (judged from the runs before it) is skipped. Then the ensemble of every trained model (and
each with horizontal-flip averaging) is scored on FER2013Valid into ``OUT/summary.json``. ``--limit N`` trains on
the first N training faces only (a smoke test).

Augmentation, per image and per epoch, with OpenCV on the host, computed as ferlite's ``tf.data`` pipeline
computes it (:mod:`ferlite.training.pipeline`): horizontal flip; rotation, zoom and shift as one affine warp with
the pipeline's sampling matrix and its reflected borders (the edge pixel repeated: TensorFlow's ``REFLECT``,
OpenCV's ``BORDER_REFLECT``); contrast and brightness; random erasing of one rectangle of 2% to 20% of the face,
of aspect ratio log-uniform in [1/3, 3], filled with uniform noise. FER2013Test is never read.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import lzma
import math
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("KERAS_BACKEND", "jax")

from ferlite.labels import FERPLUS_CLASSES, votes_to_targets  # noqa: E402
from ferlite.training.augment import PRESETS, AugmentConfig  # noqa: E402
from ferlite.training.distill import mix_targets  # noqa: E402
from ferlite.training.loop import TrainConfig  # noqa: E402

CLASSES = FERPLUS_CLASSES[:9]
RECIPE = TrainConfig(train="", val="")  # ferlite-train's defaults


def pack(train: str, val: str, dest: str) -> None:
    """Decode two FER+ folders (ferlite's reader) into one xz-compressed npz: images and votes of each."""
    from ferlite.datasets import read_ferplus_folder

    tr, va = read_ferplus_folder(train), read_ferplus_folder(val)
    buf = io.BytesIO()
    np.savez(buf, x_train=tr.images, v_train=tr.votes, x_val=va.images, v_val=va.votes)
    Path(dest).write_bytes(lzma.compress(buf.getvalue(), preset=6))
    print(f"{dest}: {len(tr)} train + {len(va)} valid faces, {Path(dest).stat().st_size / 1e6:.1f} MB")


def load(packed: str) -> dict[str, np.ndarray]:
    """The arrays of a :func:`pack` file."""
    with np.load(io.BytesIO(lzma.decompress(Path(packed).read_bytes()))) as z:
        return {k: z[k] for k in z.files}


def affine_matrix(angle: float, zoom: float, tx: float, ty: float, side: int) -> np.ndarray:
    """The 2x3 matrix ferlite's pipeline samples with (output pixel to input pixel, ``(x, y)`` = column, row):
    ``input = A @ (output - c) + c - t``, ``A`` a rotation by ``angle`` degrees over ``zoom``, ``c`` the centre."""
    c = (side - 1) / 2
    cos, sin = math.cos(math.radians(angle)) / zoom, math.sin(math.radians(angle)) / zoom
    return np.array([[cos, -sin, c - cos * c + sin * c - tx], [sin, cos, c - sin * c - cos * c - ty]])


def warp(face: np.ndarray, angle: float, zoom: float, tx: float, ty: float) -> np.ndarray:
    """A float32 ``(S, S)`` face rotated by ``angle`` degrees, zoomed by ``zoom`` and shifted by ``(tx, ty)``
    pixels as ferlite's pipeline does it: bilinear, borders reflected with the edge pixel repeated."""
    import cv2

    s = face.shape[0]
    return cv2.warpAffine(face, affine_matrix(angle, zoom, tx, ty, s), (s, s),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def augment(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """One augmented copy of uint8 faces ``(N, S, S)`` as :class:`~ferlite.training.augment.AugmentConfig` ``cfg``
    says: flip, affine warp, contrast, brightness, erasing, in the order and with the ranges of ferlite's
    ``tf.data`` pipeline (see the module's description)."""
    n, s = len(x), x.shape[1]
    flip = rng.random(n) < 0.5 if cfg.flip else np.zeros(n, bool)
    f = np.where(flip[:, None, None], x[:, :, ::-1], x).astype(np.float32)
    if cfg.shift or cfg.scale or cfg.rotation:
        angle = rng.uniform(-cfg.rotation, cfg.rotation, n)
        zoom = rng.uniform(1 - cfg.scale, 1 + cfg.scale, n)
        shift = rng.uniform(-cfg.shift, cfg.shift, (n, 2)) * s
        for i in range(n):
            f[i] = warp(f[i], angle[i], zoom[i], *shift[i])
    if cfg.contrast:
        mean = f.mean(axis=(1, 2), keepdims=True)
        f = (f - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast, (n, 1, 1)) + mean
    if cfg.brightness:
        f += rng.uniform(-cfg.brightness, cfg.brightness, (n, 1, 1)) * 255
    if cfg.erase:
        grid = np.arange(s)
        for i in np.flatnonzero(rng.random(n) < cfg.erase):
            area = rng.uniform(0.02, 0.2) * s * s
            aspect = math.exp(rng.uniform(-math.log(3.0), math.log(3.0)))
            h, w = min(math.sqrt(area * aspect), s), min(math.sqrt(area / aspect), s)
            y0, x0 = rng.uniform() * (s - h), rng.uniform() * (s - w)
            rows, cols = (grid >= y0) & (grid < y0 + h), (grid >= x0) & (grid < x0 + w)
            f[i][np.ix_(rows, cols)] = rng.uniform(0, 255, (rows.sum(), cols.sum()))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def augment_parallel(x: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, pool) -> np.ndarray:
    """:func:`augment` over 16 chunks on a thread pool (OpenCV and NumPy release the GIL); deterministic for
    a given ``rng`` state, whatever the pool's size."""
    chunks = np.array_split(np.arange(len(x)), 16)
    seeds = rng.integers(0, 2**63, len(chunks))
    parts = pool.map(lambda c, sd: augment(x[c], np.random.default_rng(sd), cfg), chunks, seeds)
    return np.concatenate(list(parts))


def score(votes: np.ndarray, probs: np.ndarray) -> dict:
    """ferlite's FER+ scores (MAE on seed9, top-1, major8) of 9-class predictions."""
    from ferlite.evaluate import score as ferplus_score

    r = ferplus_score(votes, probs, CLASSES)
    return {k: (float(r[k]) if isinstance(r[k], (float, np.floating)) else r[k])
            for k in ("n", "mae", "top1", "kl", "major8_acc", "major8_n")}


def predict(model, x: np.ndarray, flip: bool = False, batch_size: int | None = None) -> np.ndarray:
    """Softmax outputs for uint8 faces ``(N, S, S)``; with ``flip``, averaged with the mirrored faces'.
    ``batch_size`` defaults to all of them at once (one compiled shape)."""
    b = batch_size or len(x)
    p = model.predict(x[..., None], batch_size=b, verbose=0)
    if flip:
        p = (p + model.predict(np.ascontiguousarray(x[:, :, ::-1, None]), batch_size=b, verbose=0)) / 2
    return p


def distill_targets(teachers: list, faces: np.ndarray, votes: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """ferlite's distilled target for augmented ``faces``: ``mix_targets(votes, soften(teacher, T), W)``, the
    teachers' averaged (and, with ``teacher_flip``, flip-averaged) distribution at temperature ``T``."""
    tp = np.mean([predict(t, faces, flip=cfg.teacher_flip, batch_size=4096) for t in teachers], axis=0)
    if cfg.temperature != 1.0:  # ferlite.training.distill.soften's arithmetic (that one is a TensorFlow op)
        tp = np.power(tp / tp.max(axis=1, keepdims=True), 1.0 / cfg.temperature)
        tp /= tp.sum(axis=1, keepdims=True)
    return mix_targets(votes, tp.astype(np.float32), cfg.distill_weight)


def train_one(data: dict, cfg: TrainConfig, out: Path, log, deadline: float) -> dict:
    """Train one model as ``cfg`` says; save the best-MAE epoch's weights as ``.keras`` (no optimizer state) +
    sidecar; return the sidecar. Stops early, keeping the best epoch so far, when the next epoch would end after
    ``deadline``."""
    import keras

    from ferlite.sidecar import write_sidecar
    from ferlite.training.loop import _loss, _optimizer
    from ferlite.training.models import create_model

    arch, alpha, seed, epochs = cfg.model, cfg.alpha, cfg.seed, cfg.epochs
    keras.utils.set_random_seed(seed)
    teachers = [keras.models.load_model(p, compile=False) for p in cfg.teacher]
    t = votes_to_targets(data["v_train"], cfg.target_mode, 9)
    x, y = data["x_train"][t.keep], t.targets
    steps = len(x) // cfg.batch_size
    if steps < 1:
        raise SystemExit(f"{len(x)} training faces make no whole batch of {cfg.batch_size}: lower --batch-size")
    model = create_model(arch, alpha=alpha, num_classes=9)
    model.compile(optimizer=_optimizer(cfg, steps), loss=_loss(cfg))
    rng = np.random.default_rng(seed)
    name = f"{arch}-{alpha:g}-s{seed}"
    best, history, t0, stopped = None, [], time.time(), None
    pool = ThreadPoolExecutor(max(1, min(16, (os.cpu_count() or 2) - 1)))
    prefetch = ThreadPoolExecutor(1)  # the next epoch's faces are augmented while this one trains

    def next_epoch():
        order = rng.permutation(len(x))[:steps * cfg.batch_size]  # whole batches only: one compiled step shape
        return order, augment_parallel(x[order], rng, PRESETS[cfg.aug], pool)

    upcoming = prefetch.submit(next_epoch)
    for epoch in range(1, epochs + 1):
        if epoch > 2 and time.time() + (history[-1]["seconds"] - history[-2]["seconds"]) > deadline:
            stopped = epoch - 1
            log(f"{name}: stopped after epoch {stopped} of {epochs}: the time budget is spent")
            break
        order, xa = upcoming.result()
        upcoming = prefetch.submit(next_epoch)
        ya = distill_targets(teachers, xa, y[order], cfg) if teachers else y[order]
        fit = model.fit(xa[..., None], ya, batch_size=cfg.batch_size, epochs=1, shuffle=False, verbose=0)
        val = score(data["v_val"], predict(model, data["x_val"]))
        row = {"epoch": epoch, "loss": float(fit.history["loss"][-1]), **{k: val[k] for k in ("mae", "top1",
                                                                                             "major8_acc")},
               "seconds": round(time.time() - t0, 1)}
        history.append(row)
        if best is None or val["mae"] < best[0]:
            best = (val["mae"], epoch, model.get_weights())
        log(f"{name} epoch {epoch}/{epochs}: loss {row['loss']:.4f}  val MAE {val['mae']:.4f}  top-1 "
            f"{val['top1']:.4f}  major8 {val['major8_acc']:.4f}  ({row['seconds']:.0f} s)")
    upcoming.cancel()
    prefetch.shutdown(wait=True)
    pool.shutdown()
    model = create_model(arch, alpha=alpha, num_classes=9)  # uncompiled: the file holds no optimizer state
    model.set_weights(best[2])
    path = out / f"{name}.keras"
    model.save(path)
    val, val_flip = score(data["v_val"], predict(model, data["x_val"])), \
        score(data["v_val"], predict(model, data["x_val"], flip=True))
    info = {"name": name, "architecture": arch, "alpha": alpha, "input_size": 48, "channels": 1,
            "classes": list(CLASSES), "params": int(model.count_params()), "best_epoch": best[1],
            "valid": val, "valid_flip_averaged": val_flip,
            "recipe": {"seed": seed, "epochs": epochs, "epochs_run": stopped or epochs,
                       "batch_size": cfg.batch_size, "lr": cfg.lr, "schedule": cfg.schedule,
                       "warmup_epochs": cfg.warmup_epochs, "weight_decay": cfg.weight_decay,
                       "label_smoothing": cfg.label_smoothing, "aug": cfg.aug,
                       "aug_params": dataclasses.asdict(PRESETS[cfg.aug]),
                       "teachers": [Path(p).name for p in cfg.teacher], "distill_weight": cfg.distill_weight,
                       "temperature": cfg.temperature, "teacher_flip": cfg.teacher_flip,
                       "targets": f"{cfg.target_mode}, 9 classes", "optimizer": cfg.opt, "loss": cfg.loss},
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "data": {"train_faces": int(len(x)), "val_faces": int(len(data["x_val"]))},
            "wall_time_s": round(time.time() - t0, 1), "history": history,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_device()}",
            "versions": {"keras": keras.__version__, "backend": keras.backend.backend(), **_jax_version()}}
    write_sidecar(path.with_suffix(".json"), info)
    log(f"{name}: best epoch {best[1]}: MAE {val['mae']:.4f} top-1 {val['top1']:.4f} major8 "
        f"{val['major8_acc']:.4f}; flip-averaged MAE {val_flip['mae']:.4f} top-1 {val_flip['top1']:.4f} "
        f"major8 {val_flip['major8_acc']:.4f} -> {path}")
    return info


def _device() -> str:
    try:
        import jax

        return ", ".join(sorted({d.device_kind for d in jax.devices()}))
    except ImportError:
        return "no jax"


def _jax_version() -> dict:
    try:
        import jax

        return {"jax": jax.__version__}
    except ImportError:
        return {}


def ensemble(data: dict, paths: list[Path]) -> dict:
    """FER2013Valid scores of the averaged predictions of ``paths``, plain and flip-averaged."""
    import keras

    probs = [predict(keras.models.load_model(p, compile=False), data["x_val"], flip=f)
             for f in (False, True) for p in paths]
    half = len(paths)
    return {"members": [p.name for p in paths], "valid": score(data["v_val"], np.mean(probs[:half], axis=0)),
            "valid_flip_averaged": score(data["v_val"], np.mean(probs[half:], axis=0))}


def run_config(spec: str, args: argparse.Namespace) -> TrainConfig:
    """The :class:`~ferlite.training.loop.TrainConfig` of one ``--run ARCH:ALPHA:SEED:EPOCHS[:AUG]`` with the
    command line's options; exits with a message naming the bad part of ``spec`` or the invalid option."""
    parts = spec.split(":")
    if len(parts) not in (4, 5):
        raise SystemExit(f"--run {spec!r}: expected ARCH:ALPHA:SEED:EPOCHS[:AUG], e.g. mobilefacenet:1.0:0:60:light")
    arch, alpha, seed, epochs, *rest = parts
    try:
        cfg = TrainConfig(train=args.packed, val=args.packed, model=arch, alpha=float(alpha), seed=int(seed),
                          epochs=int(epochs), aug=(rest or [args.aug])[0], batch_size=args.batch_size, lr=args.lr,
                          warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
                          label_smoothing=args.label_smoothing, teacher=tuple(args.teacher),
                          teacher_flip=args.teacher_flip, distill_weight=args.distill_weight,
                          temperature=args.temperature)
        cfg.check()
        if AugmentConfig.preset(cfg.aug).degrades:
            raise ValueError(f"the {cfg.aug!r} preset's capture degradations (blur, noise, JPEG...) run in "
                             "ferlite-train's TensorFlow pipeline only; use ferlite-train")
    except ValueError as e:
        raise SystemExit(f"--run {spec!r}: {e}") from None
    return cfg


def main(argv: list[str] | None = None) -> None:
    """Command line: ``pack`` or ``train`` (see the module's description)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("train")
    p.add_argument("val")
    p.add_argument("dest")
    t = sub.add_parser("train")
    t.add_argument("packed")
    t.add_argument("out")
    t.add_argument("--run", action="append", required=True,
                   help="ARCH:ALPHA:SEED:EPOCHS[:AUG], in priority order (AUG: --aug by default)")
    t.add_argument("--budget", type=float, default=math.inf, help="seconds for all runs")
    t.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    t.add_argument("--lr", type=float, default=RECIPE.lr, help="peak learning rate")
    t.add_argument("--warmup-epochs", type=int, default=RECIPE.warmup_epochs)
    t.add_argument("--weight-decay", type=float, default=RECIPE.weight_decay)
    t.add_argument("--label-smoothing", type=float, default=RECIPE.label_smoothing)
    t.add_argument("--aug", choices=[k for k, v in PRESETS.items() if not v.degrades], default=RECIPE.aug,
                   help="ferlite's augmentation preset (not the capture degradations: ferlite-train has them)")
    t.add_argument("--teacher", action="append", default=[], help="a .keras teacher (repeat for an ensemble)")
    t.add_argument("--distill-weight", type=float, default=RECIPE.distill_weight,
                   help="weight of the teachers' distribution")
    t.add_argument("--temperature", type=float, default=RECIPE.temperature)
    t.add_argument("--teacher-flip", action="store_true", help="average each teacher with its mirrored input")
    t.add_argument("--limit", type=int, default=0, metavar="N",
                   help="train on the first N training faces only (a smoke test; epochs as --run says)")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        pack(args.train, args.val, args.dest)
        return
    if args.limit < 0:
        raise SystemExit(f"--limit must be a number of faces (0: all of them), got {args.limit}")
    configs = [run_config(spec, args) for spec in args.run]  # every --run checked before anything trains
    from ferlite.training.models import count_macs, create_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train_log.txt", "a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    start = time.time()
    data = load(args.packed)
    if args.limit:
        data["x_train"], data["v_train"] = data["x_train"][:args.limit], data["v_train"][:args.limit]
    log(f"device: {_device()}; data: {len(data['x_train'])} train, {len(data['x_val'])} valid faces "
        f"({time.time() - start:.1f} s)")
    done, rate = [], None  # rate: seconds per (epoch x relative cost), from the runs so far
    for spec, cfg in zip(args.run, configs, strict=True):
        cost = count_macs(create_model(cfg.model, alpha=cfg.alpha, num_classes=9))
        left = args.budget - (time.time() - start)
        if rate is not None and rate * cost * cfg.epochs > left - 30:
            log(f"skipped {spec}: about {rate * cost * cfg.epochs:.0f} s needed, {left:.0f} s left")
            continue
        t0 = time.time()
        info = train_one(data, cfg, out, log, start + args.budget)
        rate = max(rate or 0.0, (time.time() - t0) / (cost * info["recipe"]["epochs_run"]))
        done.append(out / f"{info['name']}.keras")
    if done:
        summary = ensemble(data, done)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        log(f"ensemble of {len(done)}: {json.dumps(summary['valid'])}\n  flip-averaged: "
            f"{json.dumps(summary['valid_flip_averaged'])}")
    log(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
