"""Local policy search: GIBO beside ARS, vanilla BO and CMA-ES.

    from saferl_tf.search import GIBOSearcher, SearchSettings, run_search

- ``interface``: the ask / tell / run (and state / load_state) contract every
  searcher follows.
- ``gradient_gp``: the GP gradient posterior and the gradient-information
  acquisition; ``gibo``: ``GIBOSearcher``; ``baselines``: ARS, CMA-ES, BO.
- ``objectives``: GIBO's synthetic GP-sample functions and the objective specs
  of ``launchers/search.py`` (``synthetic:D:INDEX``, ``lqr``, environment ids);
  ``policies``: linear and MLP policies with a flat parameter view.
- ``methods``: searchers by name with typed configs; ``experiment``: one
  logged, resumable search run; ``state``: its saved state (JSON and ``.npz``,
  no pickle).

The names below are imported on first use, so ``import saferl_tf.search``
stays as light as it was (no TensorFlow until a searcher is asked for).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Searcher": "interface",
    "SearchResult": "interface",
    "GIBOConfig": "gibo",
    "GIBOSearcher": "gibo",
    "ARSSearcher": "baselines",
    "BOSearcher": "baselines",
    "CMAESSearcher": "baselines",
    "ARSConfig": "methods",
    "BOConfig": "methods",
    "CMAESConfig": "methods",
    "make_searcher": "methods",
    "method_config": "methods",
    "make_objective": "objectives",
    "SearchSettings": "experiment",
    "run_search": "experiment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # Later lookups skip this function.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
