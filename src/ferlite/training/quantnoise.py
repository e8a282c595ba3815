"""Training for int8: the rounding of every tensor that int8 inference rounds, simulated in training.

Full-integer TFLite models round the output of every batch normalisation and activation to one of 256 levels
spread over that tensor's calibrated range. :func:`with_quant_noise` wraps each such layer so that, in training
only, its output gets either uniform noise one step wide (:class:`StepNoise`, the step of the batch's range, 0
included, over 255, as int8 calibration measures it: noise-aware training) or is rounded to 256 levels of a
moving-average range with the gradient passed straight through (:class:`FakeQuant`: quantization-aware training
of the activations). The network learns weights that tolerate the rounding. At inference the wrapped model
computes exactly what the plain one does, and :func:`copy_to_plain` copies its weights into the plain
architecture for saving and export. A ``--quant-noise`` or ``--fake-quant`` run's ``last.keras`` (the model being
trained, with its noise layers) loads with :func:`load_checkpoint`: importing this module registers the layers.

``ferlite-train --quant-noise`` and ``--fake-quant`` use them; ``benchmarks/quant_noise_probe.py`` measured what
each buys.
"""

from __future__ import annotations

import os

import keras

from ferlite.modelfile import load_keras_model

__all__ = ["FakeQuant", "StepNoise", "copy_to_plain", "inner_layers", "load_checkpoint", "quant_noise_layer",
           "with_quant_noise"]

_SUFFIX = "_qnoise"
_ROUNDED = (keras.layers.BatchNormalization, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ReLU,
            keras.layers.Activation)


@keras.saving.register_keras_serializable(package="ferlite")
class StepNoise(keras.layers.Layer):
    """Adds uniform noise in [-step/2, step/2] in training, with ``step`` = the batch's range (0 included) / 255;
    the identity at inference. ``seed`` seeds the layer's own generator (as ``keras.layers.Dropout`` does, which
    also lets it run under ``tf.distribute``); None draws it from Keras's global seed."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training:
            return x
        ops = keras.ops
        span = ops.maximum(ops.max(x), 0.0) - ops.minimum(ops.min(x), 0.0)
        half = ops.stop_gradient(span) / 510.0
        return x + keras.random.uniform(ops.shape(x), -1.0, 1.0, seed=self.seed_generator) * half

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="ferlite")
class FakeQuant(keras.layers.Layer):
    """Rounds to one of 256 levels of a running range in training (the gradient passes straight through); the
    identity at inference. The range is a moving average (``momentum``) of the batches' minima and maxima, as
    quantization-aware training keeps it; it holds 0, and 0 is one of the levels, as int8 zero points make it."""

    def __init__(self, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def build(self, input_shape):
        self.low, self.high, self.seen = (self.add_weight(shape=(), initializer="zeros", trainable=False,
                                                          autocast=False, name=name)
                                          for name in ("low", "high", "seen"))

    def call(self, x, training=False):
        if not training:
            return x
        ops = keras.ops
        keep = ops.where(self.seen > 0, self.momentum, 0.0)  # the first batch sets the range
        low = keep * self.low + (1 - keep) * ops.minimum(ops.min(ops.stop_gradient(x)), 0.0)
        high = keep * self.high + (1 - keep) * ops.maximum(ops.max(ops.stop_gradient(x)), 0.0)
        self.low.assign(low)
        self.high.assign(high)
        self.seen.assign(1.0)
        step = ops.maximum(high - low, 1e-8) / 255.0
        zero = ops.round(-low / step)
        rounded = (ops.clip(ops.round(x / step) + zero, 0.0, 255.0) - zero) * step
        return x + ops.stop_gradient(rounded - x)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


def with_quant_noise(model: keras.Model, layer: type[keras.layers.Layer] = StepNoise) -> keras.Model:
    """``model`` with a :class:`StepNoise` (or ``layer``, e.g. :class:`FakeQuant`) after each batch normalisation
    and activation layer. The layers are shared: training the result trains ``model``'s weights."""

    def wrap(rounded):
        if not isinstance(rounded, _ROUNDED):
            return rounded
        return keras.Sequential([rounded, layer(name=f"{rounded.name}_noise")], name=f"{rounded.name}{_SUFFIX}")

    return keras.models.clone_model(model, clone_function=wrap)


def _is_wrapper(layer) -> bool:
    return isinstance(layer, keras.Sequential) and layer.name.endswith(_SUFFIX)


def quant_noise_layer(model: keras.Model) -> type[keras.layers.Layer] | None:
    """The layer class a :func:`with_quant_noise` model (e.g. a ``--quant-noise`` or ``--fake-quant`` training
    checkpoint) adds, :class:`StepNoise` or :class:`FakeQuant`; None for a plain model."""
    return next((type(layer.layers[1]) for layer in model.layers if _is_wrapper(layer)), None)


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


def load_checkpoint(path: str | os.PathLike, *, compile: bool = False) -> keras.Model:
    """:func:`ferlite.modelfile.load_keras_model` for training: it also loads a ``.keras`` file holding this module's
    layers (a ``--quant-noise`` or ``--fake-quant`` run's ``last.keras``), which the runtime does not know."""
    return load_keras_model(path, compile=compile)
