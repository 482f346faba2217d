"""SWAG on linear regression, and its sample formula against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.models.swag import SWAG, cyclic_learning_rate


def _regression(seed=0, n=256, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.5 * rng.normal(size=n)).astype(np.float32)
    return x, y


def test_swag_mean_approaches_least_squares_and_samples_spread():
    x, y = _regression()
    weights = tf.Variable(tf.zeros([3]))
    bias = tf.Variable(0.0)
    swag = SWAG([weights, bias], decay=0.8, max_columns=20, burn_in=200, period=20)
    optimizer = tf.keras.optimizers.SGD(0.05)
    rng = np.random.default_rng(1)

    @tf.function(jit_compile=True)
    def train_step(batch_x, batch_y, step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((tf.linalg.matvec(batch_x, weights) + bias - batch_y) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, [weights, bias]), [weights, bias]))
        return swag.collect(step)

    collected = 0
    for step in range(1, 1001):
        batch = rng.integers(0, len(x), 16)  # Small batches: SGD noise for SWAG to see.
        collected += int(train_step(x[batch], y[batch], tf.constant(step)))
    assert collected == int(swag.snapshots) == (1000 - 200) // 20 + 1
    assert int(swag.columns) == 20
    design = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    least_squares = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(swag.mean.numpy(), least_squares, atol=0.1)
    samples = np.concatenate(
        [tf.reshape(w, [8, -1]).numpy() for w in swag.sample_weights(8, tf.constant([0, 1]))], 1
    )
    assert samples.shape == (8, 4)
    assert samples.std(0).min() > 1e-4  # Non-zero spread in every coordinate.
    np.testing.assert_allclose(samples.mean(0), least_squares, atol=0.3)


def test_sample_formula_matches_numpy():
    variable = tf.Variable(tf.zeros([2, 3], tf.float64))
    swag = SWAG([variable], decay=0.8, max_columns=3, burn_in=0, period=1, scale=0.5)
    rng = np.random.default_rng(0)
    history = [rng.normal(size=6) for _ in range(5)]
    mean, second, columns = None, None, []
    for step, weights in enumerate(history):
        variable.assign(weights.reshape(2, 3))
        assert bool(swag.collect(step))
        if mean is None:
            mean, second = weights.copy(), weights**2
        else:
            mean = 0.8 * mean + 0.2 * weights
            second = 0.8 * second + 0.2 * weights**2
        columns.append(weights - mean)
    np.testing.assert_allclose(swag.mean.numpy(), mean, rtol=1e-12)
    # A ring of 3: snapshots 3, 4 overwrote columns 0, 1; column 2 holds snapshot 2.
    stored = swag.deviations.numpy()
    np.testing.assert_allclose(stored, [columns[3], columns[4], columns[2]], rtol=1e-12)
    z1, z2 = rng.normal(size=(4, 6)), rng.normal(size=(4, 3))
    variance = np.maximum(second - mean**2, 0)
    expected = mean + np.sqrt(0.5) * (np.sqrt(variance / 2) * z1 + z2 @ stored / np.sqrt(2 * 2))
    np.testing.assert_allclose(swag.sample(z1, z2).numpy(), expected, rtol=1e-10)


def test_no_snapshot_before_burn_in_and_samples_are_the_weights():
    variable = tf.Variable([1.0, 2.0])
    swag = SWAG([variable], burn_in=500, period=200)
    assert not bool(swag.collect(499)) and not bool(swag.collect(600))
    samples = swag.sample_weights(3, tf.constant([0, 0]))[0].numpy()
    np.testing.assert_array_equal(samples, [[1.0, 2.0]] * 3)
    assert bool(swag.collect(500)) and bool(swag.collect(700)) and int(swag.snapshots) == 2


def test_cyclic_learning_rate_is_triangular():
    rates = [float(cyclic_learning_rate(step)) for step in (0, 100, 200, 300, 400)]
    assert rates == pytest.approx([1e-4, 3e-4, 5e-4, 3e-4, 1e-4])


def test_sampling_waits_for_min_snapshots():
    """Before ``min_snapshots`` snapshots every sample is the current weights (as
    LAMBDA's published code, which waits for all of them); from then on they differ."""
    weights = tf.Variable(tf.zeros([4]))
    swag = SWAG([weights], decay=0.5, max_columns=3, burn_in=0, period=1, min_snapshots=3)
    seed = tf.constant([1, 2])
    for step in range(3):
        weights.assign(tf.fill([4], float(step)) + tf.range(4, dtype=tf.float32) * step)
        (sampled,) = swag.sample_weights(2, seed)
        np.testing.assert_array_equal(sampled.numpy(), np.tile(weights.numpy(), (2, 1)))
        swag.collect(step)
    assert int(swag.snapshots) == 3
    (sampled,) = swag.sample_weights(2, seed)
    assert not np.allclose(sampled[0].numpy(), sampled[1].numpy())
    with pytest.raises(ValueError, match="min_snapshots"):
        SWAG([weights], min_snapshots=0)
