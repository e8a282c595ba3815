"""The ``tf.data`` soft-label pipeline: uint8 faces and target distributions in, augmented model-input batches out.

:func:`make_dataset` batches the arrays that :mod:`ferlite.datasets` reads, converts them to the model's input on
the graph (:func:`to_model_input`) and, for training, shuffles them and augments them as an
:class:`~ferlite.training.augment.AugmentConfig` says, with stateless random ops: the same seed gives the same
batches. TensorFlow is imported when a dataset is made.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ferlite.training.augment import AugmentConfig

__all__ = ["make_dataset", "to_model_input"]


def to_model_input(images, input_size: int, channels: int):
    """Batch of uint8 ``(B, H, W[, 1|3])`` images to the model's uint8 ``(B, S, S, C)`` (graph op)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    if x.shape.rank == 3:
        x = x[..., None]
    if x.shape[1] != input_size or x.shape[2] != input_size:
        x = tf.image.resize(tf.cast(x, tf.float32), (input_size, input_size), method="bilinear", antialias=True)
        x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
    if channels == 3 and x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    elif channels == 1 and x.shape[-1] == 3:
        x = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(x, tf.float32))), tf.uint8)
    return x


def _augment_batch(x, seed, cfg: AugmentConfig):
    """Augment a float32 ``(B, S, S, C)`` batch in [0, 255] with stateless per-image randomness."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    side = tf.cast(tf.shape(x)[1], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 8)

    def uniform(i, lo, hi):
        return tf.random.stateless_uniform([b], seeds[i], lo, hi)

    if cfg.flip:
        flip = uniform(0, 0.0, 1.0) < 0.5
        x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
    if cfg.shift or cfg.scale or cfg.rotation:
        angle = uniform(1, -cfg.rotation, cfg.rotation) * (math.pi / 180.0)
        zoom = uniform(2, 1.0 - cfg.scale, 1.0 + cfg.scale)
        tx = uniform(3, -cfg.shift, cfg.shift) * side
        ty = uniform(4, -cfg.shift, cfg.shift) * side
        # output pixel (u, v) samples input at A @ (u - c, v - c) + c - t, A = rotation / zoom
        c = (side - 1.0) / 2.0
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        a0, a1, b0, b1 = cos, -sin, sin, cos
        a2 = c - a0 * c - a1 * c - tx
        b2 = c - b0 * c - b1 * c - ty
        zeros = tf.zeros_like(a0)
        transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
        x = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
            interpolation="BILINEAR", fill_mode="REFLECT",
        )
    if cfg.degrades:
        x = _degrade(x, tf.random.experimental.stateless_fold_in(seed, 1), cfg)
    if cfg.contrast:
        factor = uniform(5, 1.0 - cfg.contrast, 1.0 + cfg.contrast)[:, None, None, None]
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * factor + mean
    if cfg.brightness:
        x = x + uniform(6, -cfg.brightness, cfg.brightness)[:, None, None, None] * 255.0
    if cfg.erase:
        r = tf.random.stateless_uniform([b, 5], seeds[7], 0.0, 1.0)
        area = (0.02 + 0.18 * r[:, 0]) * side * side
        aspect = tf.exp((r[:, 1] - 0.5) * 2.0 * math.log(3.0))
        h = tf.minimum(tf.sqrt(area * aspect), side)
        w = tf.minimum(tf.sqrt(area / aspect), side)
        y0 = r[:, 2] * (side - h)
        x0 = r[:, 3] * (side - w)
        on = r[:, 4] < cfg.erase
        grid = tf.range(side)
        in_y = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
        in_x = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
        mask = in_y[:, :, None] & in_x[:, None, :] & on[:, None, None]
        noise = tf.random.stateless_uniform(tf.concat([tf.shape(x)[:3], [1]], 0), seeds[7] + 1, 0.0, 255.0)
        x = tf.where(mask[..., None], noise, x)
    return x


def _degrade(x, seed, cfg: AugmentConfig):
    """The capture degradations of :class:`~ferlite.training.augment.AugmentConfig` on a float32 ``(B, S, S, C)``
    batch in [0, 255]: down-and-up scaling, blur, gamma, sensor noise and JPEG, each image drawn on its own."""
    import tensorflow as tf

    b, side = tf.shape(x)[0], x.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, 8)

    def uniform(i, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform([b], seeds[i], lo, hi)

    def per_image(mask, changed, kept):
        return tf.where(mask[:, None, None, None], changed, kept)

    if cfg.downscale:
        r = uniform(0)
        for i, small in enumerate((side // 2, 3 * side // 4)):  # half of the chosen faces each
            down = tf.image.resize(x, (small, small), method="area")
            up = tf.image.resize(down, (side, side), method="bilinear")
            x = per_image((r < cfg.downscale) & ((r < cfg.downscale / 2) == (i == 0)), up, x)
    if cfg.blur:
        t = tf.range(-2.0, 3.0)
        kernel = tf.exp(-(t**2) / (2 * 1.2**2))
        kernel = kernel / tf.reduce_sum(kernel)
        channels = x.shape[-1]
        kx = tf.tile(tf.reshape(kernel, (1, 5, 1, 1)), (1, 1, channels, 1))
        ky = tf.tile(tf.reshape(kernel, (5, 1, 1, 1)), (1, 1, channels, 1))
        padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
        blurred = tf.nn.depthwise_conv2d(tf.nn.depthwise_conv2d(padded, kx, [1, 1, 1, 1], "VALID"), ky,
                                         [1, 1, 1, 1], "VALID")
        amount = uniform(1)[:, None, None, None]  # a blend: sigma from 0 to 1.2 px
        x = per_image(uniform(2) < cfg.blur, amount * blurred + (1 - amount) * x, x)
    if cfg.gamma:
        log_g = math.log(1.0 + cfg.gamma)
        g = tf.exp(uniform(3, -log_g, log_g))[:, None, None, None]
        x = 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, g)
    if cfg.noise:
        std = uniform(4, 0.0, cfg.noise)[:, None, None, None] * 255.0
        x = x + std * tf.random.stateless_normal(tf.shape(x), seeds[5])
    if cfg.jpeg:
        q, chosen = tf.cast(uniform(6, 30.0, 91.0), tf.int32), uniform(7) < cfg.jpeg
        as_uint8 = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
        # only the chosen faces are encoded (the others' rows are dropped by per_image)
        jpeg = tf.map_fn(lambda a: tf.cond(a[2], lambda: tf.image.adjust_jpeg_quality(a[0], a[1]), lambda: a[0]),
                         (as_uint8, q, chosen), fn_output_signature=tf.TensorSpec(x.shape[1:], tf.uint8))
        x = per_image(chosen, tf.cast(jpeg, tf.float32), x)
    return x


def make_dataset(
    images: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int = 128,
    training: bool = False,
    augment: AugmentConfig | str | None = None,
    input_size: int = 48,
    channels: int = 1,
    seed: int = 0,
    repeat: bool = False,
    relabel: Callable | None = None,
    weights: np.ndarray | None = None,
):
    """A ``tf.data.Dataset`` of ``(uint8 images (B, S, S, C), float32 targets (B, K))`` batches.

    Training datasets shuffle and augment on the graph with stateless random ops, so the same
    ``seed`` gives the same batches. ``repeat=True`` makes the dataset endless (reshuffled every
    pass), for ``fit(steps_per_epoch=...)``; without it every iterator yields the same order. Evaluation datasets
    keep the input order and never augment. ``relabel(images, targets) -> targets``, a graph function, replaces
    each batch's targets after augmentation, seeing the images the model will see (distillation's teachers:
    :meth:`ferlite.training.distill.Teachers.relabel`); the images are unchanged by it. ``weights`` (one per face)
    are passed on as Keras sample weights: batches are then ``(images, targets, weights)``.
    """
    import tensorflow as tf

    images = np.asarray(images)
    targets = np.asarray(targets, dtype=np.float32)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    if weights is not None and np.shape(weights) != (len(images),):
        raise ValueError(f"weights must have one value per image, shape ({len(images)},), got {np.shape(weights)}")
    if isinstance(augment, str):
        augment = AugmentConfig.preset(augment)
    ds = tf.data.Dataset.from_tensor_slices(
        (images, targets) if weights is None else (images, targets, np.asarray(weights, np.float32)))
    if training:  # one pass: the same order for every iterator (a distribution strategy may open several)
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=repeat)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=training)

    def prepare(x, *rest):
        return to_model_input(x, input_size, channels), *rest

    if training and augment is not None and augment != AugmentConfig.preset("none"):
        cfg = augment
        seeds = tf.data.Dataset.random(seed=seed).batch(2)

        def aug(batch, s):
            x, *rest = batch
            x = tf.cast(to_model_input(x, input_size, channels), tf.float32)
            x = _augment_batch(x, tf.cast(s, tf.int32) % (2**31 - 1), cfg)
            return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8), *rest

        ds = tf.data.Dataset.zip((ds, seeds)).map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if relabel is not None:
        ds = ds.map(lambda x, y, *w: (x, relabel(x, y), *w), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
