"""Constrained policy optimization's step (Achiam, Held, Tamar, Abbeel 2017),
as pure TensorFlow: the dual of the trust-region problem with one linear
constraint, its cases, and the line search's acceptance rule.

The local problem, in the loss convention of the paper's Theorem 2 and of the
CMBPO and safety-starter-agents codes (g is the gradient of the *loss*, i.e.
minus the surrogate advantage; b the gradient of the surrogate cost; c the
constraint's value, J_c - d, plus any safety margin; H the Fisher matrix)::

    min_x  g'x    s.t.   c + b'x <= 0,   x'Hx / 2 <= delta

With v = H^-1 g and w = H^-1 b (conjugate gradient), q = g'v, r = w'Hv
(= b'H^-1 g), s = w'Hw, A = q - r^2 / s, B = 2 delta - c^2 / s, the cases are

    4  no constraint (TRPO), or c < 0 with a vanishing cost gradient (b'b <= 1e-8)
    3  c < 0 and B < 0: the constraint's boundary misses the trust region;
       the TRPO step x = -v / lambda, lambda = sqrt(q / (2 delta))
    2  c < 0 and B >= 0: feasible, the boundary cuts the trust region
    1  c >= 0 and B >= 0: infeasible, but a feasible step exists
       (1, 2) x = -(v + nu w) / lambda from the dual (lambda, nu) below
    0  c >= 0 and B < 0: no feasible step: recover, x = -sqrt(2 delta / s) w

and in cases 1 and 2 lambda maximizes the dual over two intervals split at
r / c::

    f_a(lambda) = -(A / lambda + B lambda) / 2 - r c / s   on [0, r/c] (c < 0) or [r/c, inf)
    f_b(lambda) = -(q / lambda + 2 delta lambda) / 2         on the other interval
    nu = max(0, lambda c - r) / s

The numbers follow the seed (``cpo_policy.py`` of
anyboby/Constrained-Model-Based-Policy-Optimization, itself
safety-starter-agents'); ``tests/test_cpo.py`` checks every case against
scipy's constrained solver. ``accept_step`` is the line search's rule: the KL
within delta, the loss not worse (cases 2-4), the surrogate cost rising at most
max(-c, 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from saferl_tf.rl.trust_region import conjugate_gradient

EPSILON = 1e-8  # The seed's guard in the dual's divisions.
CASE_NAMES = {
    0: "infeasible recovery",
    1: "infeasible, step to feasibility",
    2: "feasible, constraint cuts the trust region",
    3: "feasible, constraint inactive",
    4: "unconstrained (TRPO)",
}


class CPOStep(NamedTuple):
    """The step to add to the flat parameters and what chose it (scalars [])."""

    step: tf.Tensor  # [P]; theta_new = theta + fraction * step in the line search
    case: tf.Tensor  # int32, see the module docstring
    multiplier: tf.Tensor  # lambda
    cost_multiplier: tf.Tensor  # nu
    q: tf.Tensor
    r: tf.Tensor
    s: tf.Tensor


def _project(x, low, high):
    return tf.maximum(low, tf.minimum(high, x))


def cpo_step(loss_gradient, cost_gradient, constraint, fvp: Callable, target_kl: float = 0.01,
             cg_iterations: int = 10, constrained: bool = True) -> CPOStep:  # fmt: skip
    """The CPO (or, with ``constrained=False``, TRPO) step.

    Args:
      loss_gradient: g [P], the gradient of the policy loss at theta_old.
      cost_gradient: b [P], the gradient of the surrogate cost.
      constraint: c [], the constraint's value (<= 0 is feasible).
      fvp: v -> (H + damping I) v, the damped Fisher-vector product.
      target_kl: delta, the trust region's size in mean KL.
      cg_iterations: conjugate-gradient steps for H^-1 g and H^-1 b.
      constrained: False gives TRPO's step (case 4) whatever c and b are.
    """
    g = tf.convert_to_tensor(loss_gradient)
    b = tf.cast(cost_gradient, g.dtype)
    c = tf.cast(constraint, g.dtype)
    delta = tf.cast(target_kl, g.dtype)
    v = conjugate_gradient(fvp, g, cg_iterations)
    hv = fvp(v)
    q = tf.tensordot(v, hv, 1)
    trpo_multiplier = tf.sqrt(tf.maximum(q, 0.0) / (2.0 * delta))
    if not constrained:
        zero = tf.zeros([], g.dtype)
        step = -v / (trpo_multiplier + EPSILON)
        return CPOStep(step, tf.constant(4, tf.int32), trpo_multiplier, zero, q, zero, zero)
    w = conjugate_gradient(fvp, b, cg_iterations)
    r = tf.tensordot(w, hv, 1)
    s = tf.tensordot(w, fvp(w), 1)
    safe_s = tf.where(tf.abs(s) > 0, s, tf.ones_like(s))  # Only case 4 can have s = 0.
    a_term = q - r * r / safe_s
    b_term = 2.0 * delta - c * c / safe_s
    unconstrained = (tf.tensordot(b, b, 1) <= 1e-8) & (c < 0)
    case = tf.where(
        unconstrained,
        4,
        tf.where(c < 0, tf.where(b_term < 0, 3, 2), tf.where(b_term >= 0, 1, 0)),
    )
    # The dual (cases 1 and 2); every branch is computed, the case picks.
    safe_c = tf.where(tf.abs(c) > 0, c, tf.ones_like(c))
    ratio = r / safe_c
    infinity = tf.constant(float("inf"), g.dtype)
    zero = tf.zeros([], g.dtype)
    a_low, a_high = tf.where(c < 0, zero, ratio), tf.where(c < 0, ratio, infinity)
    b_low, b_high = tf.where(c < 0, ratio, zero), tf.where(c < 0, infinity, ratio)
    safe_b_term = tf.where(b_term > 0, b_term, tf.ones_like(b_term))
    lambda_a = _project(tf.sqrt(tf.maximum(a_term / safe_b_term, 0.0)), a_low, a_high)
    lambda_b = _project(trpo_multiplier, b_low, b_high)
    f_a = -0.5 * (a_term / (lambda_a + EPSILON) + b_term * lambda_a) - r * c / (s + EPSILON)
    f_b = -0.5 * (q / (lambda_b + EPSILON) + 2.0 * delta * lambda_b)
    dual_multiplier = tf.where(f_a >= f_b, lambda_a, lambda_b)
    dual_cost_multiplier = tf.maximum(0.0, dual_multiplier * c - r) / (s + EPSILON)
    recovery_cost_multiplier = tf.sqrt(2.0 * delta / (s + EPSILON))
    trpo = (case == 3) | (case == 4)
    multiplier = tf.where(trpo, trpo_multiplier, tf.where(case == 0, zero, dual_multiplier))
    cost_multiplier = tf.where(
        trpo, zero, tf.where(case == 0, recovery_cost_multiplier, dual_cost_multiplier)
    )
    step = tf.where(
        case == 0,
        -cost_multiplier * w,
        -(v + cost_multiplier * w) / (multiplier + EPSILON),
    )
    return CPOStep(step, tf.cast(case, tf.int32), multiplier, cost_multiplier, q, r, s)


def accept_step(kl, loss_change, cost_change, case, constraint, target_kl: float = 0.01):
    """The line search's test of one candidate (bool []): mean KL <= delta; the
    loss not above the old one in cases 2-4 (in 0 and 1 feasibility comes
    first); the surrogate cost rising by at most max(-c, 0)."""
    constraint = tf.cast(constraint, cost_change.dtype)
    improves = (case <= 1) | (loss_change <= 0.0)
    within = cost_change <= tf.maximum(-constraint, 0.0)
    return (kl <= target_kl) & improves & within
