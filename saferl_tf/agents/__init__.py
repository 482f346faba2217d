"""Agents and their registry. Importing this package registers the built-in agents."""

from saferl_tf.agents.base import (
    Agent,
    Transition,
    agent_class,
    make_agent,
    register_agent,
    registered_agents,
)
from saferl_tf.agents.cmbpo import CMBPOAgent, CPOAgent, TRPOAgent
from saferl_tf.agents.lambda_ import LambdaAgent
from saferl_tf.agents.mbpo import MBPOAgent, SACAgent, VaGraMAgent
from saferl_tf.agents.pessimistic import (
    CostPenaltyCEMAgent,
    FixedEtaAgent,
    OptimisticPessimisticAgent,
    PessimisticAgent,
    PlanningAgent,
)
from saferl_tf.agents.random import RandomAgent
from saferl_tf.config import AgentConfig

__all__ = [
    "Agent",
    "AgentConfig",
    "CMBPOAgent",
    "CPOAgent",
    "CostPenaltyCEMAgent",
    "FixedEtaAgent",
    "LambdaAgent",
    "MBPOAgent",
    "OptimisticPessimisticAgent",
    "PessimisticAgent",
    "PlanningAgent",
    "RandomAgent",
    "SACAgent",
    "TRPOAgent",
    "VaGraMAgent",
    "Transition",
    "agent_class",
    "make_agent",
    "register_agent",
    "registered_agents",
]
