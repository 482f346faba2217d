"""Flat-parameter policies and episode objectives for policy search (issue 4, in progress)."""

from __future__ import annotations

import numpy as np
import pytest

from saferl_tf.search.policies import EpisodeObjective, LinearPolicy, MLPPolicy


def test_flat_view_round_trip():
    for policy in (LinearPolicy(4, 2, bias=True), MLPPolicy(3, 2, hidden=(5,))):
        values = np.arange(policy.size, dtype=np.float64) / 10
        policy.set_flat(values)
        np.testing.assert_array_equal(policy.flat(), values)
        with pytest.raises(ValueError, match=f"expected {policy.size} parameters"):
            policy.set_flat(np.zeros(policy.size + 1))
    assert (
        LinearPolicy(4, 1).size == 4 and MLPPolicy(3, 2, hidden=(5,)).size == 3 * 5 + 5 + 5 * 2 + 2
    )


def test_cartpole_objective_separates_good_and_bad_linear_policies():
    objective = EpisodeObjective("gym_CartPole-v1", episodes=3, seed=0)
    assert objective.policy.size == 4
    # Push towards the side the pole falls to (angle, angular velocity), and
    # a little towards the cart's drift so that it stays on the track.
    assert objective(np.array([0.1, 0.5, 1.0, 1.0])) == 500.0
    assert objective(np.zeros(4)) < 50  # Always the same push.
    assert objective.last_cost == 0.0


def test_costs_are_recorded_and_observations_normalized():
    objective = EpisodeObjective("saferl_TestCounting-v0", normalize=True, seed=0)
    assert objective(np.zeros(objective.policy.size)) == 10.0
    assert objective.last_cost == 3.0
    assert objective._count == 10 and objective._mean[0] == pytest.approx(4.5)  # t = 0..9
