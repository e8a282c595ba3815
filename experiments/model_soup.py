"""Average the weights of fine-tuned models (a "model soup", Wortsman et al. 2022): does it help on real photos?

Warm restarts of one model (the same start, different recipes or seeds) stay close in weight space, and averaging
their weights often scores better than each on data unlike the training data (for ferlite's warm restarts it did
not: ``docs/model_history.md``, "After stage 4"). This script writes the uniform average of the given ``.keras``
files (every float weight; batch-norm statistics averaged too, not re-estimated) as a new ``.keras`` file with a
sidecar (the first model's description of its input, classes and prior, with ``soup_of`` listing the files, not its
training history); score it with ``checkpoint_photos.py``. The models must have the same architecture (the same
weights by name and shape).

    python experiments/model_soup.py runs/soup.keras runs/a/model.keras runs/b/model.keras [...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ferlite._atomic import atomic_path
from ferlite.sidecar import DECISION_KEYS, model_info, write_sidecar

_DESCRIBES_THE_MODEL = ("architecture", "alpha", "input_size", "channels", "classes", "input", "params", *DECISION_KEYS)
"""The sidecar keys a soup keeps from its first model (the training history and file digest are that model's)."""


def average_weights(models: list, names: list[str]) -> list[np.ndarray]:
    """The mean of each weight over ``models`` (integer weights, e.g. step counters, taken from the first).

    Raises:
        ValueError: a model whose weights differ from the first's in name or shape, naming it (``names``).
    """
    layout = [(w.path, tuple(w.shape)) for w in models[0].weights]
    for model, name in zip(models[1:], names[1:], strict=True):
        other = [(w.path, tuple(w.shape)) for w in model.weights]
        if other != layout:
            diff = next(((a, b) for a, b in zip(layout, other, strict=False) if a != b), (len(layout), len(other)))
            raise ValueError(f"{name} has other weights than {names[0]} (first difference: {diff[1]} against "
                             f"{diff[0]}): expected models of the same architecture")
    out = []
    for same in zip(*(m.weights for m in models), strict=True):
        values = [np.asarray(w.numpy()) for w in same]
        floating = np.issubdtype(values[0].dtype, np.floating)
        out.append(np.mean(values, axis=0).astype(values[0].dtype) if floating else values[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", type=Path, help="the averaged model (.keras)")
    ap.add_argument("models", nargs="+", type=Path, help="two or more .keras files of one architecture")
    args = ap.parse_args()
    if args.output.suffix != ".keras" or len(args.models) < 2:
        sys.exit(f"expected an output .keras file and two or more models, got {args.output} and {len(args.models)}")
    from ferlite.training.quantnoise import load_checkpoint

    models = [load_checkpoint(p) for p in args.models]
    try:
        averaged = average_weights(models, [str(p) for p in args.models])
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    soup = models[0]
    for w, value in zip(soup.weights, averaged, strict=True):
        w.assign(value)
    with atomic_path(args.output, ".keras") as tmp:
        soup.save(tmp)
    info = {k: v for k, v in model_info(args.models[0]).items() if k in _DESCRIBES_THE_MODEL}
    write_sidecar(args.output.with_suffix(".json"), {**info, "name": args.output.stem,
                                                     "soup_of": [str(p) for p in args.models],
                                                     "command": " ".join(["python", *sys.argv])})
    print(f"wrote {args.output} (the mean of {len(models)} models)")


if __name__ == "__main__":
    main()
