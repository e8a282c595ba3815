"""experiments/output_temperature.py: its rescaling is ``softmax(logits / T)`` of the model's own logits, so the
model card's MAE-against-temperature table measures what it says."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, load_script

SCRIPT = REPO / "experiments" / "output_temperature.py"


@pytest.fixture(scope="module")
def rescale():
    return load_script(SCRIPT).rescale


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("temperature", [0.5, 0.8, 1.0, 1.7])
def test_rescale_is_softmax_of_the_logits_over_t(rescale, temperature):
    logits = np.random.default_rng(0).normal(0, 4, (50, 9))
    np.testing.assert_allclose(rescale(softmax(logits), temperature), softmax(logits / temperature), rtol=1e-9,
                               atol=1e-12)


def test_rescale_sharpens_below_one_and_keeps_the_ranking(rescale):
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    sharp, soft = rescale(p, 0.5), rescale(p, 2.0)
    np.testing.assert_allclose(sharp[0], np.array([25, 9, 4]) / 38)  # p ** 2, renormalised
    assert (sharp.max(axis=1) > p.max(axis=1)).all() and (soft.max(axis=1) < p.max(axis=1)).all()
    assert (sharp.argmax(axis=1) == p.argmax(axis=1)).all()
