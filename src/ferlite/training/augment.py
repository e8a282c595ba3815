"""Augmentation presets, defined once for every trainer: ``ferlite-train --aug`` and ``tools/train_jax.py``.

:class:`AugmentConfig` says how far each face may be changed; :data:`PRESETS` names the configurations that
``--aug`` offers. Applying one is the trainer's work (:func:`ferlite.training.pipeline.make_dataset` does it on
the TensorFlow graph); this module imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AugmentConfig", "PRESETS"]


@dataclass(frozen=True)
class AugmentConfig:
    """On-graph augmentation, applied per image to batches.

    Attributes:
        flip: random horizontal flip.
        shift: largest translation, as a fraction of the side.
        scale: largest zoom in or out, as a fraction (0.1 = 0.9x to 1.1x).
        rotation: largest rotation, in degrees.
        brightness: largest brightness change, as a fraction of 255.
        contrast: largest contrast change, as a fraction (0.2 = 0.8x to 1.2x).
        erase: probability of random erasing (one rectangle of 2-20% of the area).
    """

    flip: bool = True
    shift: float = 0.1
    scale: float = 0.1
    rotation: float = 10.0
    brightness: float = 0.1
    contrast: float = 0.2
    erase: float = 0.0

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """The configuration of the preset ``name``, one of :data:`PRESETS`."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown augmentation preset {name!r}; valid: {', '.join(PRESETS)}") from None


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(flip=False, shift=0, scale=0, rotation=0, brightness=0, contrast=0),
    "flip": AugmentConfig(flip=True, shift=0, scale=0, rotation=0, brightness=0, contrast=0),
    "light": AugmentConfig(flip=True, shift=0.1, scale=0.0, rotation=0, brightness=0, contrast=0),
    "standard": AugmentConfig(),
    "strong": AugmentConfig(shift=0.12, scale=0.15, rotation=15.0, brightness=0.15, contrast=0.3, erase=0.5),
}
"""The named presets, what ``--aug`` offers: ``none``, ``flip``, ``light`` (flip + shift), ``standard`` and
``strong``."""
