"""Independent L-BFGS-B runs whose function evaluations are batched.

Acquisition optimizers start L-BFGS-B from several points. Solving them as one
problem (the summed value) couples their convergence: the run stops only when
the sum's relative reduction is small, and the restarts' very different
scales made that take 300-2,000 iterations per proposal here. Run apart, each
needs a few dozen, but one evaluation per run per iteration costs as much as a
batched one (the time is per call, not per point). This runs SciPy's L-BFGS-B
once per start, each in its own thread, in lockstep: in every round each live
run hands in its next point and one batched call answers them all (BoTorch's
``fmin_l_bfgs_b_batched`` does the same by porting SciPy's internals; threads
keep to SciPy's public API)::

    results = minimize_batched(value_and_gradient, starts [R, D], bounds)
    # value_and_gradient(points [B, D]) -> (values [B], gradients [B, D]), B <= R
    # results: R scipy.optimize.OptimizeResult, each of its own run
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np

# BoTorch's gen_candidates_scipy caps each run at 2,000 iterations.
MAX_ITERATIONS = 2000


def minimize_batched(
    value_and_gradient: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    starts: np.ndarray,
    bounds: Sequence[tuple[float, float]],
    max_iterations: int = MAX_ITERATIONS,
) -> list:
    """Minimize from each row of ``starts`` [R, D] independently; the function
    sees only the points of runs still going, stacked [B, D]. Errors in the
    function or in a run are raised here after every thread has stopped."""
    from scipy.optimize import minimize

    starts = np.asarray(starts, np.float64)
    if starts.ndim != 2:
        raise ValueError(f"starts must be [runs, dimension], got shape {starts.shape}")
    count = len(starts)
    requests: queue.Queue = queue.Queue()
    replies = [queue.Queue(maxsize=1) for _ in range(count)]
    results: list = [None] * count
    interrupt: list[BaseException] = []  # Set once, from the caller's thread.

    def run(index: int) -> None:
        def function(point):
            if interrupt:
                raise interrupt[0]
            requests.put((index, np.array(point, np.float64)))
            reply = replies[index].get()
            if isinstance(reply, BaseException):
                raise reply
            return reply

        try:
            options = {"maxiter": max_iterations}
            results[index] = minimize(function, starts[index], jac=True, method="L-BFGS-B",
                                      bounds=bounds, options=options)  # fmt: skip
        except BaseException as error:  # noqa: BLE001 (re-raised below, in the caller's thread)
            results[index] = error
        finally:
            requests.put((index, None))  # This run hands in nothing more.

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    live = count
    try:
        while live:
            # Every live run hands in exactly one message per round: a point, or
            # that it has finished.
            batch = []
            for _ in range(live):
                index, point = requests.get()
                if point is None:
                    live -= 1
                else:
                    batch.append((index, point))
            if not batch:
                continue
            # In run order, not arrival order: a row's value may depend on its place
            # in the batch (vectorized kernels round differently), and the threads
            # arrive in any order.
            batch.sort(key=lambda item: item[0])
            try:
                values, gradients = value_and_gradient(np.stack([point for _, point in batch]))
                answers = [(float(values[k]), np.asarray(gradients[k], np.float64))
                           for k in range(len(batch))]  # fmt: skip
            except Exception as error:  # noqa: BLE001 (handed to every waiting run)
                answers = [error] * len(batch)
            for (index, _), answer in zip(batch, answers):
                replies[index].put(answer)
    except BaseException as error:
        # Interrupted (KeyboardInterrupt in this thread): every run ends at its
        # next evaluation, or now if it is waiting for one, so no thread is
        # left blocked for the rest of the process.
        interrupt.append(error)
        for reply in replies:
            with contextlib.suppress(queue.Full):
                reply.put_nowait(error)
        raise
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
