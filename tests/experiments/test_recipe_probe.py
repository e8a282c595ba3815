"""experiments/recipe_probe.py: the recipe changes its probes try (mixup and cutmix on soft labels, SAM) do what
they say, so the probe figures in the model card measure those recipes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, load_script

SCRIPT = REPO / "experiments" / "recipe_probe.py"


@pytest.fixture(scope="module")
def recipe_probe():
    return load_script(SCRIPT)


def mixed(recipe_probe, kind: str, alpha: float, seed: int, n: int = 6, size: int = 12):
    """A batch of n faces of random pixels, each with a one-hot target of its own class, mixed by ``kind``: so a
    mixed target tells which face was mixed in, and with what weight. Returns the faces, the mixed faces, each
    face's own weight and the index of the face mixed into it (its own where none was)."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    x = np.random.default_rng(0).integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    votes = np.eye(n, dtype=np.float32)
    xm, ym = (a.numpy() for a in recipe_probe.mix_batches(kind, alpha)(tf.constant(x), tf.constant(votes)))
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, atol=1e-6)
    own = ym[np.arange(n), np.arange(n)]
    other = ym.copy()
    other[np.arange(n), np.arange(n)] = 0
    return x, xm, own, np.where(other.sum(axis=1) > 0, other.argmax(axis=1), np.arange(n))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixup_mixes_images_and_votes_with_one_weight(recipe_probe, seed):
    x, xm, lam, perm = mixed(recipe_probe, "mixup", 0.4, seed)
    assert np.allclose(lam[perm != np.arange(len(x))], lam[perm != np.arange(len(x))][0])  # one weight per batch
    assert sorted(perm) == list(range(len(x)))  # a permutation of the batch
    expected = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm].astype(np.float64)
    assert xm.dtype == np.uint8 and np.abs(xm - expected).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_cutmix_pastes_one_box_and_weights_votes_by_its_area(recipe_probe, seed):
    x, xm, lam, perm = mixed(recipe_probe, "cutmix", 1.0, seed)
    for i in range(len(x)):
        if perm[i] == i:  # mixed with itself: unchanged
            np.testing.assert_array_equal(xm[i], x[i])
            continue
        pasted = (xm[i] != x[i])[..., 0]
        rows, cols = np.nonzero(pasted)
        if len(rows):  # the pasted pixels lie in one box whose pixels all come from the partner
            box = np.zeros_like(pasted)
            box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
            np.testing.assert_array_equal(xm[i][box], x[perm[i]][box])
            np.testing.assert_array_equal(xm[i][~box], x[i][~box])
            assert 1 - lam[i] == pytest.approx(box.mean(), abs=1e-6)  # the votes weighted by the box's area
        else:  # a box of no pixel
            assert lam[i] == pytest.approx(1.0)


def test_mix_refuses_an_unknown_kind(recipe_probe):
    with pytest.raises(ValueError, match="mix must be 'mixup' or 'cutmix', got 'blend'"):
        recipe_probe.mix_batches("blend", 0.2)


def test_sam_step_is_the_gradient_at_the_perturbed_weights(recipe_probe):
    """One SAM step with plain SGD on a small softmax regression, against the same step computed by hand."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    w0 = [w.numpy().copy() for w in inner.trainable_weights]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.dirichlet(np.ones(3), size=8).astype(np.float32)
    lr, rho = 0.5, 0.05

    def loss_grads(weights):
        vs = [tf.Variable(w) for w in weights]
        with tf.GradientTape() as tape:
            p = tf.nn.softmax(tf.matmul(x, vs[0]) + vs[1])
            loss = tf.reduce_mean(-tf.reduce_sum(y * tf.math.log(p), axis=1))
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, vs)]

    loss, g = loss_grads(w0)
    norm = np.sqrt(sum((gi.astype(np.float64) ** 2).sum() for gi in g))
    _, g_sharp = loss_grads([(w + rho * gi / norm).astype(np.float32) for w, gi in zip(w0, g)])
    expected = [w - lr * gi for w, gi in zip(w0, g_sharp)]

    model = recipe_probe.sam_model(inner, rho)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss=keras.losses.CategoricalCrossentropy())
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for got, want in zip(inner.trainable_weights, expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)  # the loss at the weights before the step
    plain = [w - lr * gi for w, gi in zip(w0, g)]
    assert max(np.abs(p - e).max() for p, e in zip(plain, expected)) > 1e-4  # SAM's step is not plain SGD's
