"""CPO's step against scipy's constrained solver on small random problems, one
per case, and the line search's acceptance rule."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import minimize

from saferl_tf.rl.cpo import accept_step, cpo_step

DELTA = 0.01


def _problem(seed, size=4):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(size, size))
    h = m @ m.T + 0.3 * np.eye(size)
    return h, rng.normal(size=size), rng.normal(size=size)


def _scipy_solution(h, g, b, c, feasible=True):
    """min g'x s.t. c + b'x <= 0 and x'Hx/2 <= delta (feasible=False: min b'x in
    the trust region, CPO's recovery)."""
    objective = g if feasible else b
    constraints = [{"type": "ineq", "fun": lambda x: DELTA - 0.5 * x @ h @ x,
                    "jac": lambda x: -(h @ x)}]  # fmt: skip
    if feasible:
        constraints.append({"type": "ineq", "fun": lambda x: -(c + b @ x), "jac": lambda x: -b})
    best = None
    for start in range(8):  # A few starts: SLSQP is local and the problem is small.
        x0 = np.random.default_rng(start).normal(size=len(g)) * 0.01
        options = {"ftol": 1e-14, "maxiter": 500}
        result = minimize(lambda x: objective @ x, x0, jac=lambda x: objective, method="SLSQP",
                          constraints=constraints, options=options)  # fmt: skip
        ok = result.success and all(k["fun"](result.x) >= -1e-9 for k in constraints)
        if ok and (best is None or result.fun < best.fun):
            best = result
    assert best is not None
    return best.x


def _ours(h, g, b, c, constrained=True):
    h_tf = tf.constant(h)
    return cpo_step(tf.constant(g), tf.constant(b), tf.constant(c),
                    lambda v: tf.linalg.matvec(h_tf, v), DELTA, cg_iterations=2 * len(g),
                    constrained=constrained)  # fmt: skip


# c as a multiple k of sqrt(2 delta s): |k| < 1 the boundary cuts the trust
# region, |k| > 1 it misses it.
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k, case", [(-2.0, 3), (-0.5, 2), (-0.05, 2), (0.3, 1), (0.9, 1),
                                     (1.5, 0)])  # fmt: skip
def test_each_case_matches_scipy(seed, k, case):
    h, g, b = _problem(seed)
    s = b @ np.linalg.solve(h, b)
    c = k * np.sqrt(2 * DELTA * s)
    ours = _ours(h, g, b, c)
    assert int(ours.case) == case
    reference = _scipy_solution(h, g, b, c, feasible=case != 0)
    np.testing.assert_allclose(ours.step.numpy(), reference, atol=2e-5 * np.linalg.norm(reference))
    # The step stays in the trust region, and is feasible whenever one exists.
    step = ours.step.numpy()
    assert 0.5 * step @ h @ step <= DELTA * (1 + 1e-6)
    if case != 0:
        assert c + b @ step <= 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_unconstrained_is_trpos_step(seed):
    h, g, b = _problem(seed)
    ours = _ours(h, g, b, 5.0, constrained=False)  # Infeasible c, ignored.
    assert int(ours.case) == 4
    reference = _scipy_solution(h, g, b, -1e9)  # The constraint never binds.
    np.testing.assert_allclose(ours.step.numpy(), reference, atol=2e-5 * np.linalg.norm(reference))
    expected = -np.sqrt(2 * DELTA / (g @ np.linalg.solve(h, g))) * np.linalg.solve(h, g)
    np.testing.assert_allclose(ours.step.numpy(), expected, rtol=1e-6)


def test_a_vanishing_cost_gradient_while_feasible_is_case_4():
    h, g, _ = _problem(0)
    ours = _ours(h, g, np.zeros(4), -0.1)
    assert int(ours.case) == 4 and np.all(np.isfinite(ours.step.numpy()))


def test_the_step_is_finite_in_every_case_under_xla():
    h, g, b = _problem(1)
    h_tf = tf.constant(h, tf.float32)
    traces = []

    @tf.function(jit_compile=True)
    def step(c):
        traces.append(1)
        result = cpo_step(tf.constant(g, tf.float32), tf.constant(b, tf.float32), c,
                          lambda v: tf.linalg.matvec(h_tf, v), DELTA, 8)  # fmt: skip
        return result.step, result.case

    s = b @ np.linalg.solve(h, b)
    cases = set()
    for k in (-2.0, -0.5, 0.5, 1.5):
        values, case = step(tf.constant(k * np.sqrt(2 * DELTA * s), tf.float32))
        assert np.all(np.isfinite(values.numpy()))
        cases.add(int(case))
    assert cases == {0, 1, 2, 3} and len(traces) == 1


@pytest.mark.parametrize(
    "kl, loss_change, cost_change, case, c, expected",
    [
        (0.005, -0.1, 0.0, 2, -0.1, True),
        (0.02, -0.1, 0.0, 2, -0.1, False),  # Outside the trust region.
        (0.005, 0.1, 0.0, 2, -0.1, False),  # Loss worse in a feasible case.
        (0.005, 0.1, -0.2, 1, 0.1, True),  # Infeasible: a worse loss is allowed...
        (0.005, 0.1, 0.05, 1, 0.1, False),  # ...but the cost must not rise.
        (0.005, -0.1, 0.05, 3, -0.1, True),  # Feasible: the cost may rise by -c.
        (0.005, -0.1, 0.15, 3, -0.1, False),
    ],
)
def test_the_line_search_acceptance(kl, loss_change, cost_change, case, c, expected):
    accepted = accept_step(tf.constant(kl), tf.constant(loss_change), tf.constant(cost_change),
                           tf.constant(case), tf.constant(c), DELTA)  # fmt: skip
    assert bool(accepted) is expected
