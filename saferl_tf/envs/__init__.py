"""Environments: ``make(env_id, ...)`` for one, ``make_vector(...)`` for several.

See ``registry`` for the accepted ids and ``wrappers`` for the step API.
"""

from __future__ import annotations

from saferl_tf.envs.make import OBSERVATION_KINDS, make
from saferl_tf.envs.registry import (
    EnvSpec,
    TaskFunctions,
    default_total_steps,
    episode_steps,
    known_ids,
    parse_env_id,
    register_env,
    safexp_to_safety_gymnasium,
    task_functions,
)
from saferl_tf.envs.vector import ParallelEnvs, SerialEnvs, VectorEnv, VectorStep, make_vector
from saferl_tf.envs.wrappers import SafeEnv

__all__ = [
    "OBSERVATION_KINDS",
    "EnvSpec",
    "ParallelEnvs",
    "SafeEnv",
    "SerialEnvs",
    "TaskFunctions",
    "VectorEnv",
    "VectorStep",
    "default_total_steps",
    "episode_steps",
    "known_ids",
    "make",
    "make_vector",
    "parse_env_id",
    "register_env",
    "safexp_to_safety_gymnasium",
    "task_functions",
]
