"""A probabilistic ensemble of MLPs, evaluated as one batched matrix product.

``GaussianEnsemble`` holds E members whose weights are stacked on a leading
member axis (kernels [E, in, out]), so all members run in one einsum, never a
Python loop. Each member predicts a diagonal Gaussian (mean and log-variance,
the log-variance softly bounded by learned limits, as in PETS) or, with
``probabilistic=False``, a point (VaGraM's deterministic model). Inputs and
targets are normalized with statistics fitted from the data; ``fit`` trains
with weight decay on a held-out split with early stopping, keeps each member's
best weights and ranks the members by validation error to choose elites.

Call sequence::

    ensemble = GaussianEnsemble(input_size=4, output_size=3, members=7, elites=5)
    report = ensemble.fit(inputs [N, 4], targets [N, 3])     # NumPy; eager loop
    mean, variance = ensemble.member_moments(x [N, 4])        # [K, N, 3] each
    moments = ensemble.moments(x [N, 4])  # mean, epistemic and aleatoric [N, 3]
    y = ensemble.propagate(x [P, 4], "random", seed)         # [P, 3], compiled-friendly

Every TF method is pure and shape-stable, so agents call them inside their own
compiled steps; ``fit``'s train step is compiled once (``jit``) at
[E, batch_size, ...].

Propagation (``propagate``) follows PETS: ``"expectation"`` averages the
members' means; ``"random"`` (TS-1) gives each particle a random elite member
at every call; ``"fixed"`` (TS-∞) gives particle p the elite member p mod K
for the whole rollout. With ``sample`` the members' own (aleatoric) noise is
added. Predictive uncertainty splits into epistemic (the variance of the
members' means) and aleatoric (the mean of the members' variances);
``calibrate`` fits one scale of the epistemic part on held-out data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.errors import ConfigError

tfd = tfp.distributions

PROPAGATION_MODES = ("expectation", "random", "fixed")
CALIBRATIONS = ("likelihood", "quantile")
OBJECTIVES = ("nll", "mspe")
_ACTIVATIONS = {"swish": tf.nn.silu, "relu": tf.nn.relu, "elu": tf.nn.elu, "tanh": tf.tanh}
_VALIDATION_CHUNK = 1024


def pairwise_kl(mean, variance) -> tf.Tensor:
    """The members' disagreement: KL(N_i || N_j) of diagonal Gaussians averaged
    over every ordered pair i != j of the K members and over the D output
    dimensions (CMBPO's ensemble uncertainty). mean, variance [K, N, D] -> [N].

    Per dimension, KL_ij = (log(var_j / var_i) + (var_i + (mu_i - mu_j)^2) / var_j - 1) / 2.
    """
    members = mean.shape[0]
    if members < 2:
        return tf.zeros(tf.shape(mean)[1:2], mean.dtype)
    variance = tf.maximum(variance, 1e-10)  # Deterministic members: a tiny floor, as the seed.
    mu_i, mu_j = mean[:, None], mean[None, :]  # [K, K, N, D]
    var_i, var_j = variance[:, None], variance[None, :]
    kl = 0.5 * (tf.math.log(var_j / var_i) + (var_i + tf.square(mu_i - mu_j)) / var_j - 1.0)
    # The diagonal (i = j) is zero; divide the sum by the K (K - 1) ordered pairs.
    per_dimension = tf.reduce_sum(kl, axis=[0, 1]) / (members * (members - 1))
    return tf.reduce_mean(per_dimension, axis=-1)


def mspe_loss(mean, log_variance, targets) -> tf.Tensor:
    """The CMBPO code's "MSPE" objective per member: [E, B, O] -> [E].

    mean_{B,O} (μ - y)² + mean_{B,O} r (σ² - sg((μ - y)²))² + 0.05 mean_all (log σ²)²,
    with r = 0.05 mean_all sg((μ - y)²) / mean_all sg((σ² - (μ - y)²)²): the
    variance regression weighs 5% of the squared error, so the log-variance
    penalty dominates and σ² stays near 1 (the data's variance in normalized
    units). ``_all``: over every member, sample and output, as the seed code.
    """
    squared_error = tf.square(mean - targets)
    variance = tf.exp(log_variance)
    target_error = tf.stop_gradient(squared_error)
    variance_error = tf.square(variance - target_error)
    ratio = (
        0.05
        * tf.reduce_mean(target_error)
        / tf.maximum(tf.reduce_mean(tf.stop_gradient(variance_error)), 1e-12)
    )
    return (tf.reduce_mean(squared_error, axis=[1, 2])
            + tf.reduce_mean(ratio * variance_error, axis=[1, 2])
            + 0.05 * tf.reduce_mean(tf.square(log_variance)))  # fmt: skip


class MemberLoss(Protocol):
    """A model loss per member: prediction and target [E, B, O] in raw target
    units (the members' means), extras [E, B, ...] -> [E]."""

    def __call__(
        self, prediction: tf.Tensor, target: tf.Tensor, extras: tf.Tensor
    ) -> tf.Tensor: ...


class _CustomSteps:
    """An ensemble's train and validation steps for one ``MemberLoss``."""

    def __init__(self, ensemble: GaussianEnsemble, loss: MemberLoss):
        self.ensemble, self.loss = ensemble, loss
        jit = ensemble.jit
        self.train = tf.function(self._train, jit_compile=jit)
        self.validate = tf.function(self._validate, jit_compile=jit, reduce_retracing=True)

    def _predict(self, inputs, members=None):
        ensemble = self.ensemble
        mean, _ = ensemble._forward(ensemble._normalize_inputs(inputs), members, mean_only=True)
        return mean * ensemble.target_std + ensemble.target_mean

    def _train(self, inputs, targets, extras):
        ensemble = self.ensemble
        with tf.GradientTape() as tape:
            member_loss = self.loss(self._predict(inputs), targets, extras)
            total = tf.reduce_sum(member_loss) + ensemble.weight_decay * 0.5 * tf.add_n(
                [tf.reduce_sum(tf.square(k)) for k in ensemble.kernels]
            )
        variables = ensemble.trainable_parameters
        ensemble.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return tf.reduce_mean(member_loss)

    def _validate(self, inputs, targets, extras):
        return self.loss(self._predict(inputs, tf.range(self.ensemble.members)), targets, extras)


@dataclasses.dataclass
class Moments:
    """Predictive moments over the elite members, each [N, O]."""

    mean: tf.Tensor
    epistemic_variance: tf.Tensor
    aleatoric_variance: tf.Tensor | None  # None when not asked for (``moments``)

    @property
    def variance(self) -> tf.Tensor:
        return self.epistemic_variance + self.aleatoric_variance


@dataclasses.dataclass
class FitReport:
    """What ``fit`` did: epochs run, final per-member losses, chosen elites."""

    epochs: int
    train_loss: float
    validation_mse: np.ndarray  # [E], normalized units, best weights
    elites: np.ndarray  # [K] member indices, best first
    epistemic_scale: float
    steps: int = 0  # Gradient steps.

    def metrics(self, prefix: str = "model/") -> dict[str, float]:
        metrics = {
            f"{prefix}epochs": float(self.epochs),
            f"{prefix}steps": float(self.steps),
            f"{prefix}train_loss": self.train_loss,
            f"{prefix}epistemic_scale": self.epistemic_scale,
        }
        if self.validation_mse.size:
            metrics[f"{prefix}validation_mse"] = float(self.validation_mse[self.elites].mean())
        return metrics


class GaussianEnsemble(tf.Module):
    """E Gaussian (or deterministic) MLPs with stacked weights.

    Args:
      input_size, output_size: I and O.
      members: E, the number of members.
      elites: K <= E members used for prediction (default: all), chosen by
        validation error after each ``fit``.
      hidden_units, hidden_layers, activation: the MLP of every member.
      probabilistic: predict a log-variance head (a Gaussian); False gives
        deterministic members trained by squared error.
      objective: how probabilistic members are trained. "nll": the Gaussian
        negative log-likelihood with learned soft log-variance bounds (PETS,
        MBPO). "mspe": the CMBPO code's mean squared prediction error, the
        squared error of the mean plus a small regression of the variance on
        the squared error and 0.05 · mean(log-variance²) (``_loss``); its
        variances stay near the data's, so the members' KL measures the
        spread of their means rather than shrinking variances.
      weight_decay: coefficient of the L2 penalty (1/2 Σ W²) on the kernels.
      learning_rate: Adam's.
      bound_weight: weight of the penalty that pulls the learned log-variance
        limits together (PETS's 0.01).
      batch_size, holdout_ratio, max_holdout, max_epochs, patience,
        improvement: ``fit``'s defaults (early stopping ends training when no
        member has improved its validation error by the relative
        ``improvement`` for ``patience`` epochs).
      calibrate: fit the epistemic scale on the held-out split after ``fit``.
      calibration: how: 'likelihood' (one scale for every output, by the
        held-out Gaussian likelihood) or 'quantile' (one scale per output
        dimension, by quantile coverage, as SafeExploration's BNNs:
        ``quantile_calibration``).
      bootstrap: each member trains on its own resample (with replacement) of
        the training split, drawn anew at every fit, as mbrl-lib's ensembles;
        otherwise every member sees the whole split in its own order.
      jit: compile the train step with XLA.
      seed: initialization and data shuffling.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        members: int = 5,
        elites: int | None = None,
        hidden_units: int = 200,
        hidden_layers: int = 4,
        activation: str = "swish",
        probabilistic: bool = True,
        objective: str = "nll",
        weight_decay: float = 5e-5,
        learning_rate: float = 1e-3,
        bound_weight: float = 0.01,
        batch_size: int = 256,
        holdout_ratio: float = 0.2,
        max_holdout: int = 5000,
        max_epochs: int = 100,
        patience: int = 5,
        improvement: float = 0.01,
        calibrate: bool = False,
        calibration: str = "likelihood",
        bootstrap: bool = False,
        jit: bool = True,
        seed: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name)
        elites = members if elites is None else elites
        if members < 1 or not 1 <= elites <= members:
            raise ConfigError(
                f"ensemble needs members >= 1 and 1 <= elites <= members, got {members}, {elites}"
            )
        if activation not in _ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {activation!r}; accepted: {', '.join(_ACTIVATIONS)}"
            )
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {objective!r}; accepted: {', '.join(OBJECTIVES)}")
        if hidden_layers < 1 or hidden_units < 1:
            raise ConfigError("ensemble needs hidden_layers >= 1 and hidden_units >= 1")
        if calibration not in CALIBRATIONS:
            raise ConfigError(
                f"unknown calibration {calibration!r}; accepted: {', '.join(CALIBRATIONS)}"
            )
        if not 0.0 <= holdout_ratio < 1.0:
            raise ConfigError(f"holdout_ratio must be in [0, 1), got {holdout_ratio}")
        self.input_size, self.output_size = int(input_size), int(output_size)
        self.members, self.num_elites = int(members), int(elites)
        self.probabilistic, self.objective = probabilistic, objective
        self.activation = _ACTIVATIONS[activation]
        self.weight_decay, self.bound_weight = weight_decay, bound_weight
        self.batch_size, self.holdout_ratio, self.max_holdout = (
            batch_size,
            holdout_ratio,
            max_holdout,
        )
        self.max_epochs, self.patience, self.improvement = max_epochs, patience, improvement
        self.calibrate_after_fit = calibrate
        self.calibration, self.bootstrap = calibration, bootstrap
        self.rng = np.random.default_rng(seed)
        initializer = tf.random.Generator.from_seed(seed)
        sizes = [self.input_size] + [hidden_units] * hidden_layers
        heads = 2 * self.output_size if probabilistic else self.output_size
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:] + [heads])):
            # MBPO's initialization: truncated normal with std 1 / (2 sqrt(fan_in)).
            kernel = initializer.truncated_normal([members, fan_in, fan_out])
            kernel = kernel / (2.0 * math.sqrt(fan_in))
            self.kernels.append(tf.Variable(kernel, name=f"kernel_{index}"))
            self.biases.append(tf.Variable(tf.zeros([members, 1, fan_out]), name=f"bias_{index}"))
        # Learned soft limits of the log-variance (normalized units).
        self.max_log_variance = tf.Variable(tf.fill([self.output_size], 0.5), name="max_logvar")
        self.min_log_variance = tf.Variable(tf.fill([self.output_size], -10.0), name="min_logvar")
        # Fitted normalization; elites; epistemic calibration.
        self.input_mean = tf.Variable(tf.zeros([self.input_size]), trainable=False)
        self.input_std = tf.Variable(tf.ones([self.input_size]), trainable=False)
        self.target_mean = tf.Variable(tf.zeros([self.output_size]), trainable=False)
        self.target_std = tf.Variable(tf.ones([self.output_size]), trainable=False)
        self.elite_indices = tf.Variable(tf.range(self.num_elites), trainable=False)
        self.epistemic_scale = tf.Variable(1.0, trainable=False)
        if calibration == "quantile":  # Made only here: older checkpoints lack it.
            self.epistemic_dimension_scale = tf.Variable(tf.ones([self.output_size]),
                                                         trainable=False)  # fmt: skip
        self.fitted = tf.Variable(False, trainable=False)
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.trainable_parameters)
        # Each member's best weights so far (early stopping restores them).
        self._best = [tf.Variable(v, trainable=False) for v in self._member_parameters]
        self.train_traces = 0  # Traces of the train step (a test checks it stays 1).
        self._custom: dict[int, _CustomSteps] = {}  # Compiled steps per custom loss.
        self.jit = jit
        self._train_step = tf.function(self._train_step_impl, jit_compile=jit)
        self._validation_step = tf.function(self._validation_error, jit_compile=jit)

    # ----------------------------------------------------------------- parameters

    @property
    def _member_parameters(self) -> list[tf.Variable]:
        return [*self.kernels, *self.biases]

    @property
    def trainable_parameters(self) -> list[tf.Variable]:
        bounds = [self.max_log_variance, self.min_log_variance] if self.probabilistic else []
        return [*self._member_parameters, *bounds]

    # -------------------------------------------------------------------- forward

    def _forward(self, normalized_inputs: tf.Tensor, members: tf.Tensor | None = None,
                 mean_only: bool = False):  # fmt: skip
        """Normalized inputs [M, N, I] of the given members [M] -> mean, log-variance
        [M, N, O]; ``mean_only``: the log-variance is None and its half of the
        output layer is never computed."""
        hidden = normalized_inputs
        last = len(self.kernels) - 1
        for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            if members is not None:
                kernel, bias = tf.gather(kernel, members), tf.gather(bias, members)
            if index == last and mean_only and self.probabilistic:
                kernel, bias = kernel[..., : self.output_size], bias[..., : self.output_size]
            hidden = tf.einsum("mni,mio->mno", hidden, kernel) + bias
            if index < last:
                hidden = self.activation(hidden)
        if not self.probabilistic or mean_only:
            return hidden, None
        mean, log_variance = tf.split(hidden, 2, axis=-1)
        # Soft bounds keep the variance finite off the data (PETS, appendix A.1).
        log_variance = self.max_log_variance - tf.nn.softplus(self.max_log_variance - log_variance)
        log_variance = self.min_log_variance + tf.nn.softplus(log_variance - self.min_log_variance)
        return mean, log_variance

    def _normalize_inputs(self, inputs: tf.Tensor) -> tf.Tensor:
        return (tf.cast(inputs, tf.float32) - self.input_mean) / self.input_std

    def _broadcast(self, inputs: tf.Tensor, count: int) -> tf.Tensor:
        """[N, I] -> [count, N, I]; [count, N, I] passes through."""
        inputs = self._normalize_inputs(inputs)
        if inputs.shape.rank == 2:
            return tf.broadcast_to(inputs[None], [count, *tf.unstack(tf.shape(inputs))])
        return inputs

    def member_moments(self, inputs: tf.Tensor, members: tf.Tensor | None = None,
                       variance: bool = True):  # fmt: skip
        """Each member's predictive mean and variance in target units.

        Args:
          inputs: [N, I] (every member sees the same) or [M, N, I] (one batch per member).
          members: [M] member indices; default the elites.
          variance: False skips the variance (and its half of the output layer).

        Returns:
          mean [M, N, O] and variance [M, N, O] (zeros for deterministic
          members; None without ``variance``).
        """
        members = self.elite_indices if members is None else members
        count = members.shape[0]
        mean, log_variance = self._forward(self._broadcast(inputs, count), members,
                                           mean_only=not variance)  # fmt: skip
        mean = mean * self.target_std + self.target_mean
        if not variance:
            return mean, None
        if log_variance is None:
            return mean, tf.zeros_like(mean)
        return mean, tf.exp(log_variance) * tf.square(self.target_std)

    def member_distribution(self, inputs: tf.Tensor, members: tf.Tensor | None = None):
        """Each member's prediction as a distribution: batch [M, N], event [O]."""
        mean, variance = self.member_moments(inputs, members)
        if not self.probabilistic:
            return tfd.Independent(tfd.Deterministic(mean), 1)
        return tfd.Independent(tfd.Normal(mean, tf.sqrt(variance)), 1)

    def distribution(self, inputs: tf.Tensor):
        """The predictive mixture of the elite members: batch [N], event [O].

        Deterministic members give an equally weighted mixture of points.
        """
        # The member axis goes last for MixtureSameFamily: batch [N, K].
        mean, variance = self.member_moments(inputs)
        mean, variance = tf.transpose(mean, [1, 0, 2]), tf.transpose(variance, [1, 0, 2])
        if self.probabilistic:
            component = tfd.Independent(tfd.Normal(mean, tf.sqrt(variance)), 1)
        else:
            component = tfd.Independent(tfd.Deterministic(mean), 1)
        weights = tfd.Categorical(logits=tf.zeros(tf.shape(mean)[:2]))
        return tfd.MixtureSameFamily(weights, component)

    def moments(self, inputs: tf.Tensor, aleatoric: bool = True) -> Moments:
        """Mean [N, O], epistemic variance (of the elites' means, times the
        calibrated scale squared) and aleatoric variance (their mean variance;
        None without ``aleatoric``, which then skips the members' variances)."""
        mean, variance = self.member_moments(inputs, variance=aleatoric)
        ensemble_mean = tf.reduce_mean(mean, axis=0)
        epistemic = tf.reduce_mean(tf.square(mean - ensemble_mean), axis=0)
        return Moments(
            ensemble_mean,
            tf.square(self._epistemic_scales()) * epistemic,
            None if variance is None else tf.reduce_mean(variance, axis=0),
        )

    def _epistemic_scales(self):
        """The calibrated scale: [] or [O] per output dimension."""
        if self.calibration == "quantile":
            return self.epistemic_scale * self.epistemic_dimension_scale
        return self.epistemic_scale

    def propagate(
        self, inputs: tf.Tensor, mode: str, seed: tf.Tensor, sample: bool = True,
        assignment: tf.Tensor | None = None,
    ) -> tf.Tensor:  # fmt: skip
        """One prediction per particle: inputs [P, I] -> outputs [P, O].

        Args:
          mode: 'expectation' (mean of the elites' means, no noise),
            'random' (a random elite per particle and call) or 'fixed' (the
            same elite for a particle at every call: elite j mod K for the
            particle at position j of ``assignment``, a permutation of
            [P rounded up to a multiple of K]; ``particle_assignment`` draws
            one, which ``ModelEnv`` does per rollout as mbrl-lib's TS-∞;
            None: the identity).
          seed: [2] int32 stateless seed.
          sample: add the chosen member's Gaussian noise ('random'/'fixed').
        """
        if mode not in PROPAGATION_MODES:
            raise ConfigError(
                f"unknown propagation {mode!r}; accepted: {', '.join(PROPAGATION_MODES)}"
            )
        if mode == "expectation":
            return self.moments(inputs, aleatoric=False).mean
        particles = inputs.shape[0]
        elites = self.num_elites
        assign_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        # Pad to a multiple of K; row j of the (permuted) particles goes to
        # member j mod K, so that each member computes only its own particles.
        padded = -(-particles // elites) * elites
        inputs = tf.pad(tf.cast(inputs, tf.float32), [[0, padded - particles], [0, 0]])
        order = None
        if mode == "random":
            order = particle_assignment(particles, elites, assign_seed)
        elif assignment is not None:
            order = assignment
        if order is not None:
            inputs = tf.gather(inputs, order)
        grouped = tf.transpose(tf.reshape(inputs, [-1, elites, self.input_size]), [1, 0, 2])
        mean, variance = self.member_moments(grouped)  # [K, padded / K, O]
        if sample:
            noise = tf.random.stateless_normal(tf.shape(mean), noise_seed)
            mean = mean + tf.sqrt(variance) * noise
        outputs = tf.reshape(tf.transpose(mean, [1, 0, 2]), [padded, self.output_size])
        if order is not None:
            outputs = tf.gather(outputs, tf.math.invert_permutation(order))
        return outputs[:particles]

    # ------------------------------------------------------------------- training

    def _loss(self, normalized_inputs, normalized_targets):
        """Per-member loss [E] of one batch (member axis first) plus regularizers."""
        mean, log_variance = self._forward(normalized_inputs)
        if log_variance is None:
            member_loss = tf.reduce_mean(tf.square(mean - normalized_targets), axis=[1, 2])
        elif self.objective == "mspe":
            member_loss = mspe_loss(mean, log_variance, normalized_targets)
        else:
            inverse_variance = tf.exp(-log_variance)
            member_loss = tf.reduce_mean(
                tf.square(mean - normalized_targets) * inverse_variance + log_variance, axis=[1, 2]
            )
        total = tf.reduce_sum(member_loss)
        total += (
            self.weight_decay * 0.5 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in self.kernels])
        )
        if log_variance is not None and self.objective == "nll":
            total += self.bound_weight * (
                tf.reduce_sum(self.max_log_variance) - tf.reduce_sum(self.min_log_variance)
            )
        return total, member_loss

    def _train_step_impl(self, inputs, targets):
        """inputs [E, B, I], targets [E, B, O], raw units -> mean member loss."""
        self.train_traces += 1
        normalized_inputs = self._normalize_inputs(inputs)
        normalized_targets = (targets - self.target_mean) / self.target_std
        with tf.GradientTape() as tape:
            total, member_loss = self._loss(normalized_inputs, normalized_targets)
        variables = self.trainable_parameters
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        return tf.reduce_mean(member_loss)

    def _validation_error(self, inputs, targets, mask):
        """Sum of squared normalized errors per member [E] over a masked chunk."""
        members = tf.range(self.members)
        mean, _ = self._forward(self._broadcast(inputs, self.members), members, mean_only=True)
        normalized_targets = (targets - self.target_mean) / self.target_std
        error = tf.reduce_mean(tf.square(mean - normalized_targets), axis=-1)  # [E, C]
        return tf.reduce_sum(error * mask, axis=1)

    def validation_mse(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Mean squared error of every member [E] in normalized target units."""
        inputs, targets = _as_float32(inputs), _as_float32(targets)
        total = np.zeros(self.members)
        for start in range(0, len(inputs), _VALIDATION_CHUNK):
            chunk_x = inputs[start : start + _VALIDATION_CHUNK]
            chunk_y = targets[start : start + _VALIDATION_CHUNK]
            count = len(chunk_x)
            mask = np.zeros(_VALIDATION_CHUNK, np.float32)
            mask[:count] = 1.0
            pad = _VALIDATION_CHUNK - count
            chunk_x = np.concatenate([chunk_x, np.zeros((pad, self.input_size), np.float32)])
            chunk_y = np.concatenate([chunk_y, np.zeros((pad, self.output_size), np.float32)])
            total += self._validation_step(chunk_x, chunk_y, mask).numpy()
        return total / max(len(inputs), 1)

    def fit_normalization(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Sets the input and target statistics (a constant column gets std 1)."""
        for mean_var, std_var, data in (
            (self.input_mean, self.input_std, inputs),
            (self.target_mean, self.target_std, targets),
        ):
            mean_var.assign(data.mean(axis=0))
            std = data.std(axis=0)
            std_var.assign(np.where(std < 1e-6, 1.0, std).astype(np.float32))

    def fit(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        *,
        max_epochs: int | None = None,
        min_epochs: int = 1,
        min_steps: int = 0,
        max_steps: int | None = None,
        loss: MemberLoss | None = None,
        extras: np.ndarray | None = None,
    ) -> FitReport:
        """Trains every member on its own shuffling of the data.

        Args:
          inputs: [N, I]; targets: [N, O]; NumPy.
          max_epochs: epochs at most (default: the ensemble's ``max_epochs``).
          min_epochs: epochs at least: early stopping acts only after them (the
            CMBPO code's first fit runs at least 150).
          min_steps: gradient steps at least, beyond ``max_epochs`` if need be:
            with little data an epoch is one or two steps, and stopping after
            ``patience`` epochs would leave the members barely trained.
          max_steps: gradient steps at most (None: no limit).
          loss: a ``MemberLoss`` instead of the likelihood (or, for deterministic
            members, the squared error); it also scores the held-out split for
            early stopping and elites. The weight decay still applies. Its steps
            are compiled once per loss object: pass the same object to every
            fit (keep changing settings in ``tf.Variable``s).
          extras: [N, ...] per-sample data the ``loss`` reads (for example
            VaGraM's value gradients), split and shuffled with the samples.

        Returns:
          A ``FitReport``. Holds out ``holdout_ratio`` of the data (at most
          ``max_holdout``) for early stopping and elites; each member ends with
          its best weights on that split.
        """
        inputs, targets = _as_float32(inputs), _as_float32(targets)
        if inputs.ndim != 2 or inputs.shape[1] != self.input_size:
            raise ValueError(f"inputs must be [N, {self.input_size}], got {inputs.shape}")
        if targets.shape != (len(inputs), self.output_size):
            raise ValueError(
                f"targets must be [{len(inputs)}, {self.output_size}], got {targets.shape}"
            )
        if len(inputs) < 2:
            raise ValueError(f"fit needs at least 2 samples, got {len(inputs)}")
        max_epochs = self.max_epochs if max_epochs is None else max_epochs
        if extras is not None and loss is None:
            raise ValueError("extras are read by a custom loss: pass loss= too")
        if loss is not None and self.probabilistic:
            raise ConfigError("a custom model loss trains the members' means: it needs "
                              "deterministic members (probabilistic=False)")  # fmt: skip
        if extras is not None and len(extras) != len(inputs):
            raise ValueError(f"extras must have {len(inputs)} rows, got {len(extras)}")
        permutation = self.rng.permutation(len(inputs))
        holdout = min(int(len(inputs) * self.holdout_ratio), self.max_holdout)
        held_x, held_y = inputs[permutation[:holdout]], targets[permutation[:holdout]]
        train_x, train_y = inputs[permutation[holdout:]], targets[permutation[holdout:]]
        if extras is not None:
            extras = _as_float32(extras)
            held_extras, train_extras = extras[permutation[:holdout]], extras[permutation[holdout:]]
        else:
            held_extras = train_extras = np.zeros((len(inputs), 0), np.float32)
        if loss is not None:
            custom = self._custom_steps(loss)

            def train_step(x, y, index):
                return custom.train(x[index], y[index], train_extras[index])

            def score(x, y):
                return self._custom_validation(custom, x, y, held_extras)
        else:

            def train_step(x, y, index):
                return self._train_step(x[index], y[index])

            score = self.validation_mse
        self.fit_normalization(train_x, train_y)
        for best, value in zip(self._best, self._member_parameters):
            best.assign(value)
        best_mse = score(held_x, held_y) if holdout else np.zeros(self.members)
        steps_per_epoch = max(1, -(-len(train_x) // self.batch_size))
        stale, steps, epochs, loss = 0, 0, 0, float("nan")
        rows = [np.arange(len(train_x))] * self.members
        if self.bootstrap:  # Each member's resample, with replacement, for this fit.
            rows = [self.rng.integers(0, len(train_x), len(train_x)) for _ in range(self.members)]
        epoch = 0
        while epoch < max_epochs or steps < min_steps:
            epoch += 1
            epochs = epoch
            order = np.stack([self._epoch_order(member_rows, steps_per_epoch)
                              for member_rows in rows])  # fmt: skip
            losses = []
            for step in range(steps_per_epoch):
                index = order[:, step * self.batch_size : (step + 1) * self.batch_size]
                losses.append(train_step(train_x, train_y, index))
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            loss = float(tf.reduce_mean(losses))
            if holdout:
                mse = score(held_x, held_y)
                improved = mse < best_mse * (1.0 - self.improvement)
                better = mse < best_mse
                self._keep_best(better)
                best_mse = np.where(better, mse, best_mse)
                stale = 0 if improved.any() else stale + 1
                if stale >= self.patience and epoch >= min_epochs and steps >= min_steps:
                    break
            if max_steps is not None and steps >= max_steps:
                break
        if holdout:
            self._restore_best()  # best_mse already holds these weights' errors.
            elites = np.argsort(best_mse, kind="stable")[: self.num_elites]
        else:
            elites = np.arange(self.num_elites)
        self.elite_indices.assign(elites.astype(np.int32))
        self.fitted.assign(True)
        if self.calibrate_after_fit and holdout:
            self.calibrate(held_x, held_y)
        scale = float(np.mean(self._epistemic_scales().numpy()))
        return FitReport(epochs, loss, best_mse, elites, scale, steps)

    def _custom_steps(self, loss: MemberLoss) -> _CustomSteps:
        """The compiled train and validation steps of ``loss`` (made once per loss)."""
        steps = self._custom.get(id(loss))
        if steps is None or steps.loss is not loss:
            steps = _CustomSteps(self, loss)
            self._custom[id(loss)] = steps
        return steps

    def _custom_validation(self, steps, inputs, targets, extras) -> np.ndarray:
        """The custom loss of every member [E] on held-out rows (all members see
        all rows), averaged over chunks weighted by their size."""
        total = np.zeros(self.members)
        for start in range(0, len(inputs), _VALIDATION_CHUNK):
            end = start + _VALIDATION_CHUNK
            chunk = [np.broadcast_to(x[start:end], (self.members, *x[start:end].shape))
                     for x in (inputs, targets, extras)]  # fmt: skip
            total += steps.validate(*chunk).numpy() * len(chunk[0][0])
        return total / max(len(inputs), 1)

    def _epoch_order(self, rows: np.ndarray, steps: int) -> np.ndarray:
        """``rows`` shuffled, topped up with random ones of them to steps * batch."""
        order = self.rng.permutation(rows)
        missing = steps * self.batch_size - len(rows)
        if missing > 0:
            order = np.concatenate([order, rows[self.rng.integers(0, len(rows), missing)]])
        return order

    def _keep_best(self, better: np.ndarray) -> None:
        mask = tf.constant(better)
        for best, value in zip(self._best, self._member_parameters):
            shape = [-1] + [1] * (value.shape.rank - 1)
            best.assign(tf.where(tf.reshape(mask, shape), value, best))

    def _restore_best(self) -> None:
        for best, value in zip(self._best, self._member_parameters):
            value.assign(best)

    # ---------------------------------------------------------------- calibration

    def calibrate(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """Fits the epistemic scale on held-out data; returns it (its mean over
        the output dimensions for 'quantile').

        'likelihood': the predictive distribution is N(mean, s² · epistemic +
        aleatoric); s is chosen on a log grid between 0.01 and 100
        (deterministic members: the closed form s² = mean(residual² / epistemic)).
        'quantile': ``quantile_calibration`` per output dimension.
        """
        inputs, targets = _as_float32(inputs), _as_float32(targets)
        self.epistemic_scale.assign(1.0)
        if self.calibration == "quantile":
            self.epistemic_dimension_scale.assign(tf.ones([self.output_size]))
            moments = self.moments(inputs)
            scales = quantile_calibration(
                moments.mean.numpy(), np.sqrt(moments.epistemic_variance.numpy()),
                moments.aleatoric_variance.numpy(), targets,
            )  # fmt: skip
            self.epistemic_dimension_scale.assign(scales.astype(np.float32))
            return float(scales.mean())
        moments = self.moments(inputs)
        residual = np.square(targets - moments.mean.numpy()).astype(np.float64)
        epistemic = np.maximum(moments.epistemic_variance.numpy().astype(np.float64), 1e-12)
        aleatoric = moments.aleatoric_variance.numpy().astype(np.float64)
        if not self.probabilistic:
            scale = math.sqrt(float(np.mean(residual / epistemic)))
        else:
            grid = np.logspace(-2, 2, 81)
            nll = [
                np.mean(
                    np.log(s * s * epistemic + aleatoric)
                    + residual / (s * s * epistemic + aleatoric)
                )
                for s in grid
            ]
            scale = float(grid[int(np.argmin(nll))])
        self.epistemic_scale.assign(scale)
        return scale


def particle_assignment(particles: int, elites: int, seed: tf.Tensor) -> tf.Tensor:
    """A random permutation of [P rounded up to a multiple of K elites]: which
    member serves which particle in ``GaussianEnsemble.propagate`` (the
    particle at position j: elite j mod K)."""
    padded = -(-particles // elites) * elites
    return tf.argsort(tf.random.stateless_uniform([padded], seed))


def quantile_calibration(mean, epistemic_std, aleatoric_variance, targets, levels: int = 20,
                         candidates: int = 100, largest: float = 10.0) -> np.ndarray:  # fmt: skip
    """Per-output scales of the epistemic std by quantile coverage
    (SafeExploration's BNN calibration, Kuleshov et al. 2018).

    For each output dimension and each candidate scale s (``candidates`` − 1
    values from ``largest`` down to ``largest / (candidates − 1)``), the
    predictive N(mean, (s · epistemic_std)² + aleatoric) gives each target its
    CDF value; the coverage at level p is the fraction of targets with CDF ≤ p,
    for p = 1/levels, 2/levels, ..., 1. The scale with the least mean squared
    gap between coverage and level wins (the largest on ties). All arrays
    [N, O]; returns [O].
    """
    mean, epistemic_std, aleatoric_variance, targets = (
        np.asarray(a, np.float64) for a in (mean, epistemic_std, aleatoric_variance, targets)
    )
    grid = np.flip(np.linspace(0.0, largest, candidates)[1:])  # Largest first: ties go to it.
    ps = np.linspace(0.0, 1.0, levels + 1)[1:]
    errors = np.empty((len(grid), targets.shape[1]))
    for index, scale in enumerate(grid):
        std = np.sqrt(np.square(epistemic_std * scale) + aleatoric_variance)
        z = (targets - mean) / np.maximum(std, 1e-12)
        cdf = 0.5 * tf.math.erfc(-z / math.sqrt(2.0)).numpy()  # [N, O]
        coverage = np.mean(cdf[None] <= ps[:, None, None], axis=1)  # [levels, O]
        errors[index] = np.mean(np.square(ps[:, None] - coverage), axis=0)
    return grid[np.argmin(errors, axis=0)]


def _as_float32(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)
