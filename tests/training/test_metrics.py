"""The Keras metrics of training (ferlite.training.metrics) agree with the numpy metrics of ferlite.metrics."""

import numpy as np
import pytest

from ferlite import metrics as M
from ferlite.training.metrics import keras_metrics


def test_keras_metrics_match_numpy():
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.ones(9), size=40)  # soft targets and predictions of 40 faces
    p = rng.dirichlet(np.ones(9), size=40)
    metrics = keras_metrics()
    assert [m.name for m in metrics] == ["mae", "top1", "kl"]
    mae, top1, kl = metrics
    for m in metrics:  # two batches: the metric accumulates over faces
        m.update_state(y[:15], p[:15])
        m.update_state(y[15:], p[15:])
    assert float(mae.result()) == pytest.approx(M.mae(y, p), abs=1e-6)
    assert float(top1.result()) == pytest.approx(M.top1(y, p))
    assert float(kl.result()) == pytest.approx(M.kl_divergence(y, p), abs=1e-5)
    # a prediction of 0 where the target is 1: both clip it to 1e-7, a finite KL of ln(1e7)
    kl.reset_state()
    kl.update_state(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert float(kl.result()) == pytest.approx(M.kl_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])),
                                               rel=1e-4)
