"""Agents for tests, registered on import (``--imports=tests/fake_agents.py``)."""

from __future__ import annotations

import dataclasses
import math

from saferl_tf.agents import AgentConfig, RandomAgent, register_agent


@register_agent("test_flaky")
class FlakyAgent(RandomAgent):
    """A random agent whose reported loss turns NaN after 20 steps when ``diverge > 0.5``."""

    @dataclasses.dataclass
    class Config(AgentConfig):
        diverge: float = 0.0

    def _update(self):
        return {"loss": math.nan if self.config.diverge > 0.5 and self.num_steps > 20 else 1.0}
