"""The distractor wrapper: its dynamics against a NumPy loop, the reset to the
fixed point, shared parameters across environments, and the launcher option."""

from __future__ import annotations

import numpy as np
import pytest

from saferl_tf import envs
from saferl_tf.envs.distraction import Distraction
from saferl_tf.errors import ConfigError
from saferl_tf.training.experiment import RunSettings, train

ENV = "saferl_PointHazard-v0"


def test_the_distractors_follow_their_dynamics_and_reset_to_the_fixed_point():
    env = envs.make(ENV, distraction_dimensions=5, distraction_seed=5, seed=1)
    base = envs.make(ENV, seed=1)
    observation, _ = env.reset()
    plain, _ = base.reset()
    assert observation.shape == (13,) and env.observation_space.shape == (13,)
    np.testing.assert_array_equal(observation[:8], plain)  # The task's part is untouched.
    wrapper = env.env if isinstance(env.env, Distraction) else env
    while not isinstance(wrapper, Distraction):
        wrapper = wrapper.env
    rng = np.random.default_rng(5)  # The parameters, drawn as documented.
    m, p = rng.normal(size=(5, 5)), (10 * rng.normal(size=(5, 5))) ** 2
    c = rng.normal(size=5)
    state, resets = observation[8:].astype(np.float64), 0
    for _ in range(200):
        action = np.array([0.3, -0.2], np.float32)
        observation, reward, cost, *_ = env.step(action)
        plain_observation, plain_reward, plain_cost, *_ = base.step(action)
        y = m @ state
        expected = y + 0.1 * np.sin(p @ y)
        reset = np.abs(expected) > 20
        resets += int(reset.any())
        expected = np.where(reset, c, expected)
        np.testing.assert_allclose(observation[8:], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(observation[:8], plain_observation)
        assert (reward, cost) == (plain_reward, plain_cost)  # No information in them.
        state = wrapper.state
    assert resets > 0  # The switching happened, so the reset path is checked.


def test_environments_of_one_run_share_the_dynamics_and_bad_input_is_refused():
    first = envs.make(ENV, distraction_dimensions=2, distraction_seed=3, seed=0)
    second = envs.make(ENV, distraction_dimensions=2, distraction_seed=3, seed=99)
    other = envs.make(ENV, distraction_dimensions=2, distraction_seed=4, seed=0)

    def wrapper(env):
        while not isinstance(env, Distraction):
            env = env.env
        return env

    np.testing.assert_array_equal(wrapper(first).linear_map, wrapper(second).linear_map)
    assert not np.allclose(wrapper(first).linear_map, wrapper(other).linear_map)
    with pytest.raises(ConfigError, match="distraction_dimensions must be >= 0"):
        envs.make(ENV, distraction_dimensions=-1)
    with pytest.raises(ConfigError, match="needs observation='vector'"):
        envs.make(ENV, distraction_dimensions=2, observation="pixels")


def test_a_run_with_distractors_resumes_only_with_them(tmp_path):
    settings = RunSettings(env=ENV, agent="random", run_dir=str(tmp_path / "run"),
                           total_steps=100, eval_every=0, progress=False,
                           distraction_dimensions=4)  # fmt: skip
    summary = train(settings)
    assert summary["env_steps"] == 100
    import dataclasses

    with pytest.raises(ConfigError, match="distraction_dimensions"):
        train(dataclasses.replace(settings, total_steps=200, distraction_dimensions=0))
