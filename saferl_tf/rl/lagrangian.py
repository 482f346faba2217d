"""Penalties for one inequality constraint g <= 0 in a policy's loss.

Two multiplier rules share one interface, ``ConstraintPenalty``, so an agent
(LAMBDA's, or a SAC-Lagrangian one) takes either; ``make_penalty(kind,
**settings)`` builds one by name ("augmented_lagrangian" or "pid"). Both live in
this one module because the interface, the two small rules and the factory that
names them are read together, and one module needs no import cycle between the
base class and the factory.

The call sequence, once per policy update; every argument and result is a
scalar (shape ``[]``) float tensor::

    penalty = make_penalty("pid", kp=0.05, ki=1e-3)   # or AugmentedLagrangian()
    with tf.GradientTape() as tape:
        g = tf.reduce_mean(cost_values) - cost_limit  # carries the actor's gradient
        loss = actor_loss + penalty(g)                # the multiplier is a constant here
    ...apply the actor's gradients...
    penalty.update(g)                                 # the multiplier step, on g's value
    logs = penalty.metrics()                          # {"multiplier": [], ...}

``penalty(g)`` uses the multiplier from before this step's ``update``; the
gradient reaches the policy through ``g`` only (the state is never trained).
All state is in non-trainable ``tf.Variable``s: it is in any
``tf.train.Checkpoint`` that holds the penalty, and a ``tf.function`` (XLA
included) that calls ``update`` traces once and keeps working across calls.

**Augmented Lagrangian** (LAMBDA's; Nocedal and Wright, eq. 17.65), multiplier
lambda and penalty c, both from before the step::

    psi(g) = lambda g + (c / 2) g^2     if lambda + c g > 0
             -lambda^2 / (2 c)          otherwise
    lambda <- relu(lambda + c g)
    c      <- clip(c (1 + growth), c, c_max)          # non-decreasing, at most c_max (1)

as in the published LAMBDA code (``SafetyCritic.penalize``, la_mbda/models.py).

**PID Lagrangian** (Stooke, Achiam and Abbeel, ICML 2020, Algorithm 2, with the
smoothing of their code as OmniSafe's ``PIDLagrangian.pid_update`` and
SafeDreamer's have it). On each ``update(g)``, e = g::

    I  <- max(0, I + K_i e)                       then I <- min(I, max_integral) if set
    P  <- a_p P + (1 - a_p) e                     EMA of the error
    S  <- a_d S + (1 - a_d) e                     EMA for the derivative
    D   = max(0, S - S_{k - d_delay})             rises only; S_j = 0 for j <= 0
    lambda = max(0, K_p P + I + K_d D)            then lambda <- min(lambda, max_multiplier) if set

and the loss term is ``stop_gradient(lambda) * g``. OmniSafe feeds J_c and
subtracts the limit for e; here ``update`` takes g = J_c - d, which is OmniSafe's
update with ``ep_cost_avg = g, cost_limit = 0``: P, I and the differences in D
are the same, only the zero-initialised derivative EMA and history start from g
instead of J_c. a_p = a_d = 0 and d_delay = 1 give Algorithm 2 itself (with K_i
inside the integral, equivalent for K_i > 0). OmniSafe's flags map as:
``sum_norm=True`` (its and SafeDreamer's default) is no bound on lambda;
``diff_norm=True`` is ``max_integral=max_multiplier=1``; neither is
``max_multiplier=penalty_max``. Their other half, dividing the whole actor loss
by (1 + lambda) (sum_norm) or weighting it by (1 - lambda) (diff_norm), is the
agent's choice and not part of the additive term returned here.
"""

from __future__ import annotations

import inspect
import math

import tensorflow as tf

from saferl_tf.errors import ConfigError, did_you_mean


def discounted_cost_limit(cost_limit: float, episode_length: int, action_repeat: int,
                          cost_discount: float) -> float:  # fmt: skip
    """A per-episode budget as a cost value: the discounted sum of spending
    ``cost_limit`` per ``episode_length`` environment steps evenly forever, each
    agent step summing its ``action_repeat`` environment steps."""
    per_agent_step = cost_limit / episode_length * action_repeat
    return per_agent_step / (1.0 - cost_discount)


class ConstraintPenalty(tf.Module):
    """A loss term for a scalar constraint g <= 0 and its multiplier's update.

    Subclasses keep their state in non-trainable ``tf.Variable``s and define:

    * ``__call__(g) -> []``: the term added to the loss; differentiable in ``g``,
      the state a constant (``tf.stop_gradient``).
    * ``update(g) -> None``: one multiplier step on ``g``'s value (no gradient).
    * ``multiplier``: the current multiplier, a scalar ``tf.Variable``.
    * ``metrics() -> dict[str, []]``: the state to log, "multiplier" first.

    See the module's docstring for the call sequence.
    """

    multiplier: tf.Variable

    def __call__(self, constraint) -> tf.Tensor:
        raise NotImplementedError

    def update(self, constraint) -> None:
        raise NotImplementedError

    def metrics(self) -> dict[str, tf.Tensor]:
        raise NotImplementedError


def _state(value: float, name: str) -> tf.Variable:
    return tf.Variable(value, dtype=tf.float32, trainable=False, name=name)


def _scalar(constraint) -> tf.Tensor:
    return tf.cast(constraint, tf.float32)


class AugmentedLagrangian(ConstraintPenalty):
    """LAMBDA's augmented Lagrangian (module docstring); defaults are LAMBDA's."""

    def __init__(self, initial_multiplier: float = 1e-6, initial_penalty: float = 5e-9,
                 penalty_growth: float = 1e-5, max_penalty: float = 1.0,
                 name: str = "augmented_lagrangian"):  # fmt: skip
        super().__init__(name=name)
        for key, value in (("initial_multiplier", initial_multiplier),
                           ("penalty_growth", penalty_growth)):  # fmt: skip
            _require(_finite(value) and value >= 0, f"{key} must be >= 0, got {value}")
        _require(_finite(initial_penalty) and initial_penalty > 0,
                 f"initial_penalty must be > 0, got {initial_penalty}")  # fmt: skip
        _require(
            _finite(max_penalty) and max_penalty >= initial_penalty,
            f"max_penalty ({max_penalty}) must be >= initial_penalty ({initial_penalty})",
        )
        self.multiplier = _state(initial_multiplier, "lagrange_multiplier")
        self.penalty = _state(initial_penalty, "penalty")
        self.penalty_growth = float(penalty_growth)
        self.max_penalty = float(max_penalty)

    def __call__(self, constraint):
        """psi(g) with the current lambda and c (constants); gradient through g."""
        constraint = _scalar(constraint)
        multiplier, penalty = tf.stop_gradient(self.multiplier), tf.stop_gradient(self.penalty)
        active = multiplier + penalty * constraint > 0
        return tf.where(active, multiplier * constraint + 0.5 * penalty * constraint**2,
                        -(multiplier**2) / (2.0 * penalty))  # fmt: skip

    def update(self, constraint) -> None:
        constraint = tf.stop_gradient(_scalar(constraint))
        multiplier, penalty = tf.identity(self.multiplier), tf.identity(self.penalty)
        self.multiplier.assign(tf.nn.relu(multiplier + penalty * constraint))
        self.penalty.assign(
            tf.clip_by_value(penalty * (1.0 + self.penalty_growth), penalty, self.max_penalty)
        )

    def metrics(self) -> dict[str, tf.Tensor]:
        return {"multiplier": tf.identity(self.multiplier), "penalty": tf.identity(self.penalty)}


class PIDLagrangian(ConstraintPenalty):
    """The PID Lagrangian (module docstring): the loss term is lambda * g.

    The defaults are for LAMBDA's scale, one update per behaviour update (100 per
    1,000 environment steps) on g in discounted cost units (limit about 10): with
    g about the limit, K_i = 1e-3 adds about 1 to lambda per episode of violation
    and K_p = 0.05 answers at once with about 0.5; D (over 10 updates) damps rises.
    ``initial_multiplier`` is I's start and lambda's until the first update.
    """

    def __init__(self, kp: float = 0.05, ki: float = 1e-3, kd: float = 0.01,
                 d_delay: int = 10, delta_p_ema_alpha: float = 0.95,
                 delta_d_ema_alpha: float = 0.95, initial_multiplier: float = 1e-3,
                 max_multiplier: float | None = None, max_integral: float | None = None,
                 name: str = "pid_lagrangian"):  # fmt: skip
        super().__init__(name=name)
        for key, value in (("kp", kp), ("ki", ki), ("kd", kd)):
            _require(_finite(value) and value >= 0, f"PID gain {key} must be >= 0, got {value}")
        _require(isinstance(d_delay, int) and not isinstance(d_delay, bool) and d_delay >= 1,
                 f"d_delay must be an integer >= 1, got {d_delay!r}")  # fmt: skip
        for key, value in (("delta_p_ema_alpha", delta_p_ema_alpha),
                           ("delta_d_ema_alpha", delta_d_ema_alpha)):  # fmt: skip
            _require(_finite(value) and 0 <= value < 1, f"{key} must be in [0, 1), got {value}")
        for key, value in (("max_multiplier", max_multiplier), ("max_integral", max_integral)):
            _require(value is None or (_finite(value) and value > 0),
                     f"{key} must be > 0 or None, got {value}")  # fmt: skip
        bound = min(b for b in (max_multiplier, max_integral, math.inf) if b is not None)
        _require(
            _finite(initial_multiplier) and 0 <= initial_multiplier <= bound,
            f"initial_multiplier must be in [0, {bound}], got {initial_multiplier}",
        )
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.d_delay = d_delay
        self.delta_p_ema_alpha = float(delta_p_ema_alpha)
        self.delta_d_ema_alpha = float(delta_d_ema_alpha)
        self.max_multiplier = max_multiplier
        self.max_integral = max_integral
        self.multiplier = _state(initial_multiplier, "lagrange_multiplier")
        self.integral = _state(initial_multiplier, "integral")
        self.proportional = _state(0.0, "proportional")  # P, the EMA of the error.
        self.smoothed = _state(0.0, "smoothed")  # S, the EMA whose rises make D.
        self.derivative = _state(0.0, "derivative")  # D of the last update.
        # S of the last d_delay updates, oldest first (S_{k - d_delay}, ..., S_{k - 1}).
        self.history = tf.Variable(tf.zeros([d_delay]), trainable=False, name="history")

    def __call__(self, constraint):
        """lambda * g with the current lambda (a constant); gradient lambda through g."""
        return tf.stop_gradient(self.multiplier) * _scalar(constraint)

    def update(self, constraint) -> None:
        error = tf.stop_gradient(_scalar(constraint))
        integral = tf.nn.relu(self.integral + self.ki * error)
        if self.max_integral is not None:
            integral = tf.minimum(integral, self.max_integral)
        a_p, a_d = self.delta_p_ema_alpha, self.delta_d_ema_alpha
        proportional = a_p * self.proportional + (1.0 - a_p) * error
        smoothed = a_d * self.smoothed + (1.0 - a_d) * error
        history = tf.identity(self.history)
        derivative = tf.nn.relu(smoothed - history[0])
        multiplier = tf.nn.relu(self.kp * proportional + integral + self.kd * derivative)
        if self.max_multiplier is not None:
            multiplier = tf.minimum(multiplier, self.max_multiplier)
        self.integral.assign(integral)
        self.proportional.assign(proportional)
        self.smoothed.assign(smoothed)
        self.derivative.assign(derivative)
        self.history.assign(tf.concat([history[1:], smoothed[None]], 0))
        self.multiplier.assign(multiplier)

    def metrics(self) -> dict[str, tf.Tensor]:
        return {
            "multiplier": tf.identity(self.multiplier),
            "integral": tf.identity(self.integral),
            "proportional": tf.identity(self.proportional),
            "derivative": tf.identity(self.derivative),
        }


PENALTIES: dict[str, type[ConstraintPenalty]] = {
    "augmented_lagrangian": AugmentedLagrangian,
    "pid": PIDLagrangian,
}


def make_penalty(kind: str, **settings) -> ConstraintPenalty:
    """A penalty by name ("augmented_lagrangian" or "pid") with its settings.

    Raises ``ConfigError`` (one line) for an unknown kind or setting, or a bad value.
    """
    if kind not in PENALTIES:
        raise ConfigError(f"unknown constraint penalty {kind!r}{did_you_mean(kind, PENALTIES)}; "
                          f"accepted: {', '.join(PENALTIES)}")  # fmt: skip
    accepted = [key for key in inspect.signature(PENALTIES[kind]).parameters if key != "name"]
    for key in settings:
        if key not in accepted:
            raise ConfigError(
                f"unknown setting {key!r} for the {kind} penalty"
                f"{did_you_mean(key, accepted)}; accepted: {', '.join(accepted)}"
            )
    return PENALTIES[kind](**settings)


def penalty_from_config(config) -> ConstraintPenalty:
    """The penalty an agent config names: ``config.penalty`` with the config's
    ``initial_multiplier`` and either ``initial_penalty`` and ``penalty_growth``
    (augmented Lagrangian) or ``pid_kp``, ``pid_ki`` and ``pid_kd`` (PID); the
    fields every agent with a Lagrangian constraint shares."""
    if config.penalty == "pid":
        return make_penalty("pid", kp=config.pid_kp, ki=config.pid_ki, kd=config.pid_kd,
                            initial_multiplier=config.initial_multiplier)  # fmt: skip
    return make_penalty(config.penalty, initial_multiplier=config.initial_multiplier,
                        initial_penalty=config.initial_penalty,
                        penalty_growth=config.penalty_growth)  # fmt: skip


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
