"""``make``: one environment with the package's step API and options."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium

from saferl_tf.envs import registry, rendering, wrappers
from saferl_tf.errors import ConfigError

OBSERVATION_KINDS = ("vector", "pixels")
PIXEL_SIZE = 64


def make(
    env_id: str,
    *,
    action_repeat: int = 1,
    episode_length: int | None = None,
    observation: str = "vector",
    seed: int | None = None,
    normalize_actions: bool = True,
    task_observation: bool = False,
    distraction_dimensions: int = 0,
    distraction_seed: int = 0,
    render: bool = False,
    episode_seeds: Sequence[int] | None = None,
) -> wrappers.SafeEnv:
    """Makes an environment.

    Args:
      env_id: 'sgym_<id>', 'gym_<id>' or 'saferl_<id>' (see ``registry``).
      action_repeat: each action is applied this many times; reward and cost
        are summed over the repeats.
      episode_length: episode length in environment steps (before action
        repeat); None keeps the environment's own.
      observation: 'vector' (the flat observation, float32) or 'pixels'
        (64x64x3 uint8 frames; safety-gymnasium renders its robot camera;
        headless rendering uses EGL, see ``rendering``).
      seed: seeds the first ``reset()``; later resets continue its stream.
      episode_seeds: instead of ``seed``, one seed for each of the first
        ``len(episode_seeds)`` resets in turn (later resets continue the
        stream), so that episode k is the same however episodes are spread
        over environments.
      normalize_actions: expose a bounded Box action space as [-1, 1].
      task_observation: apply the observation wrapper that the task's known
        functions need (``registry.task_functions(env_id).observation_wrapper``,
        for example the step velocity that safety-gymnasium's velocity tasks
        append); unchanged where the task has no such wrapper. Vector
        observations only.
      distraction_dimensions: append this many distractor dimensions
        (``distraction.Distraction``); their dynamics are drawn from
        ``distraction_seed``, so environments made with the same one share them.
      render: make the environment's ``render()`` return frames, which
        ``watch.watch_camera`` needs for tasks that are not MuJoCo ones (MuJoCo
        tasks get a renderer of their own and need nothing here).

    Returns:
      A ``SafeEnv``: ``step`` returns (observation, reward, cost, terminated,
      truncated, info).
    """
    if observation not in OBSERVATION_KINDS:
        raise ConfigError(
            f"unknown observation kind {observation!r}; accepted: {', '.join(OBSERVATION_KINDS)}"
        )
    if action_repeat < 1:
        raise ConfigError(f"action_repeat must be a positive integer, got {action_repeat}")
    if episode_length is not None and episode_length < 1:
        raise ConfigError(f"episode_length must be a positive integer, got {episode_length}")
    spec = registry.parse_env_id(env_id)
    pixels = observation == "pixels"
    if task_observation and pixels:
        raise ConfigError("task_observation needs observation='vector', not 'pixels'")
    if distraction_dimensions < 0:
        raise ConfigError(f"distraction_dimensions must be >= 0, got {distraction_dimensions}")
    if distraction_dimensions and pixels:
        raise ConfigError("distraction_dimensions needs observation='vector', not 'pixels'")
    if pixels:
        rendering.prepare_headless_rendering()
    render_kwargs = {"render_mode": "rgb_array"} if pixels or render else {}
    if spec.family == "sgym":
        env = _make_safety_gymnasium(spec.name, episode_length, pixels)
    elif spec.family == "gym":
        env = _make_gymnasium(spec.name, episode_length, pixels)
    else:
        own = registry.own_env(spec.name)
        inner = own.factory(**render_kwargs)
        length = episode_length or own.max_episode_steps
        if length:
            inner = wrappers.time_limit(inner, length)
        env = wrappers.GymnasiumEnv(inner, returns_cost=False)
    if distraction_dimensions:
        from saferl_tf.envs.distraction import Distraction

        env = Distraction(env, distraction_dimensions, parameter_seed=distraction_seed,
                          state_seed=seed)  # fmt: skip
    # The task observation's entries come last, after any distractors: the
    # task functions read them from the end (a velocity task's cost, [..., -1]).
    if task_observation:
        functions = registry.task_functions(env_id)
        if functions is not None and functions.observation_wrapper is not None:
            env = functions.observation_wrapper(env)
    if pixels:
        env = wrappers.PixelObservation(env, PIXEL_SIZE)
    if normalize_actions and wrappers.NormalizeActions.needed(env.action_space):
        env = wrappers.NormalizeActions(env)
    if action_repeat > 1:
        env = wrappers.ActionRepeat(env, action_repeat)
    if episode_seeds is not None:
        if seed is not None:
            raise ConfigError("give seed or episode_seeds, not both")
        env = _SeedResets(env, list(episode_seeds))
    elif seed is not None:
        env = _SeedResets(env, [seed])
    return env


def _make_safety_gymnasium(name: str, episode_length: int | None, pixels: bool):
    from saferl_tf.envs.safety_gym import import_safety_gymnasium

    safety_gymnasium = import_safety_gymnasium()
    kwargs = {}
    if episode_length:
        kwargs["max_episode_steps"] = episode_length
    if pixels:
        # The robot's own camera at the agent's resolution: rendering, not the
        # physics, bounds a pixel agent's collection, so render small.
        kwargs.update(
            render_mode="rgb_array", width=PIXEL_SIZE, height=PIXEL_SIZE, camera_name="vision"
        )
    return wrappers.GymnasiumEnv(safety_gymnasium.make(name, **kwargs), returns_cost=True)


def _make_gymnasium(name: str, episode_length: int | None, pixels: bool):
    kwargs = {}
    if episode_length:
        kwargs["max_episode_steps"] = episode_length
    if pixels:
        kwargs["render_mode"] = "rgb_array"
        try:  # MuJoCo tasks render at the requested size directly.
            inner = gymnasium.make(name, width=PIXEL_SIZE, height=PIXEL_SIZE, **kwargs)
        except TypeError:
            inner = gymnasium.make(name, **kwargs)
    else:
        inner = gymnasium.make(name, **kwargs)
    return wrappers.GymnasiumEnv(inner, returns_cost=False)


class _SeedResets(wrappers.Wrapper):
    """Seeds the first resets from ``seeds`` in turn (and the action space with
    the first); later resets continue the stream."""

    def __init__(self, env, seeds: list[int]):
        super().__init__(env)
        self._seeds = seeds
        if seeds:
            self.action_space.seed(seeds[0])

    def reset(self, seed=None):
        if seed is None and self._seeds:
            seed = self._seeds.pop(0)
        return self.env.reset(seed=seed)
