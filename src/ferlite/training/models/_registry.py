"""The registry behind :func:`create_model`, as timm does it: builders register under a name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

_MODELS: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a builder ``fn(*, alpha, input_size, channels, num_classes, **kw)`` under ``name``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODELS)


def model_info(name: str) -> str:
    """The first line of the builder's docstring for ``name``."""
    return (_builder(name).__doc__ or "").strip().splitlines()[0]


def _builder(name: str) -> Callable[..., Any]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def create_model(
    name: str,
    *,
    alpha: float = 1.0,
    input_size: int = 48,
    channels: int = 1,
    num_classes: int = 9,
    **kwargs: Any,
) -> keras.Model:
    """Build a Keras model by registered name.

    Args:
        name: one of :func:`list_models`.
        alpha: width multiplier applied to every layer's channel count.
        input_size: side of the square input image, in pixels.
        channels: 1 (gray) or 3 (gray repeated or RGB).
        num_classes: size of the softmax output.
        **kwargs: passed to the builder (e.g. ``dropout``).

    Returns:
        The model: a uint8 ``(input_size, input_size, channels)`` image in (scaling to [-1, 1] is a
            layer inside), a softmax over the classes out.
    """
    builder = _builder(name)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes!r}")
    if input_size < 16 or input_size % 16:
        raise ValueError(f"input_size must be a multiple of 16 and at least 16, got {input_size!r}")
    return builder(alpha=alpha, input_size=input_size, channels=channels, num_classes=num_classes, **kwargs)


def count_macs(model) -> int:
    """Multiply-adds of one forward pass, over Conv2D, DepthwiseConv2D and Dense layers."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
