import dataclasses

import numpy as np
import pytest
from gymnasium import spaces

from saferl_tf.agents import (
    Agent,
    AgentConfig,
    RandomAgent,
    Transition,
    agent_class,
    make_agent,
    register_agent,
    registered_agents,
)
from saferl_tf.errors import CheckpointError, ConfigError, UnknownNameError

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)


def _transition(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return Transition(
        observation=rng.normal(size=(batch, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, (batch, 2)).astype(np.float32),
        reward=np.ones(batch),
        cost=np.zeros(batch),
        next_observation=rng.normal(size=(batch, 3)).astype(np.float32),
        terminated=np.zeros(batch, bool),
        truncated=np.zeros(batch, bool),
    )


def test_random_agent_is_registered_and_acts_in_bounds():
    assert "random" in registered_agents()
    agent = make_agent("random", OBS, ACT, num_envs=4, seed=0)
    action = agent.act(np.zeros((4, 3), np.float32))
    assert action.shape == (4, 2) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1)
    discrete = make_agent("random", OBS, spaces.Discrete(3))
    actions = discrete.act(np.zeros((500, 3), np.float32))
    assert actions.shape == (500,) and set(np.unique(actions)) == {0, 1, 2}


def test_inputs_are_checked():
    agent = make_agent("random", OBS, ACT, num_envs=2)
    with pytest.raises(ValueError, match=r"observation must have shape \[batch, 3\]"):
        agent.act(np.zeros(3))
    with pytest.raises(ValueError, match="is_first"):
        agent.act(np.zeros((2, 3)), is_first=np.zeros(3, bool))
    bad = dataclasses.replace(_transition(), cost=np.zeros(3))
    with pytest.raises(ValueError, match="cost has batch 3"):
        agent.observe(bad)
    with pytest.raises(TypeError, match="needs a AgentConfig"):
        RandomAgent(OBS, ACT, config={"safety": True})


def test_unknown_agent_is_one_line_with_matches():
    with pytest.raises(UnknownNameError) as error:
        agent_class("randm")
    message = str(error.value)
    assert "\n" not in message and "did you mean random" in message and "accepted:" in message


def test_user_subclass_registers_and_gets_its_config():
    @register_agent("test_scaled_random")
    class ScaledRandom(RandomAgent):
        @dataclasses.dataclass
        class Config(AgentConfig):
            scale: float = 0.1

        def _act(self, observation, explore, is_first):
            return super()._act(observation, explore, is_first) * self.config.scale

    agent = make_agent("test_scaled_random", OBS, ACT, ScaledRandom.Config(scale=0.01))
    assert np.all(np.abs(agent.act(np.zeros((100, 3)))) <= 0.01)
    with pytest.raises(ValueError, match="already taken"):

        @register_agent("test_scaled_random")
        class Other(RandomAgent):
            pass

    with pytest.raises(TypeError, match="subclass of Agent"):
        register_agent("not_an_agent")(object)


def test_save_and_restore_round_trip(tmp_path):
    agent = make_agent("random", OBS, ACT, num_envs=2, seed=3, directory=tmp_path / "run")
    for _ in range(5):
        agent.observe(_transition())
    agent.act(np.zeros((2, 3)))
    agent.save(tmp_path / "ckpt")
    expected = agent.act(np.zeros((2, 3)))
    restored = make_agent("random", OBS, ACT, num_envs=2, seed=99, directory=tmp_path / "run")
    assert restored.restore(tmp_path / "ckpt")
    np.testing.assert_array_equal(restored.act(np.zeros((2, 3))), expected)
    assert restored.num_steps == 10 and restored.replay.num_steps == 10
    assert not make_agent("random", OBS, ACT).restore(tmp_path / "empty")


def test_restore_of_a_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    agent = make_agent("random", OBS, ACT, seed=0)
    path = agent.save(tmp_path)
    data = next(tmp_path.glob("*.data-*"))
    data.write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as error:
        make_agent("random", OBS, ACT).restore(tmp_path)
    assert path in str(error.value) and "\n" not in str(error.value)


def test_base_agent_act_must_be_implemented():
    class Incomplete(Agent):
        pass

    with pytest.raises(NotImplementedError):
        Incomplete(OBS, ACT).act(np.zeros((1, 3)))


@pytest.mark.parametrize("name", ["cmbpo", "mbpo", "vagram", "sac", "pessimistic", "cem"])
@pytest.mark.parametrize(
    "observation_space, action_space",
    [(OBS, spaces.Discrete(3)), (spaces.Box(0, 1, (4, 4, 3), np.float32), ACT)],
    ids=["discrete_actions", "image_observations"],
)
def test_vector_agents_refuse_other_spaces_in_one_line(name, observation_space, action_space):
    with pytest.raises(ConfigError, match=r"needs a Box action space and flat \(vector\)") as info:
        make_agent(name, observation_space, action_space)
    assert "\n" not in str(info.value)
