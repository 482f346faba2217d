import pytest

from saferl_tf import envs
from saferl_tf.envs.registry import LEVELS, ROBOTS, TASKS, safety_gymnasium_ids
from saferl_tf.errors import UnknownNameError


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("level", LEVELS)
def test_every_safexp_name_maps_to_a_registered_safety_gymnasium_task(robot, task, level):
    old = f"Safexp-{robot}{task}{level}-v0"
    new = f"Safety{robot}{task}{level}-v0"
    assert envs.safexp_to_safety_gymnasium(old) == new
    assert new in safety_gymnasium_ids()
    spec = envs.parse_env_id(f"sgym_{old}")
    assert (spec.family, spec.name) == ("sgym", new)


def test_safety_gymnasium_names_pass_through():
    assert envs.safexp_to_safety_gymnasium("SafetyCarGoal1-v0") == "SafetyCarGoal1-v0"
    spec = envs.parse_env_id("sgym_SafetyHopperVelocity-v1")
    assert (spec.family, spec.name) == ("sgym", "SafetyHopperVelocity-v1")


def test_gym_and_own_ids():
    assert envs.parse_env_id("gym_CartPole-v1").name == "CartPole-v1"
    assert envs.parse_env_id("saferl_TestCounting-v0").family == "saferl"


@pytest.mark.parametrize(
    "bad, suggestion",
    [
        ("sgym_Safexp-PointGoal3-v0", "sgym_Safexp-PointGoal2-v0"),
        ("gym_CartPol-v1", "gym_CartPole-v1"),
        ("sgym_SafetyPointGoal2-v1", "sgym_SafetyPointGoal2-v0"),
        ("Safexp-PointGoal2-v0", "sgym_Safexp-PointGoal2-v0"),
    ],
)
def test_unknown_id_error_is_one_line_with_close_matches_and_prefixes(bad, suggestion):
    with pytest.raises(UnknownNameError) as error:
        envs.parse_env_id(bad)
    message = str(error.value)
    assert "\n" not in message
    assert repr(bad) in message
    assert suggestion in message
    for prefix in ("sgym_", "gym_", "saferl_"):
        assert prefix in message


def test_unknown_own_env():
    with pytest.raises(UnknownNameError, match="saferl_TestCounting-v0"):
        envs.parse_env_id("saferl_TestCountin-v0")
