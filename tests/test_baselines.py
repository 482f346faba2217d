"""ARS, CMA-ES and vanilla BO: each improves on a quadratic; ARS's update rule; CMA-ES's
own random stream; BO's fallback."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.search.baselines import ARSSearcher, BOSearcher, CMAESSearcher

OPTIMUM = np.array([0.3, -0.2, 0.25, 0.1])


def quadratic(parameters):
    return -float(np.sum((parameters - OPTIMUM) ** 2))


@pytest.mark.parametrize(
    "make, budget",
    [
        (lambda: ARSSearcher(np.zeros(4), step_size=0.1, noise=0.05, directions=4, top=2), 80),
        (lambda: ARSSearcher(np.zeros(4), step_size=5.0, noise=0.05, scale_by_std=False), 80),
        (lambda: CMAESSearcher(np.zeros(4), sigma=0.2), 80),
        (lambda: BOSearcher((np.full(4, -1.0), np.full(4, 1.0)), seed=0), 20),
    ],
)
def test_each_baseline_improves_on_a_quadratic(make, budget):
    start = quadratic(np.zeros(4))
    result = make().run(quadratic, budget)
    assert len(result.values) == budget
    assert result.best_so_far[-1] > start + 0.5 * (0.0 - start)  # Half the gap closed.


def test_ars_update_follows_the_formula():
    ars = ARSSearcher(np.zeros(2), step_size=0.5, noise=0.1, directions=2, top=1,
                      scale_by_std=True, seed=3)  # fmt: skip
    points = [ars.ask()]
    deltas = ars._deltas.copy()
    values = [1.0, 0.0, 0.0, 0.5]  # r+ = [1, 0], r- = [0, 0.5]
    ars.tell(points[0], values[0])
    for value in values[1:]:
        ars.tell(ars.ask(), value)
    # The top direction by max(r+, r-) is direction 0; std of its rewards [1, 0] is 0.5.
    np.testing.assert_allclose(ars.theta, 0.5 / (1 * 0.5) * (1.0 - 0.0) * deltas[0])


def test_ars_uses_every_direction_by_default():
    # top=None is ARS V1 with b = N (every direction), not a -t variant.
    ars = ARSSearcher(np.zeros(2), step_size=0.5, noise=0.1, directions=2, seed=3)
    first = ars.ask()
    deltas = ars._deltas.copy()
    values = [1.0, 0.0, 0.0, 0.5]  # r+ = [1, 0], r- = [0, 0.5]
    ars.tell(first, values[0])
    for value in values[1:]:
        ars.tell(ars.ask(), value)
    step = (1.0 - 0.0) * deltas[0] + (0.0 - 0.5) * deltas[1]
    np.testing.assert_allclose(ars.theta, 0.5 / (2 * np.std(values)) * step)


def test_ars_unbiased_std_as_published():
    # One direction: sigma_R of [r+, r-] with ddof 1 is |r+ - r-| / sqrt(2), so
    # each update is +-sqrt(2) * step * delta (the published torch.std), where
    # ddof 0 gives 2 * step * delta.
    steps = {}
    for ddof in (0, 1):
        ars = ARSSearcher(np.zeros(3), step_size=0.1, noise=0.1, directions=1, std_ddof=ddof,
                          seed=5)  # fmt: skip
        ars.tell(ars.ask(), 2.0)
        delta = ars._deltas[0].copy()
        ars.tell(ars.ask(), -1.0)
        steps[ddof] = ars.theta / delta
    np.testing.assert_allclose(steps[0], 0.1 * 2.0)
    np.testing.assert_allclose(steps[1], 0.1 * np.sqrt(2.0))


def test_cmaes_draws_from_its_own_generator():
    # Other code drawing from numpy's global generator between asks must not
    # change CMA-ES's points (a resume replays them and checks they agree).
    def points(disturb: bool):
        searcher = CMAESSearcher(np.zeros(4), sigma=0.2, seed=5)
        asked = []
        for _ in range(20):
            if disturb:
                np.random.rand(3)  # noqa: NPY002
            asked.append(searcher.ask())
            searcher.tell(asked[-1], quadratic(asked[-1]))
        return np.asarray(asked)

    np.testing.assert_array_equal(points(False), points(True))


def test_bo_falls_back_to_a_uniform_point_when_the_gp_fails():
    import tensorflow as tf

    searcher = BOSearcher((np.full(2, -1.0), np.full(2, 3.0)), initial=2, seed=0)
    for _ in range(2):
        point = searcher.ask()
        searcher.tell(point, -float(point @ point))

    def failing(*args):
        raise tf.errors.InvalidArgumentError(None, None, "Cholesky factor is non-finite")

    searcher._proposer.propose = failing
    point = searcher.ask()
    assert searcher.fallbacks == 1 and np.all((point >= -1) & (point <= 3))


def test_bo_proposals_trace_once_as_the_data_grow():
    """The GP fit (GPflow's compiled Scipy loss over data variables of any
    length) and the acquisition optimizer's value and gradient are traced
    once, not once per proposal or data size; later fits start from the last
    one's hyperparameters instead of Trieste's random kernel search."""
    searcher = BOSearcher((np.zeros(3), np.ones(3)), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(14):  # 6 design points, then 8 proposals on 6..13 points.
        point = searcher.ask()
        searcher.tell(point, -float(np.sum((point - 0.3) ** 2)) + 0.01 * rng.normal())
    proposer = searcher._proposer
    assert proposer._value_and_gradient.experimental_get_tracing_count() == 1
    assert proposer._values_only.experimental_get_tracing_count() == 1
    model = proposer._models["OBJECTIVE"]
    compiled = list(model.optimizer.optimizer.compile_cache.values())
    assert [function.experimental_get_tracing_count() for function in compiled] == [1]
    assert model._num_kernel_samples == 0


def test_bo_seeds_tensorflow_once_not_at_every_proposal(monkeypatch):
    """``tf.random.set_seed`` clears TensorFlow's kernel cache, which made the
    next call of every compiled function instantiate and optimize its graph
    again (~0.2 s per proposal); only the first fit draws random numbers."""
    seeds = []
    original = tf.random.set_seed
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: (seeds.append(seed), original(seed)))
    searcher = BOSearcher((np.zeros(2), np.ones(2)), seed=3)
    for _ in range(9):  # 4 design points, then 5 proposals.
        point = searcher.ask()
        searcher.tell(point, -float(np.sum((point - 0.3) ** 2)))
    assert seeds == [3 + 4]
