"""Local policy search: GIBO beside ARS, vanilla BO and CMA-ES.

- ``interface``: the ask / tell / run contract every searcher follows.
- ``gradient_gp``: the GP gradient posterior and the gradient-information
  acquisition; ``gibo``: ``GIBOSearcher``; ``baselines``: ARS, CMA-ES, BO.
- ``objectives``: GIBO's synthetic GP-sample functions and the objective specs
  of ``launchers/search.py`` (``synthetic:D:INDEX``, ``lqr``, environment ids);
  ``policies``: linear and MLP policies with a flat parameter view.
- ``methods``: searchers by name with typed configs; ``experiment``: one
  logged, resumable search run.
"""
