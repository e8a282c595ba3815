"""MobileFaceNet as the reference FER+ project built it: a depthwise-separable stack.

A 3x3 stride-2 convolution to 64 channels; 16 depthwise-separable blocks with pointwise
widths 64 x6 (stride 2 at the 2nd) and 128 x10 (stride 2 at the 7th and 14th); a linear
global depthwise convolution (kernel ``input_size / 16``, with bias) and batch norm;
flatten, dropout 0.25, dense softmax. Widths scale with ``alpha``. At ``alpha=1``,
3 channels and 9 classes it has exactly the reference's 212,617 parameters.
"""

from __future__ import annotations

import keras
from keras import layers

from ferlite.training.models._layers import (
    classifier_head,
    depthwise_init,
    separable_stack,
    uint8_input,
)
from ferlite.training.models._registry import register_model

# (pointwise width, stride) of the 16 blocks
BLOCKS: tuple[tuple[int, int], ...] = (
    ((64, 1), (64, 2)) + ((64, 1),) * 4 + ((128, 2),) + ((128, 1),) * 6 + ((128, 2),) + ((128, 1),) * 2
)


@register_model("mobilefacenet")
def mobilefacenet(
    *,
    alpha: float = 1.0,
    input_size: int = 48,
    channels: int = 1,
    num_classes: int = 9,
    dropout: float = 0.25,
    activation: str = "leaky_relu",
    leaky_slope: float = 0.3,
    bn_momentum: float = 0.99,
) -> keras.Model:
    """MobileFaceNet (reference FER+ layout): 16 separable blocks, global depthwise conv, ~12 M MACs at 48x48."""
    inputs, x = uint8_input(input_size, channels)
    x = separable_stack(x, 64, BLOCKS, alpha, activation, leaky_slope, bn_momentum)
    kernel = input_size // 16
    x = layers.DepthwiseConv2D(kernel, padding="valid", use_bias=True, depthwise_initializer=depthwise_init(kernel),
                               name="gdc")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="gdc_bn")(x)
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"mobilefacenet_{alpha:g}")
