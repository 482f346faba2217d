"""Known cost and termination of safety-gymnasium's velocity tasks, of
gymnasium's MuJoCo robots and of HalfCheetahSafe.

The registered TensorFlow functions must equal what the environments report on
real transitions: both cost classes and terminating steps included, so that a
wrong threshold, velocity or index fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf import envs
from saferl_tf.envs import velocity
from saferl_tf.envs.half_cheetah_safe import HalfCheetahSafeEnv
from saferl_tf.errors import ConfigError

# Forward speed (qvel[0]) set at the start of "fast" episodes: above each
# task's threshold, so that cost 1 occurs; it decays to cost 0 later.
BOOST = {"HalfCheetah": 8.0, "Hopper": 3.0, "Walker2d": 5.0, "Ant": 6.0, "Swimmer": 1.5,
         "Humanoid": 4.0}  # fmt: skip
# Tasks whose test must see cost 1 and cost 0 (the others: where they occur).
BOTH_COSTS = {
    "SafetyHalfCheetahVelocity-v1",
    "SafetyHalfCheetahVelocity-v0",
    "SafetyHopperVelocity-v1",
    "SafetyAntVelocity-v1",
    "SafetyWalker2dVelocity-v1",
    "SafetySwimmerVelocity-v1",
    "SafetySwimmerVelocity-v0",
    "SafetyHumanoidVelocity-v1",
}
TERMINATING = {"Hopper", "Walker2d", "Ant", "Humanoid"}


def _transitions(name: str, episodes: int = 4, steps: int = 60, seed: int = 0,
                 distraction_dimensions: int = 0):  # fmt: skip
    """Real transitions of ``sgym_<name>`` with the task observation.

    Episode 0 starts at rest and applies no torque (slow: cost 0 even for the Swimmer-v0's low
    threshold), odd episodes start fast; for the Ant (which random actions
    rarely tip over) episode 2 starts lifted above its healthy height, so it
    terminates.
    """
    env = envs.make(f"sgym_{name}", task_observation=True, seed=seed,
                    distraction_dimensions=distraction_dimensions)  # fmt: skip
    inner = env.unwrapped
    robot = velocity.robot(name)
    rows = {key: [] for key in ("observation", "action", "next_observation", "cost", "terminated")}
    for episode in range(episodes):
        observation, _ = env.reset()
        qpos, qvel = inner.data.qpos.copy(), inner.data.qvel.copy()
        if episode == 0:
            qvel[:] = 0.0
        if episode % 2:
            qvel[0] = BOOST[robot]
        if robot == "Ant" and episode == 2:
            qpos[2] = 1.3
        inner.set_state(qpos, qvel)
        _record_episode(env, observation, steps, rows, scale=float(episode > 0))
    env.close()
    return {key: np.asarray(value) for key, value in rows.items()}


def _record_episode(env, observation, steps: int, rows: dict, scale: float = 1.0) -> None:
    """Steps ``env`` with random actions (times ``scale``) for at most ``steps``
    steps or until the episode ends, appending each transition to ``rows``."""
    for _ in range(steps):
        action = env.action_space.sample() * scale
        next_observation, _, cost, terminated, truncated, _ = env.step(action)
        for key, value in zip(
            rows, (observation, action, next_observation, cost, terminated), strict=True
        ):
            rows[key].append(value)
        observation = next_observation
        if terminated or truncated:
            break


def test_task_functions_only_for_velocity_tasks():
    assert envs.task_functions("sgym_SafetyPointGoal1-v0") is None
    assert envs.task_functions("sgym_Safexp-PointGoal1-v0") is None
    assert envs.task_functions("gym_Pendulum-v1") is None
    assert envs.task_functions("gym_InvertedDoublePendulum-v4") is None  # Learned.
    cheetah = envs.task_functions("gym_HalfCheetah-v4")  # Never ends; reward learned.
    assert cheetah.terminal is None and cheetah.reward is None and cheetah.cost is None
    for name in velocity.COST_VELOCITY:
        functions = envs.task_functions(f"sgym_{name}")
        assert functions is not None and functions.reward is None and functions.cost is not None
        assert functions.observation_wrapper is not None
        assert (functions.terminal is not None) == (velocity.robot(name) in TERMINATING)


def test_thresholds_are_read_from_safety_gymnasium():
    from saferl_tf.envs.safety_gym import import_safety_gymnasium

    env = import_safety_gymnasium().make("SafetyHopperVelocity-v1")
    assert (
        velocity.velocity_threshold("SafetyHopperVelocity-v1") == env.unwrapped._velocity_threshold
    )
    env.close()
    assert velocity.velocity_threshold("SafetyHopperVelocity-v0") != velocity.velocity_threshold(
        "SafetyHopperVelocity-v1"
    )


@pytest.mark.parametrize(
    "name,planar", [("SafetyHalfCheetahVelocity-v1", False), ("SafetyAntVelocity-v1", True)]
)
def test_wrapper_appends_the_displacement_velocity(name, planar):
    plain = envs.make(f"sgym_{name}", seed=0)
    env = envs.make(f"sgym_{name}", task_observation=True, seed=0)
    observation, _ = env.reset()
    assert observation.shape == (plain.observation_space.shape[0] + 1,)
    assert env.observation_space.shape == observation.shape
    assert observation[-1] == 0.0
    np.testing.assert_array_equal(observation[:-1], plain.reset()[0])
    inner = env.unwrapped
    for _ in range(10):
        if planar:
            before = inner.get_body_com("torso")[:2].copy()
        else:
            before = inner.data.qpos[:1].copy()
        observation, *_ = env.step(env.action_space.sample())
        after = inner.get_body_com("torso")[:2] if planar else inner.data.qpos[:1]
        displacement = (after - before) / inner.dt
        expected = np.linalg.norm(displacement) if planar else displacement[0]
        np.testing.assert_allclose(observation[-1], expected, rtol=1e-6, atol=1e-6)
    plain.close()
    env.close()


@pytest.mark.parametrize("name", sorted(velocity.COST_VELOCITY))
def test_registered_cost_and_terminal_equal_the_environment(name):
    functions = envs.task_functions(f"sgym_{name}")
    data = _transitions(name)
    args = (data["observation"], data["action"], data["next_observation"])
    cost = functions.cost(*args).numpy()
    np.testing.assert_array_equal(cost, data["cost"])
    if name in BOTH_COSTS:
        assert 0 < data["cost"].sum() < len(data["cost"]), "both cost classes must occur"
    robot = velocity.robot(name)
    if robot in TERMINATING:
        terminal = functions.terminal(*args).numpy()
        np.testing.assert_array_equal(terminal, data["terminated"].astype(np.float32))
        assert 0 < data["terminated"].sum() < len(data["terminated"]), "episodes must terminate"
    else:
        assert functions.terminal is None and not data["terminated"].any()


def test_task_functions_hold_with_distractors():
    """Distractors go before the task observation's velocity entry, which the
    cost reads from the end; after it, the cost would read a distractor."""
    name = "SafetyHopperVelocity-v1"
    functions = envs.task_functions(f"sgym_{name}")
    data = _transitions(name, distraction_dimensions=3)
    plain = envs.make(f"sgym_{name}", task_observation=True)
    assert data["observation"].shape[1] == plain.observation_space.shape[0] + 3
    args = (data["observation"], data["action"], data["next_observation"])
    np.testing.assert_array_equal(functions.cost(*args).numpy(), data["cost"])
    assert 0 < data["cost"].sum() < len(data["cost"])
    np.testing.assert_array_equal(functions.terminal(*args).numpy(),
                                  data["terminated"].astype(np.float32))  # fmt: skip


def test_float32_entry_keeps_the_side_of_the_threshold():
    threshold = 0.7402
    limit = np.float32(threshold)
    for velocity_value in (threshold, np.nextafter(threshold, 1.0), np.nextafter(threshold, 0.0)):
        entry = velocity.float32_entry(velocity_value, threshold)
        assert bool(entry > limit) == (velocity_value > threshold)
        assert abs(float(entry) - velocity_value) < 1e-6


def test_functions_compile_with_xla():
    cases = [("sgym_SafetyHopperVelocity-v1", 12), ("sgym_SafetyAntVelocity-v1", 28)]
    cases += [("sgym_SafetyHumanoidVelocity-v1", 377), ("saferl_HalfCheetahSafe-v0", 20)]
    rng = np.random.default_rng(0)
    for env_id, size in cases:
        functions = envs.task_functions(env_id)
        observation = tf.constant(rng.normal(0.5, 1.0, (3, 5, size)), tf.float32)
        action = tf.zeros((3, 5, 2))
        for function in (functions.cost, functions.terminal):
            if function is None:
                continue
            compiled = tf.function(function, jit_compile=True)
            result = compiled(observation, action, observation)
            assert result.shape == (3, 5)
            np.testing.assert_array_equal(result, function(observation, action, observation))


def test_task_observation_options():
    with pytest.raises(ConfigError):
        envs.make("sgym_SafetyHopperVelocity-v1", task_observation=True, observation="pixels")
    # A task whose functions need no wrapper is unchanged.
    env = envs.make("saferl_HalfCheetahSafe-v0", task_observation=True)
    assert env.observation_space.shape == (20,)
    env.close()
    with envs.make_vector(
        "sgym_SafetyHopperVelocity-v1", 2, parallel=True, task_observation=True
    ) as vector:
        assert vector.reset().shape == (2, 12)
        step = vector.step(np.zeros((2, 3), np.float32))
        assert step.observation.shape == (2, 12)
        costs = envs.task_functions("sgym_SafetyHopperVelocity-v1").cost(
            step.observation, None, step.observation
        )
        np.testing.assert_array_equal(costs, step.cost)


# HalfCheetahSafe


def test_half_cheetah_safe_spaces_and_reward():
    env = HalfCheetahSafeEnv()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (20,) and env.action_space.shape == (6,)
    assert env.model.nq == env.model.nv == 10 and env.model.nu == 7
    # The cheetah starts about 10 m behind the wall; the last entry is that distance / 10.
    assert observation[-1] == pytest.approx(1.0, abs=0.03)
    x_before = env.data.qpos[1]
    observation, reward, terminated, truncated, info = env.step(np.full(6, 2.0))
    assert info["reward_ctrl"] == pytest.approx(-0.6)  # the action is clipped to [-1, 1]
    assert info["reward_run"] == pytest.approx((env.data.qpos[1] - x_before) / env.dt)
    assert reward == pytest.approx(info["reward_run"] + info["reward_ctrl"])
    assert not terminated and not truncated
    # The next step's wall control, at time 0.05 s.
    assert observation[-2] == pytest.approx(0.02 * np.sin(0.05 / 3) ** 2 - 0.004)
    env.close()


def test_half_cheetah_safe_wall_moves_ahead():
    env = HalfCheetahSafeEnv()
    env.reset(seed=1)
    start = env.wall_x
    for _ in range(300):
        observation, *_ = env.step(np.zeros(6))
    assert env.wall_x > start + 20.0
    assert observation[-1] * 10 > 20.0
    env.close()


def test_half_cheetah_safe_cost_equals_the_registered_cost():
    functions = envs.task_functions("saferl_HalfCheetahSafe-v0")
    assert functions.reward is None and functions.terminal is None
    env = envs.make("saferl_HalfCheetahSafe-v0", seed=2)
    inner = env.unwrapped
    next_observations, costs = [], []
    for episode in range(3):
        env.reset()
        if episode:  # Start 1.5 m behind the wall, so that cost 1 occurs.
            qpos, qvel = inner.data.qpos.copy(), inner.data.qvel.copy()
            qpos[1] = inner.wall_x - 1.5
            inner.set_state(qpos, qvel)
        for _ in range(80):
            observation, _, cost, _, _, info = env.step(env.action_space.sample())
            assert cost == info["cost"]
            next_observations.append(observation)
            costs.append(cost)
    next_observations, costs = np.asarray(next_observations), np.asarray(costs, np.float32)
    registered = functions.cost(next_observations, None, next_observations).numpy()
    np.testing.assert_array_equal(registered, costs)
    assert 0 < costs.sum() < len(costs), "both cost classes must occur"


def test_half_cheetah_safe_truncates_at_1000_steps():
    env = envs.make("saferl_HalfCheetahSafe-v0", seed=3)
    observation, _ = env.reset()
    assert observation.shape == (20,) and observation.dtype == np.float32
    action = np.zeros(6, np.float32)
    for step in range(1, 1001):
        _, _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated == (step == 1000)
    env.close()


def _gym_transitions(env_id: str, episodes: int = 6, steps: int = 200, seed: int = 0, **kwargs):
    """Real transitions of ``env_id`` under random actions; for the Ant (which
    random actions rarely tip over) odd episodes start lifted above its healthy
    height, so that they terminate."""
    env = envs.make(env_id, seed=seed, **kwargs)
    inner = env.unwrapped
    rows = {key: [] for key in ("observation", "action", "next_observation", "cost", "terminated")}
    for episode in range(episodes):
        observation, _ = env.reset()
        if "Ant" in env_id and episode % 2:
            qpos = inner.data.qpos.copy()
            qpos[2] = 1.3
            inner.set_state(qpos, inner.data.qvel.copy())
            observation = inner._get_obs()  # No wrapper adds entries for these runs.
        _record_episode(env, observation, steps, rows)
    env.close()
    return {key: np.asarray(value) for key, value in rows.items()}


@pytest.mark.parametrize("env_id, kwargs", [
    ("gym_Hopper-v4", {}), ("gym_Walker2d-v4", {}), ("gym_Ant-v4", {}), ("gym_Humanoid-v4", {}),
    ("gym_InvertedPendulum-v4", {}), ("gym_InvertedPendulum-v4", {"distraction_dimensions": 2}),
])  # fmt: skip
def test_gymnasium_robots_termination_equals_the_environment(env_id, kwargs):
    """Distractor dimensions are appended after the robot's entries, which the
    functions index from the front."""
    functions = envs.task_functions(env_id)
    data = _gym_transitions(env_id, **kwargs)
    args = (data["observation"], data["action"], data["next_observation"])
    terminal = functions.terminal(*args).numpy()
    np.testing.assert_array_equal(terminal, data["terminated"].astype(np.float32))
    assert 0 < data["terminated"].sum() < len(data["terminated"]), "episodes must terminate"
