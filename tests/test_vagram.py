"""VaGraM's model loss against hand-computed values, the quantile clipping
against NumPy, and the value-gradient cache, each with the published code's
bug it avoids."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.models.vagram import (
    ValueGradientCache,
    clip_gradient_norms,
    vagram_loss,
    value_gradients,
)

WEIGHTS = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 0.0, -1.0], [1.0, 1.0, 1.0]])


def _linear_values(weights=WEIGHTS):
    """V_i(s) = w_i . s: a constant gradient w_i everywhere."""
    return [lambda s, w=w: tf.reduce_sum(s * tf.constant(w, tf.float32), -1) for w in weights]


def test_each_value_function_keeps_its_own_gradient():
    """The published code never zeroed the input gradient between critics, so
    its g_2 was w_1 + w_2 and so on."""
    states = tf.constant(np.random.default_rng(0).normal(size=(5, 3)), tf.float32)
    gradients = value_gradients(_linear_values(), states).numpy()
    assert gradients.shape == (5, 4, 3)
    np.testing.assert_allclose(gradients, np.broadcast_to(WEIGHTS, (5, 4, 3)), rtol=1e-6)
    accumulated = np.cumsum(WEIGHTS, axis=0)
    assert not np.allclose(gradients[0], accumulated)


def test_the_loss_with_constant_gradients_against_hand_computed_values():
    # One member, two samples, d = 3; errors e and reward errors chosen by hand.
    target = np.array([[[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]]])
    errors = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0]])
    reward_errors = np.array([0.5, -2.0])
    prediction = target.copy()
    prediction[0, :, :3] += errors
    prediction[0, :, 3] += reward_errors
    g = np.broadcast_to(WEIGHTS, (1, 2, 4, 3))
    # Bounded: (1/d) sum_j (1/4) sum_i (g_ij e_j)^2 + (r^ - r)^2, then the mean.
    bounded = []
    for e, r in zip(errors, reward_errors):
        per_dimension = [np.mean([(WEIGHTS[i, j] * e[j]) ** 2 for i in range(4)]) for j in range(3)]
        bounded.append(np.mean(per_dimension) + r**2)
    unbounded = [np.mean([(WEIGHTS[i] @ e) ** 2 for i in range(4)]) + r**2
                 for e, r in zip(errors, reward_errors)]  # fmt: skip
    args = [tf.constant(x, tf.float32) for x in (prediction, target, g)]
    assert float(vagram_loss(*args)) == pytest.approx(np.mean(bounded), rel=1e-6)
    assert float(vagram_loss(*args, bounded=False)) == pytest.approx(np.mean(unbounded), rel=1e-6)
    mse = np.mean((prediction - target) ** 2, axis=-1)[0]
    assert float(vagram_loss(*args, add_mse=True)) == pytest.approx(np.mean(bounded + mse),
                                                                      rel=1e-6)  # fmt: skip


def test_clipping_scales_rows_above_the_batch_quantile_to_it():
    """Norms far below 1e5 are clipped too (the published `or norm < 1e5`
    kept every such row as it was)."""
    rng = np.random.default_rng(1)
    gradients = rng.normal(size=(3, 40, 2, 4)) * rng.uniform(0.1, 10, size=(3, 40, 2, 1))
    clipped = clip_gradient_norms(tf.constant(gradients, tf.float32)).numpy()
    for k in range(2):  # Per value function, over members and samples together.
        norms = np.linalg.norm(gradients[:, :, k], axis=-1)
        bound = np.quantile(norms, 0.95)
        expected = np.where((norms < bound)[..., None], gradients[:, :, k],
                            gradients[:, :, k] * (bound / norms)[..., None])  # fmt: skip
        np.testing.assert_allclose(clipped[:, :, k], expected, rtol=1e-4, atol=1e-5)
        clipped_norms = np.linalg.norm(clipped[:, :, k], axis=-1)
        assert clipped_norms.max() <= bound * (1 + 1e-4) and (norms > bound).sum() >= 5


def test_the_cache_matches_recomputation_per_member_and_refreshes_with_the_version():
    rng = np.random.default_rng(2)
    states = rng.normal(size=(50, 3)).astype(np.float32)
    scale = tf.Variable(1.0)

    def quadratic(s):  # A state-dependent gradient: 2 * scale * s.
        return scale * tf.reduce_sum(tf.square(s), -1)

    cache = ValueGradientCache(chunk=16)
    gradients = cache.get(0, states, [quadratic])
    np.testing.assert_allclose(gradients[:, 0], 2 * states, rtol=1e-6)
    # Each member's bootstrap indices gather that member's own rows (the
    # published cache kept member 0's and gave them to every member).
    members = [rng.integers(0, 50, 8) for _ in range(3)]
    for indices in members:
        np.testing.assert_allclose(gradients[indices, 0], 2 * states[indices], rtol=1e-6)
    assert cache.get(0, states, [quadratic]) is gradients and cache.computations == 1
    scale.assign(3.0)  # The critics changed: a new version recomputes.
    np.testing.assert_allclose(cache.get(1, states, [quadratic])[:, 0], 6 * states, rtol=1e-6)
    assert cache.computations == 2


def test_every_member_reads_the_extras_of_its_own_rows_in_training_and_validation():
    """Members train on different rows; each must see the extras (value
    gradients) of its own rows. Extras equal to the targets make any mismatch
    an error (the published cache gave every member member 0's slice)."""
    from saferl_tf.models.ensemble import GaussianEnsemble

    rng = np.random.default_rng(4)
    inputs = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    targets = rng.normal(size=(300, 3)).astype(np.float32)

    def checked(prediction, target, extras):
        tf.debugging.assert_equal(extras, target, message="a member read other rows' extras")
        return tf.reduce_mean(tf.square(prediction - target), axis=[1, 2])

    def fit(extras):
        ensemble = GaussianEnsemble(2, 3, members=3, hidden_units=8, hidden_layers=1,
                                    probabilistic=False, holdout_ratio=0.2, batch_size=32,
                                    max_epochs=2, jit=False, seed=0)  # fmt: skip
        return ensemble.fit(inputs, targets, loss=checked, extras=extras)

    assert fit(targets.copy()).epochs == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="other rows"):
        fit(targets[::-1].copy())  # The check bites on misaligned extras.


def test_an_ensemble_fit_with_vagram_learns_what_the_values_see_and_not_the_rest():
    """Two state dimensions; the value functions depend on the first only
    (gradient [1, 0]). VaGraM fits the first and the reward, and leaves the
    second (a distractor) alone, where the squared error fits both."""
    from saferl_tf.models.ensemble import GaussianEnsemble
    from saferl_tf.models.vagram import vagram_member_loss

    rng = np.random.default_rng(3)
    inputs = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    targets = np.stack([np.sin(3 * inputs[:, 0]), np.cos(3 * inputs[:, 1]), inputs[:, 0]], 1)
    gradients = np.zeros((2000, 4, 2), np.float32)
    gradients[:, :, 0] = 1.0

    def fit(loss):
        ensemble = GaussianEnsemble(2, 3, members=2, hidden_units=32, hidden_layers=2,
                                    probabilistic=False, learning_rate=3e-3, holdout_ratio=0.1,
                                    max_epochs=60, patience=60, jit=False, seed=0)  # fmt: skip
        if loss is None:
            ensemble.fit(inputs, targets)
        else:
            ensemble.fit(inputs, targets, loss=loss, extras=gradients)
        prediction = ensemble.moments(inputs).mean.numpy()
        return np.mean((prediction - targets) ** 2, axis=0)

    vagram = fit(lambda p, t, g: vagram_member_loss(p, t, g))
    mse = fit(None)
    assert vagram[0] < 0.05 and vagram[2] < 0.05  # The valued dimension and the reward.
    assert mse[1] < 0.05  # The squared error learns the distractor...
    assert vagram[1] > 5 * mse[1]  # ...VaGraM does not spend capacity on it.
