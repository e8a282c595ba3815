"""Building blocks shared by the architectures."""

from __future__ import annotations

import keras
from keras import layers


def scaled_width(channels: int, alpha: float, divisor: int = 8) -> int:
    """``channels * alpha`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(channels * alpha + divisor / 2) // divisor * divisor)


def uint8_input(input_size: int, channels: int):
    """A uint8 image input and its scaling to [-1, 1] with built-in layers (safe to reload)."""
    inputs = keras.Input(shape=(input_size, input_size, channels), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    return inputs, x


def depthwise_init(kernel: int):
    """He initialisation for a depthwise kernel: fan-in is kernel*kernel, not kernel*kernel*channels."""
    return keras.initializers.RandomNormal(stddev=(2.0 / (kernel * kernel)) ** 0.5)


def activation(kind: str, name: str, leaky_slope: float = 0.3):
    """An activation layer: ``leaky_relu`` (with ``leaky_slope``), ``relu`` or ``relu6``."""
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=leaky_slope, name=name)
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "relu6":
        return layers.ReLU(max_value=6.0, name=name)
    raise ValueError(f"unknown activation {kind!r}; valid: leaky_relu, relu, relu6")


def conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: str, slope: float, bn_momentum: float):
    """Bias-free convolution, batch norm, activation."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return activation(act, f"{name}_act", slope)(x)


def separable_block(x, filters: int, stride: int, name: str, act: str, slope: float, bn_momentum: float):
    """3x3 depthwise + 1x1 pointwise, each bias-free with batch norm and activation."""
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               depthwise_initializer=depthwise_init(3), name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_dw_bn")(x)
    x = activation(act, f"{name}_dw_act", slope)(x)
    x = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_pw_bn")(x)
    return activation(act, f"{name}_pw_act", slope)(x)


def separable_stack(x, stem_width: int, blocks, alpha: float, act: str, slope: float, bn_momentum: float):
    """A 3x3 stride-2 stem, then a :func:`separable_block` per ``(width, stride)`` of ``blocks``; widths x ``alpha``."""
    kw = dict(act=act, slope=slope, bn_momentum=bn_momentum)
    x = conv_bn(x, scaled_width(stem_width, alpha), 3, 2, "stem", **kw)
    for i, (width, stride) in enumerate(blocks, start=1):
        x = separable_block(x, scaled_width(width, alpha), stride, f"block{i}", **kw)
    return x


def classifier_head(x, num_classes: int, dropout: float):
    """Flatten, dropout, dense softmax (named ``head_*`` so fine-tuning can replace it)."""
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="head_dense")(x)
