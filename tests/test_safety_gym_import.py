import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from saferl_tf.envs.safety_gym import array_defaults_allowed, import_safety_gymnasium


def test_array_defaults_become_per_instance_copies_inside_the_context():
    with array_defaults_allowed():

        @dataclasses.dataclass
        class Geom:
            color: np.ndarray = np.array([1.0, 0.0, 0.0])
            size: float = 0.1
            extents: np.ndarray = dataclasses.field(default=np.zeros(2))

    first, second = Geom(), Geom()
    np.testing.assert_array_equal(first.color, [1.0, 0.0, 0.0])
    first.color[0] = 5.0
    first.extents[1] = 3.0
    assert second.color[0] == 1.0 and second.extents[1] == 0.0
    assert Geom(color=np.ones(3)).color.sum() == 3.0


def test_global_behaviour_is_unchanged_after_the_context():
    original = dataclasses.dataclass
    with array_defaults_allowed():
        assert dataclasses.dataclass is not original
    assert dataclasses.dataclass is original
    with pytest.raises(ValueError, match="mutable default"):

        @dataclasses.dataclass
        class Bad:
            color: np.ndarray = np.zeros(3)


def test_context_restores_dataclass_when_the_import_fails():
    original = dataclasses.dataclass
    with pytest.raises(RuntimeError), array_defaults_allowed():
        raise RuntimeError("import failed")
    assert dataclasses.dataclass is original


def test_safety_gymnasium_imports_and_a_task_steps():
    safety_gymnasium = import_safety_gymnasium()
    assert dataclasses.dataclass.__module__ == "dataclasses"
    env = safety_gymnasium.make("SafetyPointGoal1-v0")
    observation, _ = env.reset(seed=0)
    result = env.step(env.action_space.sample())
    assert len(result) == 6 and result[0].shape == observation.shape
    env.close()


def test_plain_import_fails_on_this_python_so_the_fix_is_needed():
    # Guards the premise: if safety-gymnasium ever imports on its own, the fix can go.
    result = subprocess.run(
        [sys.executable, "-c", "import safety_gymnasium"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "mutable default" in result.stderr
