"""Known termination of gymnasium's MuJoCo tasks (``gym_<Robot>-v4``/``-v5``)
for model-based agents, as mbrl-lib's ``termination_fns`` give MBPO.

The reward (and the cost, which these tasks do not have) is left to be
learned; termination follows ``envs.termination``, with healthy ranges read
from one instance of the installed environment (made once per task and
cached). Robots without a known function (InvertedDoublePendulum: its end
depends on a site's height, not in the observation) get None: the model
learns their termination.
"""

from __future__ import annotations

import functools
import re

from saferl_tf.envs.registry import TaskFunctions
from saferl_tf.envs.termination import ROBOTS, read_healthy, termination

_MUJOCO_TASK = re.compile(r"^(?P<robot>[A-Za-z0-9]+?)-v(?P<version>[45])$")


def robot(name: str) -> str | None:
    """'Hopper-v4' -> 'Hopper'; None for a task without known functions."""
    match = _MUJOCO_TASK.match(name)
    return match["robot"] if match and match["robot"] in ROBOTS else None


@functools.cache
def task_functions(name: str) -> TaskFunctions | None:
    """Termination of gymnasium task ``name`` (reward and cost learned: None);
    None for tasks this module does not know."""
    which = robot(name)
    if which is None:
        return None
    import gymnasium

    env = gymnasium.make(name)
    try:
        inner = env.unwrapped
        healthy = read_healthy(inner, name)
        terminal = termination(which, healthy, int(inner.model.nq), int(inner.model.nv))
    finally:
        env.close()
    return TaskFunctions(reward=None, cost=None, terminal=terminal)
