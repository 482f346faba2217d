"""Searchers by name, each with a typed config that ``--set KEY=VALUE`` edits.

    searcher = make_searcher("gibo", objective, seed=0, values={"delta": "0.1"})

``gibo``: ``GIBOConfig``; ``ars``: ``ARSConfig`` (Mania et al.'s ARS V1 by
default: every direction, the step divided by the std of the rewards; V2 when
the objective normalizes observations, ``--normalize``; ``top=B`` below
``directions`` keeps the B best, V1-t / V2-t; ``scale_by_std=false`` is basic
random search);
``bo``: ``BOConfig`` (needs bounds: the objective's, or ``low``/``high``);
``cmaes``: ``CMAESConfig``. Defaults follow GIBO's synthetic experiment and the
issue: ARS step 0.02, exploration noise 0.02.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from saferl_tf.config import apply_values, config_to_dict
from saferl_tf.errors import ConfigError, UnknownNameError, did_you_mean
from saferl_tf.search.gibo import GIBOConfig, GIBOSearcher


@dataclasses.dataclass
class ARSConfig:
    step_size: float = 0.02
    noise: float = 0.02
    directions: int = 8
    top: int | None = None  # b best directions (the -t variants); None: all of them.
    scale_by_std: bool = True  # Divide by sigma_R (ARS); false: basic random search.
    std_ddof: int = 0  # sigma_R's delta degrees of freedom (1: unbiased, as torch.std).


@dataclasses.dataclass
class CMAESConfig:
    sigma: float = 0.2
    population: int | None = None  # None: cma's default 4 + 3 ln D.
    bounded: bool = True  # Keep samples in the objective's box (false: unbounded, as published).


@dataclasses.dataclass
class BOConfig:
    initial: int | None = None  # Sobol design points; None: max(2 D, 4).
    low: float | None = None  # Box for objectives without bounds (every coordinate).
    high: float | None = None


CONFIGS = {"gibo": GIBOConfig, "ars": ARSConfig, "bo": BOConfig, "cmaes": CMAESConfig}


def method_config(method: str, values: Mapping[str, str] | None = None):
    if method not in CONFIGS:
        raise UnknownNameError(
            f"unknown search method {method!r}{did_you_mean(method, CONFIGS)}; "
            f"accepted: {', '.join(CONFIGS)}"
        )
    config = CONFIGS[method]()
    if values:
        config = apply_values(config, values, f"--set for {method}")
    return config


def make_searcher(method: str, objective, seed: int = 0, values: Mapping[str, str] | None = None):
    """A searcher for ``objective`` (its ``initial`` point and ``bounds``)."""
    from saferl_tf.search.baselines import ARSSearcher, BOSearcher, CMAESSearcher

    config = method_config(method, values)
    initial, bounds = objective.initial, objective.bounds
    if method == "gibo":
        from saferl_tf.search.objectives import SyntheticObjective

        coordinates = objective if getattr(objective, "reexpresses_parameters", False) else None
        return GIBOSearcher(initial, config, bounds=bounds, seed=seed, coordinates=coordinates,
                            synthetic=isinstance(objective, SyntheticObjective))  # fmt: skip
    if method == "ars":
        return ARSSearcher(initial, seed=seed, **config_to_dict(config))
    if method == "cmaes":
        return CMAESSearcher(initial, config.sigma, config.population,
                             bounds if config.bounded else None, seed)  # fmt: skip
    if config.low is not None and config.high is not None:
        if not config.low < config.high:
            raise ConfigError(f"bo needs low < high, got low={config.low} high={config.high}")
        size = len(initial)
        bounds = (np.full(size, config.low), np.full(size, config.high))
    if bounds is None:
        raise ConfigError(
            "bo needs a box: this objective has no bounds; pass --set=low=-1,high=1 (for example)"
        )
    return BOSearcher(bounds, config.initial, seed=seed)
