"""The augmented Lagrangian against hand-computed values."""

from __future__ import annotations

import pytest
import tensorflow as tf

from saferl_tf.rl.lagrangian import AugmentedLagrangian


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
    assert float(restored.penalty) == pytest.approx(5e-9 * (1 + 1e-5) ** 3)
