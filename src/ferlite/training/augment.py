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
        gamma: largest gamma change, as a fraction (0.3 = gamma 1/1.3 to 1.3): exposure and screen curves.
        downscale: probability of scaling a face down (to 1/2 or 3/4 of its side) and back up, as the recogniser
            enlarges a small face found in a photo or a webcam frame.
        blur: probability of a Gaussian blur (sigma up to 1.2 px at 48x48): focus and motion.
        noise: largest standard deviation of Gaussian sensor noise, as a fraction of 255.
        jpeg: probability of JPEG compression at a quality from 30 to 90.

    The last five (the capture degradations) imitate what the recogniser feeds the model from photos and webcams;
    they run on ``ferlite-train``'s TensorFlow pipeline.
    """

    flip: bool = True
    shift: float = 0.1
    scale: float = 0.1
    rotation: float = 10.0
    brightness: float = 0.1
    contrast: float = 0.2
    erase: float = 0.0
    gamma: float = 0.0
    downscale: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0

    @property
    def degrades(self) -> bool:
        """Whether any capture degradation (gamma, downscale, blur, noise, jpeg) is on."""
        return bool(self.gamma or self.downscale or self.blur or self.noise or self.jpeg)

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
    "capture": AugmentConfig(shift=0.08, scale=0.12, rotation=10.0, brightness=0.15, contrast=0.3, erase=0.25,
                             gamma=0.4, downscale=0.3, blur=0.3, noise=0.03, jpeg=0.3),
}
"""The named presets, what ``--aug`` offers: ``none``, ``flip``, ``light`` (flip + shift), ``standard``, ``strong``
and ``capture`` (``standard``'s geometry and light with the capture degradations and some erasing: faces as
photos and webcams give them)."""
