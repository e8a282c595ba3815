"""A small network for the tests of the training loop's mechanics, registered as :data:`NAME` on import.

Checkpoints, resume, the weight average, the int8 noise layers, distillation and the distribution strategies
work on any registered architecture: what their tests check does not depend on depth. Building and tracing
MobileFaceNet's 16 blocks dominated each of those runs (a 1-epoch run on 256 faces: 18 s, against 4 s for
this network, on the 2-core test machine). This one is ferlite's own layers (the stem, 2 separable blocks, the
global depthwise convolution and the classifier head), so every kind of layer the loop handles is there.
MobileFaceNet itself is still trained by ``tests/training/test_finetune.py`` and ``tests/test_examples.py``,
and ``tests/training/test_models.py`` checks its sizes.

Subprocesses that train it import this module first (``tests/`` on their ``PYTHONPATH``).
"""

from __future__ import annotations

import keras
from keras import layers

from ferlite.training.models import list_models, register_model
from ferlite.training.models._layers import classifier_head, depthwise_init, separable_stack, uint8_input

NAME = "small-test-net"


def small_test_net(*, alpha: float = 1.0, input_size: int = 48, channels: int = 1, num_classes: int = 9,
                   dropout: float = 0.25, activation: str = "leaky_relu", leaky_slope: float = 0.3,
                   bn_momentum: float = 0.99) -> keras.Model:
    """A 2-block separable network for tests: stride-2 stem, blocks of 64 and 128 (stride 2), GDC, head."""
    inputs, x = uint8_input(input_size, channels)
    x = separable_stack(x, 64, ((64, 2), (128, 2)), alpha, activation, leaky_slope, bn_momentum)
    kernel = input_size // 8
    x = layers.DepthwiseConv2D(kernel, padding="valid", use_bias=True, depthwise_initializer=depthwise_init(kernel),
                               name="gdc")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name="gdc_bn")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=f"small_test_net_{alpha:g}")


if NAME not in list_models():
    register_model(NAME)(small_test_net)
