"""MobileNet v1 (Howard et al. 2017) with width multiplier ``alpha``, sized for small faces."""

from __future__ import annotations

import keras
from keras import layers

from ferlite.training.models._layers import classifier_head, separable_stack, uint8_input
from ferlite.training.models._registry import register_model

# (pointwise width, stride) of the 13 separable blocks of MobileNet v1
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip


@register_model("mobilenet")
def mobilenet(
    *,
    alpha: float = 1.0,
    input_size: int = 48,
    channels: int = 1,
    num_classes: int = 9,
    dropout: float = 0.25,
    activation: str = "relu6",
    leaky_slope: float = 0.1,
    bn_momentum: float = 0.99,
) -> keras.Model:
    """MobileNet v1: 3x3 stem + 13 separable blocks, global average pooling, dense softmax."""
    inputs, x = uint8_input(input_size, channels)
    x = separable_stack(x, 32, BLOCKS, alpha, activation, leaky_slope, bn_momentum)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=f"mobilenet_{alpha:g}")
