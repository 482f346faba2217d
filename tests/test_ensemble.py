"""The probabilistic ensemble: fitting, epistemic spread, propagation, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.errors import ConfigError
from saferl_tf.models.dynamics import DynamicsEnsemble
from saferl_tf.models.ensemble import GaussianEnsemble


def _sine(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return x, (np.sin(3 * x) + 0.05 * rng.normal(size=x.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    x, y = _sine()
    ensemble = GaussianEnsemble(1, 1, members=5, hidden_units=64, hidden_layers=3, seed=1)
    report = ensemble.fit(x, y, max_epochs=150)
    return ensemble, report


def test_fits_a_1d_function_and_epistemic_spread_grows_away_from_the_data(fitted):
    ensemble, report = fitted
    inside = np.linspace(-0.9, 0.9, 7, dtype=np.float32)[:, None]
    moments = ensemble.moments(inside)
    np.testing.assert_allclose(moments.mean.numpy(), np.sin(3 * inside), atol=0.1)
    # The aleatoric part learns the noise level (0.05) inside the data.
    assert np.all(np.sqrt(moments.aleatoric_variance.numpy()) < 0.2)
    spread = [
        float(np.sqrt(ensemble.moments(np.array([[x]], np.float32)).epistemic_variance)[0, 0])
        for x in (0.0, 1.5, 3.0, 5.0)
    ]
    assert spread[0] < 0.05
    assert spread[0] < spread[1] < spread[2] < spread[3]
    assert report.validation_mse.shape == (5,) and report.elites.shape == (5,)


def test_the_mean_only_forward_pass_gives_the_same_means(fitted):
    ensemble, _ = fitted
    x = np.linspace(-1.5, 1.5, 7, dtype=np.float32)[:, None]
    mean, variance = ensemble.member_moments(x)
    mean_only, none = ensemble.member_moments(x, variance=False)
    assert none is None and ensemble.moments(x, aleatoric=False).aleatoric_variance is None
    np.testing.assert_allclose(mean_only.numpy(), mean.numpy(), rtol=1e-6, atol=1e-6)
    assert np.all(variance.numpy() > 0)


def test_members_are_one_batched_product_not_copies(fitted):
    ensemble, _ = fitted
    mean, variance = ensemble.member_moments(np.array([[4.0]], np.float32))
    assert mean.shape == (5, 1, 1) and variance.shape == (5, 1, 1)
    assert np.ptp(mean.numpy()) > 1e-3  # Members differ off the data.
    assert all(kernel.shape[0] == 5 for kernel in ensemble.kernels)


def test_distributions_are_tfp_objects_with_the_stated_shapes(fitted):
    ensemble, _ = fitted
    x = np.zeros((4, 1), np.float32)
    members = ensemble.member_distribution(x)
    assert members.batch_shape == (5, 4) and members.event_shape == (1,)
    mixture = ensemble.distribution(x)
    assert mixture.batch_shape == (4,) and mixture.event_shape == (1,)
    np.testing.assert_allclose(mixture.mean().numpy(), ensemble.moments(x).mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(
        mixture.variance().numpy(), ensemble.moments(x).variance.numpy(), rtol=1e-4, atol=1e-7
    )


def test_propagation_modes(fitted):
    ensemble, _ = fitted
    x = tf.constant(np.full((10, 1), 2.0, np.float32))  # 10 particles, 5 members: 2 each.
    member_means = ensemble.member_moments(x[:1])[0].numpy()[:, 0, 0]
    seed = tf.constant([3, 4])
    fixed = ensemble.propagate(x, "fixed", seed, sample=False).numpy()[:, 0]
    assert fixed.shape == (10,)
    # TS-∞: particle p follows elite p mod K, at every call.
    expected = member_means[np.arange(10) % 5]
    np.testing.assert_allclose(fixed, expected, rtol=1e-5)
    again = ensemble.propagate(x, "fixed", tf.constant([9, 9]), sample=False).numpy()[:, 0]
    np.testing.assert_allclose(again, fixed)
    # TS-1: every particle gets some member's mean; the assignment is balanced
    # and changes with the seed.
    first = ensemble.propagate(x, "random", seed, sample=False).numpy()[:, 0]
    second = ensemble.propagate(x, "random", tf.constant([5, 6]), sample=False).numpy()[:, 0]
    for values in (first, second):
        index = np.argmin(np.abs(values[:, None] - member_means[None]), axis=1)
        np.testing.assert_allclose(values, member_means[index], rtol=1e-5)
        assert np.bincount(index, minlength=5).tolist() == [2] * 5
    assert not np.allclose(first, second)
    expectation = ensemble.propagate(x, "expectation", seed).numpy()[:, 0]
    np.testing.assert_allclose(expectation, np.full(10, member_means.mean()), rtol=1e-5)
    # A particle count that is not a multiple of K works too; sampling adds noise.
    odd = ensemble.propagate(x[:7], "fixed", seed, sample=True).numpy()
    assert odd.shape == (7, 1) and not np.allclose(odd[:, 0], expected[:7])
    with pytest.raises(ConfigError, match="accepted: expectation, random, fixed"):
        ensemble.propagate(x, "ts", seed)


def test_propagation_compiles_once_for_thousands_of_particles(fitted):
    ensemble, _ = fitted
    traces = []

    @tf.function(jit_compile=True)
    def step(x, seed):
        traces.append(1)
        return ensemble.propagate(x, "random", seed)

    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4000, 1)).astype(np.float32))
    for i in range(3):
        assert step(x, tf.constant([i, 0])).shape == (4000, 1)
    assert len(traces) == 1


def test_early_stopping_keeps_best_members_and_elites_by_validation():
    x, y = _sine(200, seed=2)
    ensemble = GaussianEnsemble(1, 1, members=4, elites=2, hidden_units=32, hidden_layers=2,
                                patience=2, seed=0)  # fmt: skip
    report = ensemble.fit(x, y, max_epochs=500)
    assert report.epochs < 500  # Stopped early.
    assert report.elites.tolist() == np.argsort(report.validation_mse)[:2].tolist()
    assert ensemble.elite_indices.numpy().tolist() == report.elites.tolist()
    assert ensemble.member_moments(x[:3])[0].shape == (2, 3, 1)
    assert ensemble.train_traces == 1  # Every batch has the same shape,
    ensemble.fit(x[:50], y[:50], max_epochs=2)  # also when less data than a batch is topped up.
    assert ensemble.train_traces == 1


def test_learned_log_variance_bounds_hold_off_the_data(fitted):
    ensemble, _ = fitted
    _, variance = ensemble.member_moments(np.array([[50.0], [-50.0]], np.float32))
    std = ensemble.target_std.numpy()
    log_variance = np.log(variance.numpy() / std**2)
    assert np.all(log_variance <= ensemble.max_log_variance.numpy() + 1e-4)
    assert np.all(log_variance >= ensemble.min_log_variance.numpy() - 1e-4)


def test_deterministic_members_and_calibration_closed_form():
    x, y = _sine(300, seed=3)
    ensemble = GaussianEnsemble(1, 1, members=3, hidden_units=32, hidden_layers=2,
                                probabilistic=False, seed=0)  # fmt: skip
    ensemble.fit(x, y, max_epochs=30)
    assert not ensemble.probabilistic
    np.testing.assert_array_equal(ensemble.moments(x[:5]).aleatoric_variance.numpy(), 0.0)
    assert ensemble.member_distribution(x[:5]).batch_shape == (3, 5)
    scale = ensemble.calibrate(x, y)
    moments = ensemble.moments(x)
    # With the scale the standardized residuals have unit mean square (closed form).
    ratio = np.mean((y - moments.mean.numpy()) ** 2 / moments.epistemic_variance.numpy())
    assert scale > 0 and ratio == pytest.approx(1.0, rel=1e-3)


def test_probabilistic_calibration_minimizes_held_out_likelihood(fitted):
    ensemble, _ = fitted
    x, y = _sine(200, seed=5)
    x = x * 2.0  # Partly off the training data, so the epistemic part matters.
    y = np.sin(3 * x)
    scale = ensemble.calibrate(x, y)

    def nll(s):
        ensemble.epistemic_scale.assign(s)
        m = ensemble.moments(x)
        variance = m.variance.numpy().astype(np.float64)
        return np.mean(np.log(variance) + (y - m.mean.numpy()) ** 2 / variance)

    best = nll(scale)
    assert best <= nll(scale * 1.5) and best <= nll(scale / 1.5)
    ensemble.epistemic_scale.assign(1.0)


def test_bad_settings_and_inputs_are_one_line_errors():
    with pytest.raises(ConfigError, match="elites"):
        GaussianEnsemble(2, 1, members=3, elites=4)
    with pytest.raises(ConfigError, match="accepted: swish"):
        GaussianEnsemble(2, 1, activation="gelu2")
    ensemble = GaussianEnsemble(2, 1, members=2, hidden_units=4, hidden_layers=1)
    with pytest.raises(ValueError, match=r"inputs must be \[N, 2\]"):
        ensemble.fit(np.zeros((5, 3)), np.zeros((5, 1)))
    with pytest.raises(ConfigError, match="cannot learn"):
        DynamicsEnsemble(3, 1, learn=("rewards",))


def test_dynamics_ensemble_learns_changes_and_extras():
    rng = np.random.default_rng(0)
    observation = rng.uniform(-1, 1, (600, 2)).astype(np.float32)
    action = rng.uniform(-1, 1, (600, 1)).astype(np.float32)
    following = observation + 0.1 * action  # A simple integrator.
    reward = -np.sum(observation**2, axis=1)
    dynamics = DynamicsEnsemble(2, 1, learn=("reward",), members=3, hidden_units=32,
                                hidden_layers=2, learning_rate=3e-3, patience=20, batch_size=64,
                                seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="pass them to fit"):
        dynamics.fit(observation, action, following)
    dynamics.fit(observation, action, following, rewards=reward, max_epochs=300)
    prediction, epistemic_std = dynamics.expected_step(observation[:50], action[:50])
    np.testing.assert_allclose(prediction.next_observation.numpy(), following[:50], atol=0.05)
    np.testing.assert_allclose(prediction.reward.numpy(), reward[:50], atol=0.15)
    assert prediction.cost is None and epistemic_std.shape == (50, 2)
    sampled = dynamics.step(observation[:50], action[:50], "fixed", tf.constant([1, 2]))
    assert sampled.next_observation.shape == (50, 2) and sampled.reward.shape == (50,)


def test_pairwise_kl_is_the_mean_of_tfps_kl_over_ordered_pairs_and_dimensions():
    from saferl_tf.models.ensemble import pairwise_kl

    rng = np.random.default_rng(0)
    k, n, d = 4, 6, 3
    mean = rng.normal(size=(k, n, d))
    variance = rng.uniform(0.1, 2.0, size=(k, n, d))
    ours = pairwise_kl(tf.constant(mean), tf.constant(variance)).numpy()
    normal = tfp.distributions.Normal
    reference = np.zeros(n)
    for i in range(k):
        for j in range(k):
            if i != j:
                kl = tfp.distributions.kl_divergence(
                    normal(mean[i], np.sqrt(variance[i])), normal(mean[j], np.sqrt(variance[j]))
                ).numpy()
                reference += kl.mean(-1) / (k * (k - 1))
    np.testing.assert_allclose(ours, reference, rtol=1e-10)
    # Agreeing members: no disagreement; a single member: zero by definition.
    same = np.repeat(mean[:1], k, 0)
    np.testing.assert_allclose(pairwise_kl(same, np.ones_like(same)).numpy(), 0.0, atol=1e-12)
    assert pairwise_kl(tf.constant(mean[:1]), tf.constant(variance[:1])).shape == (n,)


def test_mspe_matches_a_numpy_float64_reference():
    from saferl_tf.models.ensemble import mspe_loss

    rng = np.random.default_rng(3)
    mean, log_variance, target = (rng.normal(size=(3, 5, 2)) for _ in range(3))
    squared = (mean - target) ** 2
    variance_error = (np.exp(log_variance) - squared) ** 2
    ratio = 0.05 * squared.mean() / variance_error.mean()
    expected = (squared.mean(axis=(1, 2)) + (ratio * variance_error).mean(axis=(1, 2))
                + 0.05 * (log_variance**2).mean())  # fmt: skip
    got = mspe_loss(*(tf.constant(a, tf.float32) for a in (mean, log_variance, target)))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_mspe_keeps_variances_near_the_datas_where_the_likelihood_shrinks_them():
    """Why CMBPO's disagreement needs MSPE: with the likelihood the predicted
    variance follows the residual (here noise std 0.05 of a unit-scale sine),
    with MSPE it stays near the data's variance (1 in normalized units)."""
    x, y = _sine(400, seed=4)
    log_variances = {}
    for objective in ("nll", "mspe"):
        ensemble = GaussianEnsemble(1, 1, members=3, hidden_units=32, hidden_layers=2,
                                    objective=objective, seed=0)  # fmt: skip
        ensemble.fit(x, y, max_epochs=150, min_epochs=150)
        _, variance = ensemble.member_moments(x[:100], tf.range(3))
        normalized = variance.numpy() / ensemble.target_std.numpy() ** 2
        log_variances[objective] = float(np.mean(np.log(normalized)))
    assert log_variances["mspe"] > -0.5  # Within a factor 1.65 of the data's variance.
    assert log_variances["nll"] < -3.0  # Shrunk towards the residual's.


def test_min_epochs_holds_off_early_stopping():
    x, y = _sine(200, seed=5)
    ensemble = GaussianEnsemble(1, 1, members=2, hidden_units=16, hidden_layers=1,
                                patience=1, improvement=0.5, seed=0)  # fmt: skip
    assert ensemble.fit(x, y, max_epochs=60).epochs < 20  # Patience 1 at 50% stops at once.
    assert ensemble.fit(x, y, max_epochs=60, min_epochs=40).epochs >= 40


def test_min_steps_trains_small_data_past_early_stopping_and_max_epochs():
    """With 60 samples an epoch is one step: patience alone stops a fit after
    a handful of steps (the planning agents' first refits), min_steps does not."""
    x, y = _sine(60, seed=6)
    ensemble = GaussianEnsemble(1, 1, members=2, hidden_units=16, hidden_layers=1,
                                patience=1, improvement=0.5, seed=0)  # fmt: skip
    assert ensemble.fit(x, y, max_epochs=50).steps < 10
    report = ensemble.fit(x, y, max_epochs=20, min_steps=120)
    assert report.steps == 120  # Past max_epochs (20 one-step epochs), then stopped at once.
    assert ensemble.fit(x, y, max_epochs=20, min_steps=120, max_steps=30).steps == 30


def test_quantile_calibration_reaches_the_requested_coverage_per_dimension():
    from saferl_tf.models.ensemble import quantile_calibration

    rng = np.random.default_rng(0)
    spread = np.array([0.5, 2.0, 5.0])  # The true std per output; the model says 1.
    targets = rng.normal(0.0, spread, (4000, 3))
    ones, zeros = np.ones_like(targets), np.zeros_like(targets)
    scales = quantile_calibration(zeros, ones, zeros, targets)
    np.testing.assert_allclose(scales, spread, atol=0.15)  # The grid's step is 0.101.
    # Coverage on fresh held-out data from the same Gaussian, at every level.
    fresh = rng.normal(0.0, spread, (20000, 3))
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(fresh / scales / math.sqrt(2.0)))
    for level in np.linspace(0.05, 1.0, 20):
        np.testing.assert_allclose(np.mean(cdf <= level, axis=0), level, atol=0.03)


def test_quantile_calibration_scales_each_output_of_the_ensemble():
    from saferl_tf.models.ensemble import quantile_calibration

    ensemble = GaussianEnsemble(2, 3, members=4, hidden_units=8, hidden_layers=1,
                                calibrate=True, calibration="quantile", seed=1)  # fmt: skip
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(500, 2)).astype(np.float32)
    targets = (rng.normal(size=(500, 3)) * [0.1, 1.0, 3.0]).astype(np.float32)
    moments = ensemble.moments(inputs)  # Scale 1 before calibrating.
    expected = quantile_calibration(moments.mean.numpy(), np.sqrt(moments.epistemic_variance),
                                    moments.aleatoric_variance.numpy(), targets)  # fmt: skip
    ensemble.calibrate(inputs, targets)
    np.testing.assert_allclose(ensemble.epistemic_dimension_scale.numpy(), expected, rtol=1e-6)
    calibrated = ensemble.moments(inputs).epistemic_variance.numpy()
    np.testing.assert_allclose(calibrated, moments.epistemic_variance.numpy() * expected**2,
                               rtol=1e-5)  # fmt: skip
    with pytest.raises(ConfigError, match="accepted: likelihood, quantile"):
        GaussianEnsemble(2, 3, calibration="coverage")


@pytest.mark.parametrize("bootstrap", [False, True])
def test_bootstrap_gives_each_member_its_own_resample(bootstrap):
    ensemble = GaussianEnsemble(2, 1, members=3, hidden_units=8, hidden_layers=1,
                                bootstrap=bootstrap, holdout_ratio=0.0, seed=2)  # fmt: skip
    seen = []
    original = ensemble._epoch_order

    def record(rows, steps):
        seen.append(np.sort(rows))
        return original(rows, steps)

    ensemble._epoch_order = record
    data = np.random.default_rng(2).normal(size=(60, 2)).astype(np.float32)
    ensemble.fit(data, data[:, :1], max_epochs=2)
    first_fit = seen[:3]  # Epoch 1: one row set per member; epoch 2 the same sets.
    assert all(np.array_equal(a, b) for a, b in zip(seen[3:6], first_fit))
    if bootstrap:
        assert all(len(np.unique(rows)) < 60 for rows in first_fit)  # Drawn with replacement.
        assert not np.array_equal(first_fit[0], first_fit[1])
    else:
        assert all(np.array_equal(rows, np.arange(60)) for rows in first_fit)
