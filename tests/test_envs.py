import subprocess
import sys

import numpy as np
import pytest

from saferl_tf import envs
from saferl_tf.envs.vector import EnvironmentWorkerError
from saferl_tf.errors import ConfigError


def _types_ok(result):
    observation, reward, cost, terminated, truncated, info = result
    assert isinstance(reward, float) and isinstance(cost, float)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    assert isinstance(info, dict)
    return observation


def test_step_api_for_each_family():
    for env_id in ("sgym_Safexp-PointGoal1-v0", "gym_Pendulum-v1", "saferl_TestCounting-v0"):
        env = envs.make(env_id, seed=0)
        observation, _ = env.reset()
        assert observation.dtype == np.float32
        assert observation.shape == env.observation_space.shape
        next_observation = _types_ok(env.step(env.action_space.sample()))
        assert next_observation.shape == observation.shape
        env.close()


def test_cost_is_zero_without_one():
    env = envs.make("gym_Pendulum-v1", seed=0)
    env.reset()
    assert all(env.step(env.action_space.sample())[2] == 0.0 for _ in range(5))


def test_action_repeat_sums_reward_and_cost():
    repeated = envs.make("saferl_TestCounting-v0", action_repeat=3, seed=1)
    single = envs.make("saferl_TestCounting-v0", seed=1)
    repeated.reset()
    single.reset()
    action = np.array([0.5, -0.5], np.float32)
    _, reward, cost, terminated, _, info = repeated.step(action)
    singles = [single.step(action) for _ in range(3)]
    assert reward == sum(s[1] for s in singles) == 3.0
    assert cost == sum(s[2] for s in singles) == 1.0  # Step 3 costs 1.
    assert info["env_steps"] == 3 and not terminated


def test_action_repeat_sums_cost_on_a_safety_gymnasium_task():
    repeated = envs.make("sgym_SafetyPointGoal1-v0", action_repeat=4, seed=3)
    single = envs.make("sgym_SafetyPointGoal1-v0", seed=3)
    first_repeated, _ = repeated.reset()
    first_single, _ = single.reset()
    np.testing.assert_array_equal(first_repeated, first_single)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 2)
        _, reward, cost, *_ = repeated.step(action)
        singles = [single.step(action) for _ in range(4)]
        assert reward == pytest.approx(sum(s[1] for s in singles))
        assert cost == sum(s[2] for s in singles)


def test_action_repeat_stops_when_the_episode_ends():
    env = envs.make("saferl_TestCounting-v0", action_repeat=4, seed=0)
    env.reset()
    steps = [env.step(np.zeros(2)) for _ in range(3)]
    assert [s[5]["env_steps"] for s in steps] == [4, 4, 2]
    assert steps[-1][3] is True


def test_episode_length_truncates():
    env = envs.make("sgym_SafetyPointGoal1-v0", episode_length=7, seed=0)
    env.reset()
    flags = [env.step(env.action_space.sample())[4] for _ in range(7)]
    assert flags == [False] * 6 + [True]


def test_actions_are_normalized_to_unit_box():
    env = envs.make("saferl_TestCounting-v0", seed=0)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset()
    env.step(np.array([1.0, -0.5]))
    np.testing.assert_allclose(env.unwrapped.last_action, [2.0, -1.0])
    raw = envs.make("saferl_TestCounting-v0", normalize_actions=False)
    assert np.all(raw.action_space.high == 2)


def test_pixels_from_safety_gymnasium_are_64x64_rgb():
    env = envs.make("sgym_Safexp-PointGoal2-v0", observation="pixels", seed=0)
    observation, info = env.reset()
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    assert env.observation_space.shape == (64, 64, 3)
    assert info["vector_observation"].shape == (60,)
    assert observation.std() > 0  # An actual image, not a blank buffer.
    observation, *_ = env.step(env.action_space.sample())
    assert observation.shape == (64, 64, 3)
    env.close()


def test_pixels_are_resized_when_the_renderer_gives_another_size():
    env = envs.make("saferl_TestCounting-v0", observation="pixels", seed=0)
    env.reset()
    observation, *_ = env.step(np.zeros(2))
    assert observation.shape == (64, 64, 3)
    assert np.all(observation[..., 0] == 1)  # The fake frame's red channel is t.


def test_bad_options():
    with pytest.raises(ConfigError, match="accepted: vector, pixels"):
        envs.make("saferl_TestCounting-v0", observation="depth")
    with pytest.raises(ConfigError, match="action_repeat"):
        envs.make("saferl_TestCounting-v0", action_repeat=0)


def _rollout(vector, steps=25):
    rng = np.random.default_rng(0)
    first = vector.reset()
    assert first.shape == (vector.num_envs, 3)
    results = []
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (vector.num_envs, 2))
        results.append(vector.step(actions))
    return first, results


@pytest.mark.parametrize("local", [0, 1])
def test_parallel_workers_match_serial_environments(local):
    serial = envs.make_vector("saferl_TestCounting-v0", 3, seed=5, parallel=False)
    parallel = envs.make_vector("saferl_TestCounting-v0", 3, seed=5, parallel=True, local=local)
    try:
        assert isinstance(parallel, envs.ParallelEnvs)
        first_serial, serial_steps = _rollout(serial)
        first_parallel, parallel_steps = _rollout(parallel)
        np.testing.assert_array_equal(first_serial, first_parallel)
        assert not np.array_equal(first_serial[0], first_serial[1])  # Seeds differ per env.
        assert len(parallel._processes) == 3 - local
        for a, b in zip(serial_steps, parallel_steps):
            np.testing.assert_array_equal(a.observation, b.observation)
            np.testing.assert_array_equal(a.next_observation, b.next_observation)
            np.testing.assert_array_equal(a.cost, b.cost)
            np.testing.assert_array_equal(a.terminated, b.terminated)
    finally:
        serial.close()
        parallel.close()


def test_vector_env_resets_finished_episodes():
    vector = envs.make_vector("saferl_TestCounting-v0", 1, seed=0)
    _, steps = _rollout(vector, 12)
    done = [s.done[0] for s in steps]
    assert done.index(True) == 9  # Episodes last 10 steps.
    end = steps[9]
    assert end.observation[0, 0] == 10  # The final observation, t = 10...
    assert end.next_observation[0, 0] == 0  # ...and the first of the next episode.
    assert steps[10].observation[0, 0] == 1


def test_worker_errors_reach_the_parent():
    vector = envs.make_vector("saferl_TestCrashing-v0", 2, seed=0, parallel=True, local=0)
    vector.reset()
    with pytest.raises(
        EnvironmentWorkerError, match=r"(?s)worker \d failed.*crashing test environment"
    ):
        for _ in range(10):
            vector.step(np.zeros((2, 2)))
    vector.close()
    assert not any(process.is_alive() for process in vector._processes)


def test_errors_of_the_local_environment_are_raised_as_they_are():
    vector = envs.make_vector("saferl_TestCrashing-v0", 2, seed=0, parallel=True, local=1)
    vector.reset()
    with pytest.raises(RuntimeError, match="crashing test environment crashed"):
        for _ in range(10):
            vector.step(np.zeros((2, 2)))
    vector.close()


def test_pixels_then_tensorflow_in_one_process(python, subprocess_env):
    # Mesa's EGL loaded before TensorFlow made tf.function segfault; see envs/rendering.py.
    import subprocess

    code = (
        "from saferl_tf import envs\n"
        "env = envs.make('sgym_SafetyPointGoal1-v0', observation='pixels', seed=0)\n"
        "assert env.reset()[0].shape == (64, 64, 3)\n"
        "import tensorflow as tf\n"
        "f = tf.function(lambda x: tf.reduce_sum(x * x))\n"
        "print('sum', float(f(tf.ones(3))))\n"
    )
    env = dict(subprocess_env)
    env.pop("MUJOCO_GL", None)
    env.pop("DISPLAY", None)
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sum 3.0" in result.stdout


def test_lqr_dynamics_reward_and_length():
    from saferl_tf.envs.lqr import A, Q, R

    env = envs.make("saferl_LQR-v0", seed=0)
    assert env.action_space.shape == (3,) and not env.action_space.is_bounded()
    state, _ = env.reset()
    action = np.array([0.1, -0.2, 0.3])
    next_state, reward, cost, terminated, truncated, _ = env.step(action)
    assert reward == pytest.approx(-(state @ Q @ state + action @ R @ action), rel=1e-6)
    noise = next_state - (A @ state + action)
    assert np.abs(noise).max() < 5 and cost == 0.0  # Unit Gaussian noise.
    steps = 1
    while not (terminated or truncated):
        *_, terminated, truncated, _ = env.step(np.zeros(3))
        steps += 1
    assert steps == 300 and truncated


def test_point_hazard_rewards_closeness_and_costs_inside_the_hazard():
    from saferl_tf.envs import make

    env = make("saferl_PointHazard-v0", seed=0)

    def episode(policy):
        observation, _ = env.reset(seed=0)
        total_return, total_cost, done = 0.0, 0.0, False
        while not done:
            observation, reward, cost, terminated, truncated, _ = env.step(policy(observation))
            assert reward == pytest.approx(-0.1 * np.linalg.norm(observation[4:6]), rel=1e-5)
            total_return, total_cost, done = total_return + reward, total_cost + cost, truncated
        return total_return, total_cost, observation

    def towards_goal(observation):  # Steer at the goal, braking near it.
        return np.clip(2.0 * observation[4:6] - 0.5 * observation[2:4], -1, 1)

    straight_return, straight_cost, last = episode(towards_goal)
    assert straight_cost >= 2 and np.linalg.norm(last[4:6]) < 0.1
    still_return, still_cost, _ = episode(lambda observation: np.zeros(2))
    assert still_cost == 0 and still_return < straight_return - 5


def test_environments_step_without_importing_tensorflow():
    """Worker processes register and step every own task without TensorFlow
    (about 0.5 GB and seconds of start-up each); only planners call its functions."""
    code = (
        "import sys\n"
        "from saferl_tf import envs\n"
        "for env_id in envs.registry.own_ids():\n"
        "    env = envs.make('saferl_' + env_id, seed=0)\n"
        "    env.reset()\n"
        "    env.step(env.action_space.sample())\n"
        "    env.close()\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "print('ok', len(envs.registry.own_ids()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok ") and int(result.stdout.split()[1]) >= 3
