"""The augmented Lagrangian against the published LAMBDA update, and the common
penalty interface and its factory."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.errors import ConfigError
from saferl_tf.rl.lagrangian import (
    AugmentedLagrangian,
    ConstraintPenalty,
    PIDLagrangian,
    make_penalty,
)


def published_penalize(multiplier, penalty, g, power_factor, max_penalty=1.0):
    """LAMBDA's ``SafetyCritic.penalize`` (Nocedal-Wright 17.65) in float64 NumPy:
    psi from the old lambda and c, then lambda <- relu(cond), c <- clip(c (1 + pf), c, 1).
    Returns (psi, dpsi/dg, new lambda, new c)."""
    cond = multiplier + penalty * g
    if cond > 0:
        psi, slope = multiplier * g + penalty / 2.0 * g**2, multiplier + penalty * g
    else:
        psi, slope = -1.0 / (2.0 * penalty) * multiplier**2, 0.0
    new_penalty = np.clip(penalty * (power_factor + 1.0), penalty, max_penalty)
    return psi, slope, max(cond, 0.0), new_penalty


def test_penalty_and_update_by_hand():
    lagrangian = AugmentedLagrangian(initial_multiplier=0.5, initial_penalty=0.1,
                                     penalty_growth=0.5, max_penalty=0.2)  # fmt: skip
    # Active: 0.5 + 0.1 * 2 > 0 -> psi = 0.5 * 2 + 0.05 * 4 = 1.2.
    assert float(lagrangian(2.0)) == pytest.approx(1.2)
    lagrangian.update(2.0)  # lambda = relu(0.5 + 0.2) = 0.7; c = min(0.15, 0.2) = 0.15
    assert float(lagrangian.multiplier) == pytest.approx(0.7)
    assert float(lagrangian.penalty) == pytest.approx(0.15)
    # Inactive: 0.7 + 0.15 * (-10) < 0 -> psi = -0.49 / 0.3.
    assert float(lagrangian(-10.0)) == pytest.approx(-0.49 / 0.3, rel=1e-6)
    lagrangian.update(-10.0)  # lambda = relu(0.7 - 1.5) = 0; c = min(0.225, 0.2) = 0.2
    assert float(lagrangian.multiplier) == 0.0
    assert float(lagrangian.penalty) == pytest.approx(0.2)


def test_matches_the_published_update_with_c_clipped_at_one():
    """Psi and its slope use lambda and c from before the step; c reaches 1 and stays."""
    multiplier, penalty, growth = 0.2, 0.3, 0.5
    lagrangian = AugmentedLagrangian(multiplier, penalty, growth)  # max_penalty 1, as published
    for g in [2.0, -3.0, 0.5, -10.0, 4.0, 1.5, -0.2, 3.0, -1.0]:
        psi, slope, multiplier, penalty = published_penalize(multiplier, penalty, g, growth)
        constraint = tf.Variable(g)
        with tf.GradientTape() as tape:
            ours = lagrangian(constraint)
        assert float(ours) == pytest.approx(psi, rel=1e-6, abs=1e-6)
        assert float(tape.gradient(ours, constraint)) == pytest.approx(slope, rel=1e-6, abs=1e-6)
        lagrangian.update(constraint)
        assert float(lagrangian.multiplier) == pytest.approx(multiplier, rel=1e-6, abs=1e-6)
        assert float(lagrangian.penalty) == pytest.approx(penalty, rel=1e-6)
    assert penalty == 1.0 and float(lagrangian.penalty) == 1.0  # 0.3 * 1.5^3 > 1, clipped.


def test_matches_the_published_update_at_lambdas_defaults():
    multiplier, penalty = 1e-6, 5e-9
    lagrangian = AugmentedLagrangian()
    rng = np.random.default_rng(0)
    for g in rng.uniform(-20.0, 80.0, size=200):
        psi, _, multiplier, penalty = published_penalize(multiplier, penalty, g, 1e-5)
        assert float(lagrangian(g)) == pytest.approx(psi, rel=1e-4, abs=0)
        lagrangian.update(g)
    assert float(lagrangian.multiplier) == pytest.approx(multiplier, rel=1e-4, abs=0)
    assert float(lagrangian.penalty) == pytest.approx(penalty, rel=1e-5, abs=0)


def test_gradient_flows_through_the_constraint_only():
    lagrangian = AugmentedLagrangian(initial_multiplier=0.5, initial_penalty=0.1)
    constraint = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        psi = lagrangian(constraint)
    # d psi / d g = lambda + c g = 0.7 in the active branch; lambda, c are not trained.
    assert float(tape.gradient(psi, constraint)) == pytest.approx(0.7)
    assert not lagrangian.trainable_variables


def test_lambda_defaults_and_checkpoint_round_trip(tmp_path):
    lagrangian = AugmentedLagrangian()
    assert float(lagrangian.multiplier) == pytest.approx(1e-6)
    assert float(lagrangian.penalty) == pytest.approx(5e-9)
    for _ in range(3):
        lagrangian.update(30.0)
    path = tf.train.Checkpoint(lagrangian=lagrangian).write(str(tmp_path / "ckpt"))
    restored = AugmentedLagrangian()
    tf.train.Checkpoint(lagrangian=restored).read(path).assert_consumed()
    assert float(restored.multiplier) == float(lagrangian.multiplier) > 1e-6
    assert float(restored.penalty) == float(lagrangian.penalty) > 5e-9
    assert float(restored.penalty) == pytest.approx(5e-9 * (1 + 1e-5) ** 3, rel=1e-6, abs=0)


@pytest.mark.parametrize("kind", ["augmented_lagrangian", "pid"])
def test_compiled_updates_trace_once_and_match_eager(kind):
    settings = {"augmented_lagrangian": {"initial_multiplier": 0.2, "initial_penalty": 0.3,
                                         "penalty_growth": 0.5},
                "pid": {"kp": 0.3, "ki": 0.05, "kd": 0.7, "d_delay": 2}}[kind]  # fmt: skip
    compiled, eager = make_penalty(kind, **settings), make_penalty(kind, **settings)
    traces = []

    @tf.function(jit_compile=True)
    def step(first, second):
        traces.append(1)
        loss = compiled(first)
        compiled.update(first)
        compiled.update(second)
        return loss, compiled.metrics()

    for first, second in [(3.0, -1.0), (0.5, 7.0), (-4.0, 2.5)]:
        expected = eager(first)
        eager.update(first)
        eager.update(second)
        loss, metrics = step(tf.constant(first), tf.constant(second))
        assert float(loss) == pytest.approx(float(expected), rel=1e-6)
        for key, value in eager.metrics().items():
            assert float(metrics[key]) == pytest.approx(float(value), rel=1e-6, abs=1e-7), key
    assert len(traces) == 1


@pytest.mark.parametrize("kind", ["augmented_lagrangian", "pid"])
def test_both_follow_the_interface(kind):
    penalty = make_penalty(kind)
    assert isinstance(penalty, ConstraintPenalty)
    assert isinstance(penalty, {"pid": PIDLagrangian}.get(kind, AugmentedLagrangian))
    assert isinstance(penalty.multiplier, tf.Variable)
    assert penalty(tf.constant(2.0)).shape == []
    penalty.update(tf.constant(2.0))
    metrics = penalty.metrics()
    assert next(iter(metrics)) == "multiplier"
    assert all(value.shape == [] for value in metrics.values())
    assert float(metrics["multiplier"]) == float(penalty.multiplier)
    assert not penalty.trainable_variables


def test_factory_names_what_it_accepts():
    with pytest.raises(ConfigError) as unknown:
        make_penalty("cbf")
    message = str(unknown.value)
    assert message == "unknown constraint penalty 'cbf'; accepted: augmented_lagrangian, pid"
    with pytest.raises(ConfigError, match=r"'PID' \(did you mean pid\?\); accepted: augmented"):
        make_penalty("PID")
    with pytest.raises(ConfigError, match="unknown setting 'kI'.*accepted: kp, ki, kd"):
        make_penalty("pid", kI=0.1)
    with pytest.raises(ConfigError, match="unknown setting 'kp'.*initial_penalty"):
        make_penalty("augmented_lagrangian", kp=0.1)
    penalty = make_penalty("augmented_lagrangian", initial_multiplier=0.5, penalty_growth=0.0)
    assert float(penalty.multiplier) == 0.5 and penalty.penalty_growth == 0.0


@pytest.mark.parametrize("settings", [
    {"initial_penalty": 0.0}, {"initial_penalty": -1e-9}, {"initial_multiplier": -0.1},
    {"penalty_growth": -1e-5}, {"initial_penalty": 2.0},  # above max_penalty (1)
    {"initial_multiplier": float("nan")}, {"max_penalty": "1"},
])  # fmt: skip
def test_bad_augmented_lagrangian_settings(settings):
    with pytest.raises(ConfigError) as error:
        make_penalty("augmented_lagrangian", **settings)
    assert "\n" not in str(error.value)
