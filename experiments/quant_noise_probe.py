"""Does training with quantization noise shrink what int8 costs? A short probe, side by side with a control.

Starting from a trained Keras model (``--model``, default ``ferplus-mfn-0.5``), two short fine-tunes on the
training split (``light`` augmentation, AdamW, cosine learning rate from ``--lr`` to 0, seed9 vote targets):

* ``control``: the plain fine-tune;
* ``noise``: the same, with uniform noise of one int8 step added, in training only, to the output of every
  batch normalisation and activation layer (the tensors int8 inference rounds; the step of each is the batch's
  range over 255): ``ferlite.training.quantnoise``, as ``ferlite-train --quant-noise`` trains. This is noise-aware
  training, a cheap stand-in for quantization-aware training: the model learns to tolerate the rounding;
* ``round``: the same layers' outputs rounded, in training, to 256 levels of a moving-average range, the
  gradient passed straight through (``ferlite.training.quantnoise.FakeQuant``): quantization-aware training of the
  activations (int8 weights cost these models nothing measurable: ``experiments/quantization_modes.py``).

Each result is saved (``--output-dir``), exported to int8 with ``ferlite.training.export.export_tflite`` (the same
calibration as the bundled files), and both forms are scored on the validation split.

Usage::

    python experiments/quant_noise_probe.py --data FERPLUS [--model ferplus-mfn-0.5] [--epochs 2] [--lr 2e-4]
        [--variants control,noise,round] [--output-dir /tmp/quant-noise]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder holding FER2013Train and FER2013Valid")
    parser.add_argument("--model", default="ferplus-mfn-0.5", help="registered name or .keras file")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--num-calibration", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="control,noise,round", help="comma-separated, of control,noise,round")
    parser.add_argument("--output-dir", type=Path, default=Path("quant-noise-probe"))
    args = parser.parse_args()

    import keras

    from ferlite.datasets import read_ferplus_folder
    from ferlite.evaluate import load_predictor, score
    from ferlite.labels import FERPLUS_CLASSES, votes_to_targets
    from ferlite.modelfile import load_keras_model
    from ferlite.training.export import export_tflite
    from ferlite.training.pipeline import make_dataset
    from ferlite.training.quantnoise import FakeQuant, StepNoise, with_quant_noise
    from ferlite.weights import resolve_model

    train_dir, valid_dir = Path(args.data) / "FER2013Train", Path(args.data) / "FER2013Valid"
    train, valid = read_ferplus_folder(train_dir), read_ferplus_folder(valid_dir)
    t = votes_to_targets(train.votes, "seed9", 9)
    args.output_dir.mkdir(parents=True, exist_ok=True)

    def scores(path: Path) -> str:
        s = score(valid.votes, load_predictor(path).predict(valid.images[..., None]), FERPLUS_CLASSES[:9])
        return f"{s['mae']:.4f} | {100 * s['top1']:.2f}% | {100 * s['major8_acc']:.2f}%"

    source = resolve_model(args.model)
    rows = [("start", source, 0.0)]
    wrappers = {"control": None, "noise": StepNoise, "round": FakeQuant}
    for variant in args.variants.split(","):
        if variant not in wrappers:
            parser.error(f"--variants: unknown variant {variant!r}; expected some of {', '.join(wrappers)}")
        keras.utils.set_random_seed(args.seed)
        model = load_keras_model(source)
        net = with_quant_noise(model, wrappers[variant]) if wrappers[variant] else model
        ds = make_dataset(train.images[t.keep][..., None], t.targets, batch_size=128, training=True,
                          augment="light", seed=args.seed)
        schedule = keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * len(ds))
        net.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-3), loss="categorical_crossentropy")
        start = time.perf_counter()
        net.fit(ds, epochs=args.epochs, verbose=0)
        out = args.output_dir / f"{variant}.keras"
        model.save(out)
        rows.append((variant, out, time.perf_counter() - start))

    print(f"{source.name}, {args.epochs} epoch(s) from lr {args.lr:g}, seed {args.seed}; {platform.machine()}, "
          f"{os.cpu_count()} CPUs; int8 calibrated on {args.num_calibration} faces of {train_dir.name}; scored on "
          f"{len(valid.images)} faces of {valid_dir.name}")
    print("| model | Keras MAE | top-1 | major8 | int8 MAE | top-1 | major8 | fine-tune s |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, path, seconds in rows:
        int8 = export_tflite(path, args.output_dir / f"{name}-int8.tflite", "int8", calibration_data=train_dir,
                             num_calibration=args.num_calibration)
        print(f"| {name} | {scores(path)} | {scores(int8)} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
