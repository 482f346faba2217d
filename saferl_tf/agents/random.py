"""RandomAgent: uniformly random actions; the baseline and a smoke-test agent."""

from __future__ import annotations

from gymnasium import spaces

from saferl_tf.agents.base import Agent, register_agent


@register_agent("random")
class RandomAgent(Agent):
    """Samples actions uniformly from the action space and never trains.

    It has no deterministic policy, so evaluation (``explore=False``) also acts
    at random. Its replay still records everything it sees, which makes it a
    data collector for offline experiments.
    """

    def _act(self, observation, explore, is_first):
        batch = observation.shape[0]
        space = self.action_space
        if isinstance(space, spaces.Box):
            unit = self.rng.random((batch, *space.shape))
            return (space.low + unit * (space.high - space.low)).astype(space.dtype)
        if isinstance(space, spaces.Discrete):
            return self.rng.integers(space.start, space.start + space.n, size=batch)
        if isinstance(space, spaces.MultiDiscrete):
            return self.rng.integers(0, space.nvec, size=(batch, *space.nvec.shape))
        if isinstance(space, spaces.MultiBinary):
            return self.rng.integers(0, 2, size=(batch, *space.shape))
        raise TypeError(f"RandomAgent cannot sample from {space}")
