"""Trust-region pieces as pure TensorFlow functions: flat parameter vectors,
conjugate gradient, Fisher-vector products and a backtracking line search.

Used by TRPO and CPO (``saferl_tf.rl.cpo``) and by any agent that takes
natural-gradient steps. Every function works on float tensors, has a fixed
iteration count (so ``tf.function(jit_compile=True)`` traces it once), and is
checked against NumPy in ``tests/test_trust_region.py``.

Call sequence of one natural-gradient step::

    theta = flatten(policy.trainable_variables)                   # [P]
    fvp = lambda v: fisher_vector_product(mean_kl, theta, v, damping=0.1)
    direction = conjugate_gradient(fvp, gradient, iterations=10)   # ~ F^-1 g
    ... choose a step (TRPO: sqrt(2 delta / g'F^-1 g) F^-1 g; CPO: its dual) ...
    accepted, theta_new, k = backtracking_line_search(evaluate, theta, step, 10, 0.8)
    assign_flat(policy.trainable_variables, theta_new)

``mean_kl(theta)`` is the mean KL(pi_old || pi_theta) over a batch of states as
a function of the flat parameters (``stateless_call`` with ``unflatten``), so
the Fisher matrix is its Hessian at theta = theta_old.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf


def flatten(tensors: Sequence) -> tf.Tensor:
    """Tensors (or variables) -> one vector [P], in order."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)


def unflatten(vector, like: Sequence) -> list[tf.Tensor]:
    """A vector [P] -> tensors shaped as ``like`` (variables or tensors)."""
    parts, offset = [], 0
    for reference in like:
        shape = reference.shape
        size = shape.num_elements()
        parts.append(tf.reshape(vector[offset : offset + size], shape))
        offset += size
    if offset != vector.shape[0]:
        raise ValueError(f"a vector of {vector.shape[0]} values cannot fill tensors of "
                         f"{offset} values")  # fmt: skip
    return parts


def assign_flat(variables: Sequence[tf.Variable], vector) -> None:
    """Writes a vector [P] into ``variables``."""
    for variable, value in zip(variables, unflatten(vector, variables)):
        variable.assign(tf.cast(value, variable.dtype))


def conjugate_gradient(matvec: Callable, b, iterations: int = 10,
                       residual_tolerance: float = 1e-10) -> tf.Tensor:  # fmt: skip
    """Approximately solves A x = b for a symmetric positive-definite A given by
    ``matvec(v) = A v``; b [P] -> x [P]. Runs exactly ``iterations`` steps (for a
    fixed trace); once the squared residual is below ``residual_tolerance`` the
    remaining steps leave x unchanged (as the usual early exit)."""
    b = tf.convert_to_tensor(b)
    x = tf.zeros_like(b)
    r = b
    p = b
    rr = tf.tensordot(r, r, 1)

    def body(i, x, r, p, rr):
        active = rr >= residual_tolerance
        ap = matvec(p)
        # Guarded division: a converged (zero) residual would give 0 / 0.
        pap = tf.tensordot(p, ap, 1)
        alpha = tf.where(active, rr / tf.where(pap > 0, pap, tf.ones_like(pap)), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        new_rr = tf.tensordot(r, r, 1)
        beta = tf.where(active, new_rr / tf.where(rr > 0, rr, tf.ones_like(rr)), 0.0)
        p = tf.where(active, r + beta * p, p)
        rr = tf.where(active, new_rr, rr)
        return i + 1, x, r, p, rr

    _, x, _, _, _ = tf.while_loop(lambda i, *_: i < iterations, body,
                                  (tf.constant(0), x, r, p, rr))  # fmt: skip
    return x


def fisher_vector_product(mean_kl: Callable, theta, vector, damping: float = 0.1) -> tf.Tensor:
    """(H + damping I) v, H the Hessian of ``mean_kl(theta)`` (the mean
    KL(pi_old || pi_theta), zero with zero gradient at theta_old, so H is the
    Fisher information there), by differentiating (grad KL) . v once more."""
    theta = tf.convert_to_tensor(theta)
    vector = tf.stop_gradient(tf.convert_to_tensor(vector))
    with tf.GradientTape() as outer:
        outer.watch(theta)
        with tf.GradientTape() as inner:
            inner.watch(theta)
            kl = mean_kl(theta)
        gradient = inner.gradient(kl, theta)
        directional = tf.tensordot(gradient, vector, 1)
    return outer.gradient(directional, theta) + damping * vector


def backtracking_line_search(evaluate: Callable, theta, step, steps: int = 10,
                             factor: float = 0.8):  # fmt: skip
    """Tries theta + factor^k step for k = 0, ..., steps - 1 and takes the first
    that ``evaluate(candidate) -> bool []`` accepts.

    Returns (accepted bool [], the new parameters [P], k int32 []): the first
    accepted candidate, or theta itself and k = steps when none is accepted.
    Every candidate is evaluated (a fixed trace; ``steps`` is small)."""
    theta = tf.convert_to_tensor(theta)
    fractions = factor ** tf.range(steps, dtype=theta.dtype)
    accepted = tf.stack([evaluate(theta + fractions[k] * step) for k in range(steps)])
    found = tf.reduce_any(accepted)
    first = tf.argmax(tf.cast(accepted, tf.int32), output_type=tf.int32)
    new_theta = tf.where(found, theta + tf.gather(fractions, first) * step, theta)
    return found, new_theta, tf.where(found, first, steps)
