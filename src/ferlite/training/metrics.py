"""Keras metrics for ``model.compile``, matching the numpy metrics of :mod:`ferlite.metrics`."""

from __future__ import annotations

__all__ = ["keras_metrics"]


def keras_metrics() -> list:
    """Keras metrics matching :func:`ferlite.metrics.mae`, :func:`~ferlite.metrics.top1` and
    :func:`~ferlite.metrics.kl_divergence`, named ``mae``, ``top1`` and ``kl``."""
    import keras

    return [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.CategoricalAccuracy(name="top1"),
        keras.metrics.KLDivergence(name="kl"),
    ]
