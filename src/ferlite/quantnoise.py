"""Noise-aware training for int8: uniform noise of one int8 step on every tensor that int8 inference rounds.

Full-integer TFLite models round the output of every batch normalisation and activation to one of 256 levels
spread over that tensor's calibrated range. :func:`with_quant_noise` wraps each such layer so that, in training
only, its output gets uniform noise one step wide (the step of the batch's range, 0 included, over 255, as
int8 calibration measures it); the network learns weights that tolerate the rounding, a cheap stand-in for
quantization-aware training. At inference the wrapped model computes exactly what the plain one does, and
:func:`copy_to_plain` copies its weights into the plain architecture for saving and export.

``ferlite-train --quant-noise`` uses it; ``benchmarks/quant_noise_probe.py`` measured what it buys.
"""

from __future__ import annotations

import keras

__all__ = ["StepNoise", "copy_to_plain", "has_quant_noise", "inner_layers", "with_quant_noise"]

_SUFFIX = "_qnoise"
_ROUNDED = (keras.layers.BatchNormalization, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ReLU,
            keras.layers.Activation)


@keras.saving.register_keras_serializable(package="ferlite")
class StepNoise(keras.layers.Layer):
    """Adds uniform noise in [-step/2, step/2] in training, with ``step`` = the batch's range (0 included) / 255;
    the identity at inference."""

    def call(self, x, training=False):
        if not training:
            return x
        ops = keras.ops
        span = ops.maximum(ops.max(x), 0.0) - ops.minimum(ops.min(x), 0.0)
        half = ops.stop_gradient(span) / 510.0
        return x + keras.random.uniform(ops.shape(x), -1.0, 1.0) * half


def with_quant_noise(model: keras.Model) -> keras.Model:
    """``model`` with a :class:`StepNoise` after each batch normalisation and activation layer. The layers are
    shared: training the result trains ``model``'s weights."""

    def wrap(layer):
        if not isinstance(layer, _ROUNDED):
            return layer
        return keras.Sequential([layer, StepNoise(name=f"{layer.name}_noise")], name=f"{layer.name}{_SUFFIX}")

    return keras.models.clone_model(model, clone_function=wrap)


def _is_wrapper(layer) -> bool:
    return isinstance(layer, keras.Sequential) and layer.name.endswith(_SUFFIX)


def has_quant_noise(model: keras.Model) -> bool:
    """Whether ``model`` is a :func:`with_quant_noise` model (e.g. a ``--quant-noise`` training checkpoint)."""
    return any(_is_wrapper(layer) for layer in model.layers)


def inner_layers(model: keras.Model) -> list:
    """The layers of ``model`` with each :func:`with_quant_noise` wrapper replaced by the layer it wraps: the
    layers of the plain architecture, for a noisy or a plain model alike."""
    return [layer.layers[0] if _is_wrapper(layer) else layer for layer in model.layers]


def copy_to_plain(noisy: keras.Model, plain: keras.Model) -> keras.Model:
    """Copy the weights of a :func:`with_quant_noise` model (or a plain one) into ``plain``, a model of the same
    architecture without noise (e.g. a fresh ``create_model``), layer by layer by name; return ``plain``.

    Raises:
        ValueError: a layer of ``plain`` with weights has no counterpart of the same shapes in ``noisy``.
    """
    source = {layer.name: layer for layer in inner_layers(noisy)}
    for layer in plain.layers:
        if not layer.weights:
            continue
        wanted = [tuple(w.shape) for w in layer.weights]
        found = [tuple(w.shape) for w in source[layer.name].weights] if layer.name in source else "no such layer"
        if found != wanted:
            raise ValueError(f"the plain model does not match {noisy.name!r} at layer {layer.name!r}: expected "
                             f"weights of shapes {wanted}, found {found}")
        layer.set_weights(source[layer.name].get_weights())
    return plain
