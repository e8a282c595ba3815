"""Train ferlite architectures on FER+ with Keras 3 on JAX: for a GPU machine that has JAX but no TensorFlow.

``ferlite-train`` runs on TensorFlow (its ``tf.data`` pipeline and ``tf.distribute``). The GPU machine this
project is sometimes lent has JAX and no TensorFlow, and no network, so this script trains the same
architectures (:func:`ferlite.models.create_model`), with the same targets (``seed9`` vote distributions over
9 classes), loss (cross-entropy on the distribution), optimizer (AdamW, cosine decay with warmup) and
selection (best FER2013Valid MAE), on the JAX backend. The data travels packed, as one xz file:

    python tools/train_jax.py pack FER2013Train FER2013Valid ferplus.npz.xz        # here (TensorFlow-free)
    KERAS_BACKEND=jax python tools/train_jax.py train ferplus.npz.xz OUT \\
        --run mobilefacenet:2.0:0:80 --run mobilenet:1.0:0:80 --budget 420     # there

Each ``--run ARCH:ALPHA:SEED:EPOCHS`` writes ``OUT/<arch>-<alpha>-s<seed>.keras`` (a Keras 3 file, loadable on
TensorFlow) and its JSON sidecar with per-epoch validation history; a run that would not finish within the
time ``--budget`` (judged from the runs before it) is skipped. Then the ensemble of every trained model (and
each with horizontal-flip averaging) is scored on FER2013Valid into ``OUT/summary.json``.

Augmentation, per image and per epoch, with OpenCV on the host: horizontal flip, rotation, zoom and shift
(one affine warp, reflected borders), brightness and contrast, and random erasing; ``--aug`` names a preset
with ``ferlite.data.AugmentConfig``'s meaning. FER2013Test is never read.
"""

from __future__ import annotations

import argparse
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

CLASSES = FERPLUS_CLASSES[:9]
AUGMENT = {  # flip, shift, scale, rotation, brightness, contrast, erase: as ferlite.data.AugmentConfig
    "light": dict(flip=True, shift=0.1, scale=0.0, rotation=0.0, brightness=0.0, contrast=0.0, erase=0.0),
    "standard": dict(flip=True, shift=0.1, scale=0.1, rotation=10.0, brightness=0.1, contrast=0.2, erase=0.0),
    "standard+erase": dict(flip=True, shift=0.1, scale=0.1, rotation=10.0, brightness=0.1, contrast=0.2, erase=0.25),
}


def pack(train: str, val: str, dest: str) -> None:
    """Decode two FER+ folders (ferlite's reader) into one xz-compressed npz: images and votes of each."""
    from ferlite.data import read_ferplus_folder

    tr, va = read_ferplus_folder(train), read_ferplus_folder(val)
    buf = io.BytesIO()
    np.savez(buf, x_train=tr.images, v_train=tr.votes, x_val=va.images, v_val=va.votes)
    Path(dest).write_bytes(lzma.compress(buf.getvalue(), preset=6))
    print(f"{dest}: {len(tr)} train + {len(va)} valid faces, {Path(dest).stat().st_size / 1e6:.1f} MB")


def load(packed: str) -> dict[str, np.ndarray]:
    """The arrays of a :func:`pack` file."""
    with np.load(io.BytesIO(lzma.decompress(Path(packed).read_bytes()))) as z:
        return {k: z[k] for k in z.files}


def augment(x: np.ndarray, rng: np.random.Generator, p: dict) -> np.ndarray:
    """One augmented copy of uint8 faces ``(N, S, S)``: flip, affine warp, brightness/contrast, erasing."""
    import cv2

    n, s = len(x), x.shape[1]
    out = np.empty_like(x)
    flip = rng.random(n) < 0.5 if p["flip"] else np.zeros(n, bool)
    angle = rng.uniform(-p["rotation"], p["rotation"], n)
    zoom = rng.uniform(1 - p["scale"], 1 + p["scale"], n)
    shift = rng.uniform(-p["shift"], p["shift"], (n, 2)) * s
    c = (s - 1) / 2
    for i in range(n):
        img = x[i, :, ::-1] if flip[i] else x[i]
        m = cv2.getRotationMatrix2D((c, c), angle[i], zoom[i])
        m[:, 2] += shift[i]
        out[i] = cv2.warpAffine(np.ascontiguousarray(img), m, (s, s), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
    f = out.astype(np.float32)
    if p["contrast"]:
        mean = f.mean(axis=(1, 2), keepdims=True)
        f = (f - mean) * rng.uniform(1 - p["contrast"], 1 + p["contrast"], (n, 1, 1)) + mean
    if p["brightness"]:
        f += rng.uniform(-p["brightness"], p["brightness"], (n, 1, 1)) * 255
    if p["erase"]:
        for i in np.flatnonzero(rng.random(n) < p["erase"]):
            area = rng.uniform(0.02, 0.2) * s * s
            ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            h = min(s, max(1, int(round(math.sqrt(area * ratio)))))
            w = min(s, max(1, int(round(math.sqrt(area / ratio)))))
            y0, x0 = rng.integers(0, s - h + 1), rng.integers(0, s - w + 1)
            f[i, y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, (h, w))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def augment_parallel(x: np.ndarray, rng: np.random.Generator, p: dict, pool) -> np.ndarray:
    """:func:`augment` over 16 chunks on a thread pool (OpenCV and NumPy release the GIL); deterministic for
    a given ``rng`` state, whatever the pool's size."""
    chunks = np.array_split(np.arange(len(x)), 16)
    seeds = rng.integers(0, 2**63, len(chunks))
    parts = pool.map(lambda c, sd: augment(x[c], np.random.default_rng(sd), p), chunks, seeds)
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


def distill_targets(teachers: list, faces: np.ndarray, votes: np.ndarray, args) -> np.ndarray:
    """``(1 - w) * votes + w * teacher`` for augmented ``faces``: the teachers' averaged (and, with
    ``--teacher-flip``, flip-averaged) distributions, sharpened or softened by ``--temperature`` T
    (``p ** (1/T)``, renormalised: the softmax of the logits / T)."""
    tp = np.mean([predict(t, faces, flip=args.teacher_flip, batch_size=4096) for t in teachers], axis=0)
    if args.temperature != 1.0:
        tp = np.power(np.maximum(tp, 1e-12), 1.0 / args.temperature)
        tp /= tp.sum(axis=1, keepdims=True)
    return ((1 - args.distill_weight) * votes + args.distill_weight * tp).astype(np.float32)


def train_one(data: dict, arch: str, alpha: float, seed: int, epochs: int, aug: str, args, out: Path, log,
              deadline: float) -> dict:
    """Train one model; save the best-MAE epoch's weights as ``.keras`` (no optimizer state) + sidecar; return the
    sidecar. Stops early, keeping the best epoch so far, when the next epoch would end after ``deadline``."""
    import keras

    from ferlite.models import create_model
    from ferlite.sidecar import write_sidecar

    keras.utils.set_random_seed(seed)
    teachers = [keras.models.load_model(p, compile=False) for p in args.teacher]
    t = votes_to_targets(data["v_train"], "seed9", 9)
    x, y = data["x_train"][t.keep], t.targets
    steps = len(x) // args.batch_size
    total = epochs * steps
    warmup = min(args.warmup_epochs * steps, total - 1)
    lr = keras.optimizers.schedules.CosineDecay(args.lr * 0.01, decay_steps=max(total - warmup, 1), alpha=0.0,
                                                warmup_target=args.lr, warmup_steps=warmup)
    model = create_model(arch, alpha=alpha, num_classes=9)
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=args.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing))
    rng = np.random.default_rng(seed)
    name = f"{arch}-{alpha:g}-s{seed}"
    best, history, t0, stopped = None, [], time.time(), None
    pool = ThreadPoolExecutor(max(1, min(16, (os.cpu_count() or 2) - 1)))
    prefetch = ThreadPoolExecutor(1)  # the next epoch's faces are augmented while this one trains

    def next_epoch():
        order = rng.permutation(len(x))[:steps * args.batch_size]  # whole batches only: one compiled step shape
        return order, augment_parallel(x[order], rng, AUGMENT[aug], pool)

    upcoming = prefetch.submit(next_epoch)
    for epoch in range(1, epochs + 1):
        if epoch > 2 and time.time() + (history[-1]["seconds"] - history[-2]["seconds"]) > deadline:
            stopped = epoch - 1
            log(f"{name}: stopped after epoch {stopped} of {epochs}: the time budget is spent")
            break
        order, xa = upcoming.result()
        upcoming = prefetch.submit(next_epoch)
        ya = distill_targets(teachers, xa, y[order], args) if teachers else y[order]
        fit = model.fit(xa[..., None], ya, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
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
                       "batch_size": args.batch_size, "lr": args.lr,
                       "warmup_epochs": args.warmup_epochs, "weight_decay": args.weight_decay,
                       "label_smoothing": args.label_smoothing, "aug": aug, "aug_params": AUGMENT[aug],
                       "teachers": [Path(p).name for p in args.teacher], "distill_weight": args.distill_weight,
                       "temperature": args.temperature, "teacher_flip": args.teacher_flip,
                       "targets": "seed9, 9 classes", "optimizer": "AdamW, cosine decay with warmup"},
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
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--warmup-epochs", type=int, default=2)
    t.add_argument("--weight-decay", type=float, default=5e-3)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--aug", choices=sorted(AUGMENT), default="standard")
    t.add_argument("--teacher", action="append", default=[], help="a .keras teacher (repeat for an ensemble)")
    t.add_argument("--distill-weight", type=float, default=0.5, help="weight of the teachers' distribution")
    t.add_argument("--temperature", type=float, default=1.0)
    t.add_argument("--teacher-flip", action="store_true", help="average each teacher with its mirrored input")
    t.add_argument("--limit", type=int, default=0, help="use only this many training faces (a smoke test)")
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        pack(args.train, args.val, args.dest)
        return
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
    for spec in args.run:
        arch, alpha, seed, epochs, *rest = spec.split(":")
        alpha, seed, epochs, aug = float(alpha), int(seed), int(epochs), (rest or [args.aug])[0]
        if aug not in AUGMENT:
            raise SystemExit(f"--run {spec}: unknown augmentation {aug!r}; valid: {', '.join(AUGMENT)}")
        from ferlite.models import count_macs, create_model

        cost = count_macs(create_model(arch, alpha=alpha, num_classes=9))
        left = args.budget - (time.time() - start)
        if rate is not None and rate * cost * epochs > left - 30:
            log(f"skipped {spec}: about {rate * cost * epochs:.0f} s needed, {left:.0f} s left")
            continue
        t0 = time.time()
        info = train_one(data, arch, alpha, seed, epochs, aug, args, out, log, start + args.budget)
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
