"""The tf.data soft-label pipeline (ferlite.training.pipeline) on real shared FER+ faces: shapes, determinism,
channels, augmentation presets, bad input."""

import cv2
import numpy as np
import pytest

from ferlite.datasets import read_ferplus_folder
from ferlite.training.augment import AugmentConfig
from ferlite.training.pipeline import make_dataset


def test_pipeline_shapes_determinism_channels(valid_subset):
    faces = read_ferplus_folder(valid_subset)
    x, t = faces.targets("seed9")

    def first(seed, **kw):
        ds = make_dataset(x, t.targets, batch_size=32, training=True, augment="strong", seed=seed, **kw)
        xb, yb = next(iter(ds))
        return xb.numpy(), yb.numpy()

    xa, ya = first(3)
    xb, yb = first(3)
    assert xa.dtype == np.uint8 and xa.shape == (32, 48, 48, 1) and ya.dtype == np.float32 and ya.shape == (32, 9)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first(4)[0], xa)
    x3, _ = first(3, channels=3, input_size=64)
    assert x3.shape == (32, 64, 64, 3) and (x3[..., 0] == x3[..., 2]).all()
    x1, _ = first(3, input_size=32)
    assert x1.shape == (32, 32, 32, 1)
    # evaluation keeps the input order, never augments, keeps the last partial batch
    batches = list(make_dataset(x, t.targets, batch_size=64))
    assert [len(b[0]) for b in batches] == [64, 64, 64, 8]
    np.testing.assert_array_equal(batches[0][0].numpy()[..., 0], x[:64])
    e3 = next(iter(make_dataset(x, t.targets, batch_size=4, channels=3)))[0].numpy()
    assert e3.shape == (4, 48, 48, 3) and all((e3[..., c] == x[:4]).all() for c in range(3))


def _by_index(images, preset, seed=0):
    """One augmented training batch, and the original image of each of its elements (targets carry the index)."""
    index = np.arange(len(images), dtype=np.float32)[:, None]
    xb, yb = next(iter(make_dataset(images, index, batch_size=64, training=True, augment=preset, seed=seed)))
    return xb.numpy()[..., 0], images[yb.numpy()[:, 0].astype(int)]


def test_augmentation_changes_pixels_keeps_range(valid_subset):
    images = read_ferplus_folder(valid_subset).images
    same, orig = _by_index(images, "none")  # shuffled, untouched
    np.testing.assert_array_equal(same, orig)
    flipped, orig = _by_index(images, "flip")  # every face is itself or its mirror, both occur
    mirrored = [(f == o[:, ::-1]).all() and not (f == o).all() for f, o in zip(flipped, orig)]
    assert all((f == o).all() or (f == o[:, ::-1]).all() for f, o in zip(flipped, orig))
    assert 0 < sum(mirrored) < len(mirrored)
    aug, orig = _by_index(images, "standard")
    assert aug.dtype == np.uint8 and aug.shape == orig.shape
    assert sum(not np.array_equal(a, o) for a, o in zip(aug, orig)) >= 60
    # brightness/contrast stay moderate: a face's mean moves by well under a third of the range
    assert np.abs(aug.mean(axis=(1, 2)) - orig.mean(axis=(1, 2))).max() < 85
    erase_only = AugmentConfig(flip=False, shift=0, scale=0, rotation=0, brightness=0, contrast=0, erase=1.0)
    erased, orig = _by_index(images, erase_only)
    changed = (erased != orig).mean(axis=(1, 2))
    assert (changed > 0).all() and changed.max() < 0.25  # one rectangle of 2-20% of the area per face


def _sharpness(faces):
    """Mean absolute Laplacian of each face: how much fine detail it has."""
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
    return np.array([np.abs(cv2.filter2D(f.astype(np.float32), -1, kernel))[2:-2, 2:-2].mean() for f in faces])


def test_capture_degradations_each_do_what_they_say(valid_subset):
    images = read_ferplus_folder(valid_subset).images
    off = dict(flip=False, shift=0, scale=0, rotation=0, brightness=0, contrast=0)
    for softening in ("downscale", "blur"):  # every face loses detail, keeps its overall brightness
        soft, orig = _by_index(images, AugmentConfig(**off, **{softening: 1.0}))
        assert (_sharpness(soft) < _sharpness(orig)).mean() > 0.95, softening
        assert np.abs(soft.mean(axis=(1, 2)) - orig.mean(axis=(1, 2))).max() < 4, softening
    curved, orig = _by_index(images, AugmentConfig(**off, gamma=0.4))  # a monotonic curve per face
    for c, o in zip(curved, orig):
        order = np.argsort(o.ravel(), kind="stable")
        assert (np.diff(c.ravel()[order].astype(int)) >= 0).all()
    assert np.abs(curved.mean(axis=(1, 2)) - orig.mean(axis=(1, 2))).max() > 10
    noisy, orig = _by_index(images, AugmentConfig(**off, noise=0.03))
    diff = noisy.astype(float) - orig
    assert diff.std(axis=(1, 2)).max() < 0.03 * 255 * 1.1 and abs(diff.mean()) < 0.5
    assert (diff.std(axis=(1, 2)) > 1).mean() > 0.5  # noise levels are drawn from 0 to the largest
    jpeg, orig = _by_index(images, AugmentConfig(**off, jpeg=1.0))
    diff = np.abs(jpeg.astype(float) - orig).mean(axis=(1, 2))
    assert (diff > 0).all() and diff.max() < 12
    captured, orig = _by_index(images, "capture", seed=5)  # the preset: every face changed, reproducible
    assert all(not np.array_equal(a, o) for a, o in zip(captured, orig))
    np.testing.assert_array_equal(captured, _by_index(images, "capture", seed=5)[0])


def test_weights_follow_their_faces(valid_subset):
    images = read_ferplus_folder(valid_subset).images
    index = np.arange(len(images), dtype=np.float32)
    ds = make_dataset(images, index[:, None], batch_size=16, training=True, augment="light", seed=2,
                      weights=index * 10)
    x, y, w = next(iter(ds))
    assert x.shape == (16, 48, 48, 1) and w.dtype == np.float32
    np.testing.assert_array_equal(w.numpy(), y.numpy()[:, 0] * 10)  # shuffled together
    n = len(images)
    with pytest.raises(ValueError, match=rf"weights must have one value per image, shape \({n},\), got \(3,\)"):
        make_dataset(images, index[:, None], weights=np.ones(3))


def test_pipeline_bad_input():
    with pytest.raises(TypeError, match="must be uint8, got float32"):
        make_dataset(np.zeros((4, 48, 48), np.float32), np.zeros((4, 9)))
    with pytest.raises(ValueError, match="4 images but 3 targets"):
        make_dataset(np.zeros((4, 48, 48), np.uint8), np.zeros((3, 9)))
    with pytest.raises(ValueError, match="unknown augmentation preset 'extreme'; valid: none, flip"):
        make_dataset(np.zeros((4, 48, 48), np.uint8), np.zeros((4, 9)), training=True, augment="extreme")
