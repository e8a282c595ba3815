"""What an output temperature does to MAE and KL: the bias of MAE towards sharp predictions, measured.

A model trained with cross-entropy on vote distributions predicts the expected distribution: its KL divergence to
the votes is lowest near temperature 1. MAE against ten annotators' votes is lowest for sharper outputs: for each
class, the prediction with the least expected absolute error is the median of that class's vote share, not its
mean, and for the many classes a face seldom gets a vote for, that median is 0. This
script rescales a model's predictions to ``p ** (1/T)``, renormalised (``softmax(logits / T)``), for each ``T`` of
``--temperatures``, and scores them on a fitting split (``--fit-data``, a seeded sample of ``--fit-faces`` faces;
the training split, so that no validation face chooses ``T``) and on ``--data``. Top-1 and major8 do not depend
on ``T``. The shipped models are not rescaled (see the model card): their figures are at ``T = 1``.

Usage::

    python experiments/output_temperature.py --fit-data FER2013Train --data FER2013Valid [--model ferplus-mfn-1.0]
        [--fit-faces 6000] [--temperatures 0.6,0.7,0.8,0.9,1.0,1.1]
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rescale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1/T)``, renormalised over each row (``softmax(log probs / T)``)."""
    q = np.power(probs / probs.max(axis=1, keepdims=True), 1.0 / temperature)
    return q / q.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit-data", required=True, help="FER+ split folder that picks T (the training split)")
    parser.add_argument("--data", required=True, help="FER+ split folder to score on (e.g. FER2013Valid)")
    parser.add_argument("--model", default="ferplus-mfn-1.0", help="registered name or model file")
    parser.add_argument("--fit-faces", type=int, default=6000)
    parser.add_argument("--temperatures", default="0.6,0.7,0.8,0.9,1.0,1.1")
    args = parser.parse_args()

    from ferlite.datasets import read_ferplus_folder
    from ferlite.evaluate import score
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.runtime import load_predictor
    from ferlite.weights import resolve_model

    path = resolve_model(args.model)
    predictor = load_predictor(path)
    classes = FERPLUS_CLASSES[:9]
    fit, split = read_ferplus_folder(args.fit_data), read_ferplus_folder(args.data)
    rows = np.sort(np.random.default_rng(0).choice(len(fit.images), min(args.fit_faces, len(fit.images)),
                                                   replace=False))
    fit_probs = predictor.predict(fit.images[rows][..., None])
    probs = predictor.predict(split.images[..., None])
    temperatures = [float(t) for t in args.temperatures.split(",")]
    fitted = {t: score(fit.votes[rows], rescale(fit_probs, t), classes) for t in temperatures}
    scored = {t: score(split.votes, rescale(probs, t), classes) for t in temperatures}
    best = min(temperatures, key=lambda t: fitted[t]["mae"])

    print(f"{path.name}: T fitted on {len(rows)} faces of {args.fit_data}, scored on {len(probs)} faces of "
          f"{args.data}; {platform.machine()}, {os.cpu_count()} CPUs")
    any_t = scored[temperatures[0]]
    print(f"top-1 {100 * any_t['top1']:.2f}% and major8 {100 * any_t['major8_acc']:.2f}% at every T")
    print("| T | fit MAE | fit KL | MAE | KL |\n| --- | --- | --- | --- | --- |")
    for t in temperatures:
        mark = " (lowest fit MAE)" if t == best else ""
        print(f"| {t:g}{mark} | {fitted[t]['mae']:.4f} | {fitted[t]['kl']:.4f} | {scored[t]['mae']:.4f} | "
              f"{scored[t]['kl']:.4f} |")


if __name__ == "__main__":
    main()
