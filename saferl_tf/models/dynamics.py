"""An ensemble dynamics model: (observation, action) -> next observation and extras.

``DynamicsEnsemble`` wraps a ``GaussianEnsemble`` whose inputs are the
concatenated observation and action and whose targets are the change of the
observation, followed by whichever of reward, cost and termination the model
learns (``learn``). Predicting the change, not the next observation, is
what PETS and MBPO do: the identity part needs no learning.

Call sequence::

    dynamics = DynamicsEnsemble(observation_size=3, action_size=1, learn=("reward",))
    report = dynamics.fit(observations, actions, next_observations, rewards=r)  # NumPy
    prediction = dynamics.step(observation [P, 3], action [P, 1], "fixed", seed)
    prediction.next_observation  # [P, 3]; prediction.reward [P] (None if not learned)
    mean_prediction, epistemic_std = dynamics.expected_step(observation, action)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from saferl_tf.errors import ConfigError
from saferl_tf.models.ensemble import FitReport, GaussianEnsemble

LEARNABLE = ("reward", "cost", "terminal")


@dataclasses.dataclass
class StepPrediction:
    """One model step for P particles; learned extras are None when not learned."""

    next_observation: tf.Tensor  # [P, O]
    reward: tf.Tensor | None = None  # [P]
    cost: tf.Tensor | None = None  # [P]
    terminal: tf.Tensor | None = None  # [P] in {0, 1}

    def with_next_observation(self, next_observation: tf.Tensor) -> StepPrediction:
        return dataclasses.replace(self, next_observation=next_observation)


def require_signals(dynamics: DynamicsEnsemble, task, user: str) -> None:
    """Raises a one-line ConfigError unless reward and cost are known or learned."""
    for name in ("reward", "cost"):
        if getattr(task, name, None) is None and name not in dynamics.learned:
            raise ConfigError(
                f"{user} needs a {name} function: a known one (task functions) "
                f"or a dynamics model that learns {name!r}"
            )


def step_signals(task, observation, action, prediction: StepPrediction):
    """Reward [P], cost [P] and terminal [P] (or None) of one predicted step:
    ``task``'s known functions where it has them, else the model's learned outputs."""
    following = prediction.next_observation
    signals = []
    for name in ("reward", "cost", "terminal"):
        function = getattr(task, name, None) if task is not None else None
        value = function(observation, action, following) if function is not None else None
        value = getattr(prediction, name) if value is None else value
        signals.append(None if value is None else tf.cast(value, tf.float32))
    return tuple(signals)


class DynamicsEnsemble:
    """Learns observation changes (and optionally reward, cost, termination).

    Args:
      observation_size, action_size: flat sizes O and A.
      learn: extras the model predicts after the observation change, any of
        'reward', 'cost', 'terminal' (termination is regressed on {0, 1} and
        read as terminal above 0.5).
      **ensemble_kwargs: passed to ``GaussianEnsemble`` (members, elites,
        hidden_units, probabilistic, ...).
    """

    def __init__(
        self,
        observation_size: int,
        action_size: int,
        learn: tuple[str, ...] = (),
        **ensemble_kwargs,
    ):
        unknown = [name for name in learn if name not in LEARNABLE]
        if unknown:
            raise ConfigError(
                f"cannot learn {', '.join(unknown)}; accepted: {', '.join(LEARNABLE)}"
            )
        self.observation_size, self.action_size = int(observation_size), int(action_size)
        self.learned = tuple(name for name in LEARNABLE if name in learn)
        self.ensemble = GaussianEnsemble(
            self.observation_size + self.action_size,
            self.observation_size + len(self.learned),
            **ensemble_kwargs,
        )

    def inputs(self, observation, action):
        return tf.concat([tf.cast(observation, tf.float32), tf.cast(action, tf.float32)], -1)

    def split(self, observation, outputs) -> StepPrediction:
        """Model outputs [P, O + extras] -> a ``StepPrediction`` from ``observation``."""
        size = self.observation_size
        extras = {name: outputs[:, size + i] for i, name in enumerate(self.learned)}
        if "terminal" in extras:
            extras["terminal"] = tf.cast(extras["terminal"] > 0.5, tf.float32)
        return StepPrediction(tf.cast(observation, tf.float32) + outputs[:, :size], **extras)

    def step(self, observation, action, mode: str, seed, sample: bool = True,
             assignment=None) -> StepPrediction:  # fmt: skip
        """One step of every particle: observation [P, O], action [P, A]; see
        ``GaussianEnsemble.propagate`` for ``mode``, ``sample`` and ``assignment``."""
        outputs = self.ensemble.propagate(self.inputs(observation, action), mode, seed, sample,
                                          assignment)  # fmt: skip
        return self.split(observation, outputs)

    def expected_step(self, observation, action, total: bool = False):
        """The elites' mean prediction and the epistemic std of the next observation.

        Returns:
          A ``StepPrediction`` of means (next observation [P, O], learned
          extras [P]) and the epistemic std [P, O] of the next observation
          (the spread of the members' means, times the calibrated scale);
          with ``total``, the std of the moment-matched Gaussian instead:
          sqrt(epistemic variance + the members' mean aleatoric variance).
        """
        prediction, std, _ = self.expected_step_with_extras(observation, action, total)
        return prediction, std

    def expected_step_with_extras(self, observation, action, total=False, repeats: int = 1):
        """``expected_step`` and the epistemic std of each learned extra
        ({'cost': [P], ...}; the calibrated spread of the members' means).

        ``total`` may also be a [P·repeats] 0/1 tensor choosing per row
        between the epistemic and the total std. ``repeats`` > 1: the model
        runs once per row of observation [P, O] and action [P, A], and every
        result is repeated ``repeats`` times (rows p·repeats + r)."""
        needs_aleatoric = not (isinstance(total, bool) and not total)
        moments = self.ensemble.moments(self.inputs(observation, action), aleatoric=needs_aleatoric)
        mean, epistemic, aleatoric = (
            moments.mean,
            moments.epistemic_variance,
            moments.aleatoric_variance,
        )
        if repeats > 1:
            observation = tf.repeat(tf.cast(observation, tf.float32), repeats, axis=0)
            mean, epistemic = tf.repeat(mean, repeats, 0), tf.repeat(epistemic, repeats, 0)
            aleatoric = None if aleatoric is None else tf.repeat(aleatoric, repeats, 0)
        size = self.observation_size
        variance = epistemic[:, :size]
        if needs_aleatoric:
            weight = 1.0 if isinstance(total, bool) else tf.cast(total, tf.float32)[:, None]
            variance += weight * aleatoric[:, :size]
        extras = {name: tf.sqrt(epistemic[:, size + i])
                  for i, name in enumerate(self.learned)}  # fmt: skip
        return self.split(observation, mean), tf.sqrt(variance), extras

    def fit(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        next_observations: np.ndarray,
        *,
        rewards: np.ndarray | None = None,
        costs: np.ndarray | None = None,
        terminals: np.ndarray | None = None,
        **fit_kwargs,
    ) -> FitReport:
        """Fits the ensemble to transitions (NumPy, leading axis N)."""
        given = {"reward": rewards, "cost": costs, "terminal": terminals}
        missing = [name for name in self.learned if given[name] is None]
        if missing:
            raise ValueError(f"the model learns {', '.join(missing)}; pass them to fit")
        observations = np.asarray(observations, np.float32).reshape(len(observations), -1)
        next_observations = np.asarray(next_observations, np.float32).reshape(len(observations), -1)
        actions = np.asarray(actions, np.float32).reshape(len(observations), -1)
        targets = [next_observations - observations]
        targets += [np.asarray(given[name], np.float32).reshape(-1, 1) for name in self.learned]
        inputs = np.concatenate([observations, actions], -1)
        return self.ensemble.fit(inputs, np.concatenate(targets, -1), **fit_kwargs)
