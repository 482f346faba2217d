"""CEM, min-max CEM, barriers and the true-dynamics swing-up of the constrained pendulum."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf import envs
from saferl_tf.envs.pendulum import pendulum_cost, pendulum_reward, pendulum_step
from saferl_tf.errors import ConfigError
from saferl_tf.planning.cem import CEMConfig, cem_minimize, shift_plan
from saferl_tf.planning.minmax import MinMaxConfig, MinMaxState, minmax_cem, next_state
from saferl_tf.planning.objectives import barrier


def test_cem_minimizes_a_sum_of_squares_over_a_5x2_action():
    target = tf.constant(np.random.default_rng(0).uniform(-0.8, 0.8, (5, 2)), tf.float32)
    config = CEMConfig(horizon=5, samples=500, elites=50, iterations=10, initial_std=1.0)

    @tf.function(jit_compile=True)
    def solve(seed):
        return cem_minimize(
            lambda x: tf.reduce_sum(tf.square(x - target), [1, 2]), tf.zeros([5, 2]), config, seed
        )

    result = solve(tf.constant([1, 2]))
    np.testing.assert_allclose(result.best.numpy(), target.numpy(), atol=0.05)
    assert float(result.best_value) < 1e-2
    assert np.all(result.std.numpy() < 0.1)  # The distribution has collapsed on it.


def test_cem_clips_samples_to_the_bounds():
    config = CEMConfig(horizon=3, samples=100, elites=10, iterations=3, initial_std=5.0)
    # The optimum (2.0) lies outside [-1, 1]: CEM ends on the bound.
    result = cem_minimize(lambda x: tf.reduce_sum(tf.square(x - 2.0), [1, 2]),
                          tf.zeros([3, 1]), config, tf.constant([0, 1]))  # fmt: skip
    np.testing.assert_allclose(result.best.numpy(), 1.0)


def test_shift_plan_drops_the_first_step():
    plan = tf.constant([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(shift_plan(plan).numpy(), [[2.0], [3.0], [0.0]])


@pytest.mark.parametrize("a, b", [(0.3, -0.5), (-0.6, 0.7)])
def test_minmax_cem_finds_the_saddle(a, b):
    # -(x - a)² + (y - b)² has its saddle at (a, b): x maximizes and y minimizes
    # it, so the planner's minimizing actions are y and its maximizing η are x.
    def objective(y, x):  # All pairs: y [N, 2, 1], x [M, 2, 1] -> [N, M].
        return (-tf.reduce_sum(tf.square(x - a), [1, 2])[None, :]
                + tf.reduce_sum(tf.square(y - b), [1, 2])[:, None])  # fmt: skip

    config = MinMaxConfig(
        actions=CEMConfig(horizon=2, samples=200, elites=20, iterations=2, initial_std=1.0),
        rounds=8, eta_samples=200, eta_elites=20,
    )  # fmt: skip
    state = MinMaxState.initial(2, 1, 1, config)
    result = tf.function(lambda seed: minmax_cem(objective, state, config, seed),
                         jit_compile=True)(tf.constant([3, 4]))  # fmt: skip
    np.testing.assert_allclose(result.actions.numpy(), b, atol=0.05)
    np.testing.assert_allclose(result.eta.numpy(), a, atol=0.05)
    assert abs(float(result.value)) < 0.01


def test_barriers():
    excess = tf.constant([-1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(barrier(excess, "relu"), [0, 0, 0.5, 2.0])
    np.testing.assert_allclose(barrier(excess, "quadratic"), [0, 0, 0.25, 4.0])
    np.testing.assert_allclose(barrier(excess, "huber"), [0, 0, 0.125, 1.5])
    np.testing.assert_allclose(barrier(excess, "exponential"), [0, 0, np.e**0.5 - 1, np.e**2 - 1],
                               rtol=1e-6)  # fmt: skip
    with pytest.raises(ConfigError, match="accepted: relu, huber"):
        barrier(excess, "log")


def test_pendulum_task_functions_match_the_environment():
    env = envs.make("saferl_ConstrainedPendulum-v0", seed=3)
    functions = envs.task_functions("saferl_ConstrainedPendulum-v0")
    assert envs.task_functions("gym_Pendulum-v1") is None
    observation, _ = env.reset()
    assert observation.shape == (3,) and observation[0] < -0.99  # Hanging down.
    rng = np.random.default_rng(0)
    costs = 0.0
    for _ in range(200):
        # Bang-bang with the swing: pumps energy fast, so the speed limit is hit.
        action = np.array([1.0 if observation[2] >= 0 else -1.0], np.float32)
        action = np.clip(action + 0.1 * rng.normal(size=1), -1, 1).astype(np.float32)
        following, reward, cost, terminated, truncated, _ = env.step(action)
        args = [tf.constant(v[None]) for v in (observation, action, following)]
        assert float(functions.reward(*args)[0]) == pytest.approx(reward, abs=1e-3)
        assert float(functions.cost(*args)[0]) == cost
        np.testing.assert_allclose(pendulum_step(args[0], args[1])[0], following, atol=1e-4)
        costs += cost
        observation = following
    assert truncated and not terminated and costs > 0


def _true_rollout(start, actions):
    """Rewards and costs [N, H] of action sequences [N, H, 1] on the true pendulum."""
    observation = tf.broadcast_to(start, [actions.shape[0], 3])
    rewards, costs = [], []
    for t in range(actions.shape[1]):
        following = pendulum_step(observation, actions[:, t])
        rewards.append(pendulum_reward(observation, actions[:, t], following))
        costs.append(pendulum_cost(observation, actions[:, t], following))
        observation = following
    return tf.stack(rewards, 1), tf.stack(costs, 1)


def test_cem_on_the_true_dynamics_swings_the_pendulum_up():
    config = CEMConfig(horizon=20, samples=300, elites=30, iterations=4, initial_std=5.0)

    @tf.function(jit_compile=True)
    def plan(observation, warm, seed):
        def objective(actions):
            rewards, _ = _true_rollout(observation, actions)
            return -tf.reduce_mean(rewards, axis=1)

        result = cem_minimize(objective, warm, config, seed)
        return result.best[0], shift_plan(result.mean)

    env = envs.make("saferl_ConstrainedPendulum-v0", seed=0)
    observation, _ = env.reset()
    warm = tf.zeros([20, 1])
    upright = 0
    for t in range(150):
        action, warm = plan(tf.constant(observation), warm, tf.constant([t, 7]))
        observation, *_ = env.step(action.numpy())
        upright += int(observation[0] > 0.95 and abs(observation[2]) < 2.0)
    assert observation[0] > 0.95, observation  # cos θ: upright at the end.
    assert upright > 30


def _separable(f_weights, g_weights):
    """J(x, y) = f(x) + g(y) over all pairs: the players do not interact."""

    def objective(actions, etas):
        f = tf.reduce_sum(actions * f_weights, [1, 2])
        g = tf.reduce_sum(etas * g_weights, [1, 2])
        return f[:, None] + g[None, :]

    return objective


def test_each_player_scores_against_the_average_over_the_opponents_fixed_elites():
    config = MinMaxConfig(
        actions=CEMConfig(horizon=3, samples=40, elites=8, iterations=2, initial_std=1.0),
        rounds=2, eta_samples=40, eta_elites=8, opponent_elites=5, eta_initial_std=1.0,
    )  # fmt: skip
    seen = []

    def objective(actions, etas):
        seen.append((actions.shape[0], etas.shape[0]))
        return _separable(1.0, -2.0)(actions, etas)

    result = minmax_cem(objective, MinMaxState.initial(3, 1, 2, config), config,
                        tf.constant([1, 2]))  # fmt: skip
    # The η player sees the actions' 5 elites, the action player the η's 5.
    assert set(seen) == {(5, 40), (40, 5)}
    elites = result.state.eta_elites
    assert elites.shape == (5, 3, 2)
    expected = tf.reduce_mean(_separable(1.0, -2.0)(result.actions[None], elites))
    assert float(result.value) == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize("carry_std", [True, False])
def test_every_cem_call_restarts_its_std_unless_carried(carry_std):
    config = MinMaxConfig(
        actions=CEMConfig(horizon=4, samples=200, elites=10, iterations=1, initial_std=5.0),
        rounds=3, eta_samples=50, eta_elites=10, carry_std=carry_std,
    )  # fmt: skip
    spreads = []

    def objective(actions, etas):
        if etas.shape[0] == 1:  # The action player's call.
            spreads.append(float(tf.math.reduce_std(actions)))
        return _separable(1.0, 0.0)(actions, etas)

    minmax_cem(objective, MinMaxState.initial(4, 1, 1, config), config, tf.constant([0, 3]))
    # Std 5 around a mean in [-1, 1], clipped to [-1, 1]: most samples on a bound.
    assert spreads[0] > 0.8
    if carry_std:
        assert spreads[-1] < 0.3  # The elites' std: the search has narrowed.
    else:
        assert min(spreads) > 0.6  # Every call starts wide again.


def test_shift_all_moves_means_and_elites_one_step_in_time_repeating_the_last():
    config = MinMaxConfig(opponent_elites=2, warm_start="shift_all")
    horizon = np.arange(4, dtype=np.float32)
    state = MinMaxState(
        tf.constant(horizon[:, None]),
        tf.constant(np.stack([horizon, -horizon], 1)),
        tf.constant(np.stack([horizon, 10 + horizon])[..., None]),
        tf.constant(np.stack([np.stack([horizon, horizon], 1)] * 2)),
    )
    shifted = next_state(state, config)
    np.testing.assert_array_equal(shifted.action_mean.numpy()[:, 0], [1, 2, 3, 3])
    np.testing.assert_array_equal(shifted.eta_mean.numpy()[:, 1], [-1, -2, -3, -3])
    # Time is shifted within each elite; the elites keep their order (the
    # published code shifted along the elite axis instead).
    np.testing.assert_array_equal(shifted.action_elites.numpy()[..., 0],
                                  [[1, 2, 3, 3], [11, 12, 13, 13]])  # fmt: skip
    reduced = next_state(state, MinMaxConfig(opponent_elites=2))
    np.testing.assert_array_equal(reduced.action_mean.numpy()[:, 0], [1, 2, 3, 0])
    assert np.all(reduced.eta_mean.numpy() == 0.0) and np.all(reduced.eta_elites.numpy() == 0.0)
    np.testing.assert_array_equal(reduced.action_elites.numpy()[1, :, 0], [1, 2, 3, 0])
