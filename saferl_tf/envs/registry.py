"""Environment ids: ``sgym_<id>``, ``gym_<id>`` and ``saferl_<id>``.

- ``sgym_<id>``: a safety-gymnasium task. The seeds' safety-gym names
  ``Safexp-<Robot><Task><Level>-v0`` map to safety-gymnasium's
  ``Safety<Robot><Task><Level>-v0``; safety-gymnasium names pass through.
- ``gym_<id>``: any environment in gymnasium's registry (cost is 0).
- ``saferl_<id>``: the package's own environments, registered with
  ``register_env``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from saferl_tf.errors import UnknownNameError, did_you_mean

PREFIXES = ("sgym_", "gym_", "saferl_")

ROBOTS = ("Point", "Car", "Doggo", "Racecar", "Ant")
TASKS = ("Goal", "Button", "Push", "Circle")
LEVELS = (0, 1, 2)

_SAFEXP = re.compile(r"^Safexp-(?P<robot>[A-Z][a-z]+)(?P<task>[A-Z][a-z]+)(?P<level>\d)-v0$")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """A parsed environment id.

    Attributes:
      family: 'sgym', 'gym' or 'saferl'.
      name: the id inside that family (the safety-gymnasium name for 'sgym').
      env_id: the id as the user gave it.
    """

    family: str
    name: str
    env_id: str


@dataclasses.dataclass(frozen=True)
class TaskFunctions:
    """An environment's reward, cost and termination as TensorFlow functions.

    Planning agents that assume these are known (rather than learned) call
    them on batches of the observations and [-1, 1] actions the agent sees::

        reward(observation [..., O], action [..., A], next_observation [..., O]) -> [...]

    and the same for ``cost`` and ``terminal`` (1.0 where the episode ends).
    They describe one environment step, so they hold for ``action_repeat`` 1.
    A None ``reward`` or ``cost`` is not known (a model must learn it); a None
    ``terminal``: no termination is known (tasks that never terminate have None).

    ``observation_wrapper``: where the functions need more than the
    environment's own observation (for example a velocity-constrained task's
    step velocity), the wrapper (``SafeEnv -> SafeEnv``) that appends it; the
    functions then hold for observations of the wrapped environment, which
    ``make(env_id, task_observation=True)`` makes. None: the plain observation.
    """

    reward: Callable[[Any, Any, Any], Any] | None
    cost: Callable[[Any, Any, Any], Any] | None
    terminal: Callable[[Any, Any, Any], Any] | None = None
    observation_wrapper: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class _OwnEnv:
    factory: Callable[..., Any]
    max_episode_steps: int | None
    task_functions: TaskFunctions | None = None
    total_steps: int | None = None


# The training budget of tasks that name none: the seeds' 1M environment steps.
DEFAULT_TOTAL_STEPS = 1_000_000

_OWN_ENVS: dict[str, _OwnEnv] = {}


def register_env(
    name: str,
    factory: Callable[..., Any],
    max_episode_steps: int | None = None,
    task_functions: TaskFunctions | None = None,
    total_steps: int | None = None,
) -> None:
    """Registers a package environment so that ``saferl_<name>`` makes it.

    Args:
      name: the id without the prefix, for example 'ConstrainedPendulum-v0'.
      factory: called with keyword arguments (``render_mode`` among them) and
        returning a gymnasium.Env whose ``info['cost']`` holds the step cost.
      max_episode_steps: the default episode length in environment steps.
      task_functions: the reward, cost and termination as TensorFlow
        functions, for agents that plan with known task functions.
      total_steps: the default training budget in environment steps, for
        tasks learned in far fewer than ``DEFAULT_TOTAL_STEPS``.
    """
    _OWN_ENVS[name] = _OwnEnv(factory, max_episode_steps, task_functions, total_steps)


def own_env(name: str) -> _OwnEnv:
    return _OWN_ENVS[name]


def task_functions(env_id: str) -> TaskFunctions | None:
    """The known reward/cost/termination functions of ``env_id``; None if it has none.

    ``saferl_`` tasks have those they registered; safety-gymnasium's velocity
    tasks (``sgym_Safety<Robot>Velocity-v<n>``) have the functions of
    ``envs.velocity``, which need its observation wrapper; gymnasium's MuJoCo
    robots (``gym_Hopper-v4``, ...) have their termination (``envs.gym_tasks``).
    """
    spec = parse_env_id(env_id)
    if spec.family == "sgym":
        from saferl_tf.envs import velocity

        return velocity.task_functions(spec.name)
    if spec.family == "gym":
        from saferl_tf.envs import gym_tasks

        return gym_tasks.task_functions(spec.name)
    if spec.family != "saferl":
        return None
    return own_env(spec.name).task_functions


def default_total_steps(env_id: str) -> int:
    """The training budget runs on ``env_id`` get unless they name one."""
    spec = parse_env_id(env_id)
    budget = own_env(spec.name).total_steps if spec.family == "saferl" else None
    return DEFAULT_TOTAL_STEPS if budget is None else budget


def episode_steps(env_id: str, episode_length: int | None = None) -> int | None:
    """The environment steps of one episode of ``env_id`` (its time limit):
    ``episode_length`` when given (``--episode_length``), else the task's own
    limit; None for a task without one. Reads registries only; makes nothing."""
    if episode_length:
        return episode_length
    spec = parse_env_id(env_id)
    try:
        if spec.family == "saferl":
            return own_env(spec.name).max_episode_steps
        if spec.family == "gym":
            import gymnasium

            return gymnasium.spec(spec.name).max_episode_steps
        from saferl_tf.envs.safety_gym import import_safety_gymnasium

        import_safety_gymnasium()
        from safety_gymnasium.utils import registration

        return registration.spec(spec.name).max_episode_steps
    except Exception:  # An unknown or unregistered id: make() reports it properly.
        return None


def safexp_to_safety_gymnasium(name: str) -> str:
    """'Safexp-PointGoal2-v0' -> 'SafetyPointGoal2-v0'; other names unchanged."""
    match = _SAFEXP.match(name)
    if not match:
        return name
    return f"Safety{match['robot']}{match['task']}{match['level']}-v0"


def safety_gymnasium_ids() -> list[str]:
    """Every registered safety-gymnasium id (imports safety-gymnasium)."""
    from saferl_tf.envs.safety_gym import import_safety_gymnasium

    import_safety_gymnasium()
    from safety_gymnasium.utils.registration import safe_registry

    return sorted(safe_registry)


def gymnasium_ids() -> list[str]:
    import gymnasium

    return sorted(gymnasium.registry)


def own_ids() -> list[str]:
    import saferl_tf.envs.own  # noqa: F401  (registers the package's environments)

    return sorted(_OWN_ENVS)


def known_ids() -> list[str]:
    """Every accepted id, with its prefix."""
    ids = [f"sgym_{name}" for name in safety_gymnasium_ids()]
    ids += [f"sgym_Safexp-{r}{t}{lv}-v0" for r in ROBOTS for t in TASKS for lv in LEVELS]
    ids += [f"gym_{name}" for name in gymnasium_ids() if not name.startswith("Safety")]
    ids += [f"saferl_{name}" for name in own_ids()]
    return ids


def parse_env_id(env_id: str) -> EnvSpec:
    """Resolves ``env_id`` to a registered environment or raises UnknownNameError.

    The error is one line: the id, close matches among all known ids and the
    accepted prefixes.
    """
    family, _, name = env_id.partition("_")
    if f"{family}_" in PREFIXES and name:
        if family == "sgym":
            name = safexp_to_safety_gymnasium(name)
            registered = safety_gymnasium_ids()
        elif family == "gym":
            registered = gymnasium_ids()
        else:
            registered = own_ids()
        if name in registered:
            return EnvSpec(family, name, env_id)
    raise UnknownNameError(
        f"unknown environment id {env_id!r}{did_you_mean(env_id, known_ids())}; "
        f"accepted: an id with a prefix {', '.join(PREFIXES)} "
        "(sgym_: safety-gymnasium or safety-gym 'Safexp-' names, gym_: gymnasium, "
        "saferl_: this package's own)"
    )
