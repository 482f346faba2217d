"""Proposers: given the finished trials and the running ones, the next point.

Every proposer works in the unit cube ``[0, 1]^D`` and refits on the whole
history at each call; what it keeps between calls (Trieste models and traced
acquisition functions, to avoid retracing) is rebuilt after a resume::

    proposer.propose(points [N, D], outcomes [N], pending [M, D]) -> point [D]

- ``TriesteConstrained``: expected constrained improvement (Gardner et al.,
  2014): expected improvement of the objective on one GP times the
  probability of feasibility ``constraint <= limit`` on another, with Trieste.
- ``TriestePenalty``: expected improvement on the seed's folded penalty.
- ``SkoptPenalty``: scikit-optimize's GP minimizer on the penalty (the
  unconstrained baseline).

Running trials enter Trieste's proposals through the kriging believer: after
fitting, each model is conditioned (hyperparameters kept) on its own predicted
mean at the running points, so parallel workers do not all ask for the same
point. Trieste's ``Fantasizer`` does the same but took about 30 s per proposal
here against about 4 s for this (2026-11; proposals have been 10-30x faster
since, docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from saferl_tf.bo.study import Outcome

# The acquisition optimizer: uniform samples scored at once, then L-BFGS-B from
# the best few (BoTorch's optimize_acqf defaults to 5 restarts from 64 to 512
# raw samples; the samples are cheap, one batched evaluation).
RAW_SAMPLES = 1000
RESTARTS = 5


def _standardize(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    mean, std = float(np.mean(values)), float(np.std(values))
    std = std if std > 1e-12 else 1.0
    return (values - mean) / std, mean, std


class TriesteProposer:
    """Shared Trieste machinery: GP models per tag and acquisition optimization."""

    name = "trieste"

    def __init__(self, dimension: int, seed: int = 0):
        self.dimension = dimension
        self.seed = seed
        self._models: dict = {}
        self._builder_instance = None
        self._function = None
        self._value_and_gradient = None  # Both compiled for ``_traced_for``.
        self._values_only = None
        self._traced_for = None

    def _datasets(self, points, outcomes) -> dict:
        raise NotImplementedError

    def _builder(self, datasets):
        raise NotImplementedError

    def propose(
        self, points: np.ndarray, outcomes: Sequence[Outcome], pending: np.ndarray
    ) -> np.ndarray:
        import gpflow
        import tensorflow as tf
        from trieste.data import Dataset
        from trieste.models.gpflow import GaussianProcessRegression, build_gpr
        from trieste.models.optimizer import Optimizer
        from trieste.space import Box

        if not self._models:
            # TensorFlow's random ops run only in the first fit (Trieste's search
            # over random kernels), so seeding there makes every proposal
            # reproducible. Seeding at every proposal cost ~0.2 s each:
            # ``tf.random.set_seed`` clears the kernel cache, so every compiled
            # function was instantiated and optimized again at its next call.
            tf.random.set_seed(self.seed + len(points))
        np.random.seed(self.seed + len(points))  # noqa: NPY002 (Trieste samples with it)
        space = Box(np.zeros(self.dimension), np.ones(self.dimension))
        datasets = self._datasets(np.asarray(points, np.float64), outcomes)
        for tag, dataset in datasets.items():
            if np.ptp(np.asarray(dataset.observations)) < 1e-12:
                raise ValueError(f"every finished trial has the same {tag.lower()} value")
        models = self._models
        for tag, dataset in datasets.items():
            if tag not in models:
                # Eager L-BFGS: with a few dozen points, tracing the loss cost
                # more than it saved.
                models[tag] = GaussianProcessRegression(
                    build_gpr(dataset, space, likelihood_variance=1e-5),
                    optimizer=Optimizer(gpflow.optimizers.Scipy(), compile=False),
                )
            else:
                models[tag].update(dataset)
                # Later fits start from the last fit's hyperparameters, as
                # BoTorch's do: Trieste's search over 10 random kernels per
                # hyperparameter (with a retrace of its loss) took about half
                # of every proposal.
                models[tag]._num_kernel_samples = 0
            models[tag].optimize(dataset)
        if len(pending):
            pending = tf.constant(np.asarray(pending, np.float64))
            for tag, model in models.items():
                believed, _ = model.predict(pending)
                datasets[tag] = datasets[tag] + Dataset(pending, believed)
                model.update(datasets[tag])
        # Updating the same acquisition function keeps its traced graph.
        if self._function is None:
            self._builder_instance = self._builder(datasets)
            self._function = self._builder_instance.prepare_acquisition_function(models, datasets)
        else:
            self._function = self._builder_instance.update_acquisition_function(
                self._function, models, datasets
            )
        return self._maximize(self._function, len(points))

    def _maximize(self, function, count: int) -> np.ndarray:
        """The acquisition function's maximizer on the unit cube: the best of
        ``RAW_SAMPLES`` uniform points starts ``RESTARTS`` independent L-BFGS-B
        runs, evaluated together (``minimize_batched``), with the value and
        gradient from one compiled function that Trieste's in-place updates
        keep valid. Trieste's own continuous optimizer took ~10 ms per batched
        evaluation of the eager gradient here, about half of every proposal."""
        import tensorflow as tf

        from saferl_tf.bo.batched_lbfgsb import minimize_batched

        if self._value_and_gradient is None or self._traced_for is not function:
            self._traced_for = function

            @tf.function(input_signature=[tf.TensorSpec([None, self.dimension], tf.float64)])
            def value_and_gradient(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    values = function(x[:, None, :])[:, 0]
                return values, tape.gradient(values, x)

            @tf.function(input_signature=[tf.TensorSpec([None, self.dimension], tf.float64)])
            def values_only(x):
                return function(x[:, None, :])[:, 0]

            self._value_and_gradient, self._values_only = value_and_gradient, values_only
        rng = np.random.default_rng(self.seed + count)
        samples = rng.random((RAW_SAMPLES, self.dimension))
        values = np.nan_to_num(self._values_only(tf.constant(samples)).numpy(), nan=-np.inf)
        starts = samples[np.argsort(-values)[:RESTARTS]]

        def losses_and_gradients(points):
            values, gradients = self._value_and_gradient(tf.constant(points))
            return -values.numpy(), -gradients.numpy()

        results = minimize_batched(losses_and_gradients, starts, [(0.0, 1.0)] * self.dimension)
        finals = np.clip(np.stack([result.x for result in results]), 0.0, 1.0)
        candidates = np.concatenate([finals, starts[:1]])
        final_values = self._values_only(tf.constant(candidates)).numpy()
        final_values = np.nan_to_num(final_values, nan=-np.inf)
        return candidates[int(np.argmax(final_values))]


class TriesteConstrained(TriesteProposer):
    """Expected constrained improvement: objective GP x probability of feasibility GP."""

    name = "trieste-eci"

    def _datasets(self, points, outcomes):
        from trieste.data import Dataset

        # Trieste minimizes: the objective (maximized by the study) is negated.
        objective, _, _ = _standardize(-np.asarray([o.objective for o in outcomes]))
        # The constraint keeps its units, so the feasibility threshold is the
        # limit itself and the acquisition function can be updated, not rebuilt.
        constraint = np.asarray([o.constraint for o in outcomes], np.float64)
        self._limit = outcomes[0].limit
        return {
            "OBJECTIVE": Dataset(points, objective[:, None]),
            "CONSTRAINT": Dataset(points, constraint[:, None]),
        }

    def _builder(self, datasets):
        from trieste.acquisition.function import (
            ExpectedConstrainedImprovement,
            ProbabilityOfFeasibility,
        )

        feasibility = ProbabilityOfFeasibility(self._limit).using("CONSTRAINT")
        return ExpectedConstrainedImprovement("OBJECTIVE", feasibility)


class TriestePenalty(TriesteProposer):
    """Expected improvement on the penalty 100 cost_rate + episode_cost - return."""

    name = "trieste-ei-penalty"

    def _datasets(self, points, outcomes):
        from trieste.data import Dataset

        penalty, _, _ = _standardize(np.asarray([o.penalty for o in outcomes]))
        return {"OBJECTIVE": Dataset(points, penalty[:, None])}

    def _builder(self, datasets):
        from trieste.acquisition.function import ExpectedImprovement

        return ExpectedImprovement().using("OBJECTIVE")


class SkoptPenalty:
    """scikit-optimize's GP + EI on the penalty, replayed from the whole history."""

    name = "skopt-penalty"

    def __init__(self, dimension: int, seed: int = 0):
        self.dimension = dimension
        self.seed = seed

    def propose(self, points, outcomes, pending) -> np.ndarray:
        from skopt import Optimizer

        optimizer = Optimizer(
            [(0.0, 1.0)] * self.dimension,
            base_estimator="GP",
            acq_func="EI",
            n_initial_points=0,
            random_state=self.seed + len(points),
        )
        if len(points):
            optimizer.tell([list(map(float, p)) for p in points], [o.penalty for o in outcomes])
        if len(pending):
            # The constant liar: running points count as the mean penalty so far.
            lie = float(np.mean([o.penalty for o in outcomes])) if outcomes else 0.0
            optimizer.tell([list(map(float, p)) for p in pending], [lie] * len(pending))
        return np.clip(np.asarray(optimizer.ask(), np.float64), 0.0, 1.0)


BACKENDS = ("trieste", "skopt")
OBJECTIVES = ("constrained", "penalty")


def make_proposer(backend: str, objective: str, dimension: int, seed: int):
    if backend == "skopt":
        return SkoptPenalty(dimension, seed)
    if objective == "penalty":
        return TriestePenalty(dimension, seed)
    return TriesteConstrained(dimension, seed)
