"""Named searcher settings: the published GIBO experiments' configurations.

    values = preset_values("ars", "paper_synthetic", "synthetic:8:0")
    # {"directions": "2", "step_size": "0.02", "noise": "0.0418...", "std_ddof": "1"}

``--preset=NAME`` (``launchers/search.py``) applies a preset's values before
``--set``, so ``--set`` can still change any of them. A preset is a function of
the objective spec because the synthetic experiment scales several settings
with the dimension D through the generating lengthscale l_D
(``objectives.synthetic_lengthscale``); such presets accept only
``synthetic:D:INDEX`` objectives. Sources (sarmueller/gibo, read at 4671302):

gibo
  ``oracle``              the generating GP's hyperparameters held fixed (l_D, outputscale 1,
                          noise variance = the observation noise's), no fit: the upper
                          reference of the synthetic experiment (``set_hypers: True``).
  ``paper_synthetic``     the synthetic "MAP" run (``gibo_optimize.yaml``) as intended:
                          lengthscales uniform on [0.7, 1.3] l_D from l_D, outputscale
                          uniform on [0.1, 5] from 2.55, noise fixed at 0.01.
  ``paper_synthetic_as_run``  the same with the noise the published run actually kept,
                          gpytorch's default 0.6932 (its ``set_hypers`` check skipped the
                          line that sets 0.01).
  ``uninformed``          not published: the defaults with a lengthscale prior that knows
                          nothing of the function, uniform on [0.01, 1] from 0.5 (the
                          synthetic functions' own range is 0.2-0.78 for D = 4-16).
  ``paper_swimmer``       ``swimmer/gibo_10runs.yaml``: 16 queries, step 0.5, 32 points,
                          lengthscales uniform on [0.01, 0.3], noise 0.01, delta 0.1.
  ``paper_hopper``        ``hopper/gibo_10runs.yaml``: 32 queries, step 0.6 (SGD learning
                          rate 1 times the schedule's 0.6, which holds for the run's
                          ~240 iterations; its weight decay of 1e-5 is left out), 128
                          points, lengthscales uniform on [0.01, 0.5], noise 0.02, delta 0.2.
ars (Mania et al.'s naming: V1 without, V2 with observation normalization; -t with top < directions)
  ``paper_synthetic``     ``110620/rs.yaml``, V1: 1 + D//8 directions, all used, step 0.02,
                          exploration noise 0.1 l_D, sigma_R with ddof 1 (torch.std).
  ``paper_synthetic_map`` ``rs_optimize.yaml`` (the baseline of the MAP figure): noise 0.01.
  ``paper_swimmer``       ``swimmer/rs_10runs.yaml``: 1 direction, step 0.02, noise 0.01;
                          V2 with ``--normalize``, as published.
  ``paper_hopper``        ``hopper/rs_10runs.yaml``: 8 directions, top 4, step 0.01,
                          noise 0.025; V2-t with ``--normalize``, as published.
cmaes
  ``paper_synthetic``     ``110620/cmaes.yaml``: sigma 0.15 l_D, no bounds.
  ``paper_synthetic_map`` ``cmaes_optimize.yaml``: sigma 0.5, no bounds.
"""

from __future__ import annotations

from collections.abc import Callable

from saferl_tf.errors import ConfigError, UnknownNameError, did_you_mean
from saferl_tf.search.objectives import parse_objective_spec, synthetic_lengthscale

PAPER_SYNTHETIC_GIBO = {
    "lengthscale_prior": "paper_synthetic",
    "outputscale_prior_kind": "uniform",
    "outputscale_prior": "0.1,5.0",
    "outputscale": "2.55",
    "noise_variance": "0.01",
    "standardize": "false",
    "fit_when": "window_full",
    "epsilon": "none",
}
# gpytorch 1.2's GaussianLikelihood noise before any initialization: softplus(0) + 1e-4.
GPYTORCH_DEFAULT_NOISE = 0.6932


def _synthetic_dimension(preset: str, objective: str) -> int:
    kind, arguments = parse_objective_spec(objective)
    if kind != "synthetic":
        raise ConfigError(
            f"preset {preset!r} is the synthetic experiment's and needs a synthetic:D:INDEX "
            f"objective, not {objective!r}"
        )
    return int(arguments[0])


def _gibo_oracle(objective: str, noise_std: float) -> dict[str, str]:
    dimension = _synthetic_dimension("oracle", objective)
    return {
        "fit_hyperparameters": "false",
        "lengthscale": repr(synthetic_lengthscale(dimension)),
        "outputscale": "1.0",
        "noise_variance": repr(max(noise_std**2, 1e-6)),
        "standardize": "false",
        "epsilon": "none",
    }


def _synthetic(preset: str, values: dict[str, str]) -> Callable[[str, float], dict[str, str]]:
    def make(objective: str, noise_std: float) -> dict[str, str]:
        del noise_std
        _synthetic_dimension(preset, objective)
        return dict(values)

    return make


def _ars_paper_synthetic(noise: float | None):
    def make(objective: str, noise_std: float) -> dict[str, str]:
        del noise_std
        dimension = _synthetic_dimension("paper_synthetic", objective)
        exploration = 0.1 * synthetic_lengthscale(dimension) if noise is None else noise
        return {"directions": str(1 + dimension // 8), "top": "none", "step_size": "0.02",
                "noise": repr(exploration), "scale_by_std": "true", "std_ddof": "1"}  # fmt: skip

    return make


def _cmaes_paper_synthetic(objective: str, noise_std: float) -> dict[str, str]:
    del noise_std
    dimension = _synthetic_dimension("paper_synthetic", objective)
    return {"sigma": repr(0.15 * synthetic_lengthscale(dimension)), "bounded": "false"}


def _fixed(values: dict[str, str]) -> Callable[[str, float], dict[str, str]]:
    return lambda objective, noise_std: dict(values)


PRESETS: dict[str, dict[str, Callable[[str, float], dict[str, str]]]] = {
    "gibo": {
        "oracle": _gibo_oracle,
        "paper_synthetic": _synthetic("paper_synthetic", PAPER_SYNTHETIC_GIBO),
        "paper_synthetic_as_run": _synthetic(
            "paper_synthetic_as_run",
            {**PAPER_SYNTHETIC_GIBO, "noise_variance": repr(GPYTORCH_DEFAULT_NOISE)},
        ),
        "uninformed": _fixed(
            {"lengthscale_prior": "bounds", "lengthscale_bounds": "0.01,1.0", "lengthscale": "0.5"}
        ),
        "paper_swimmer": _fixed(
            {
                "max_queries": "16",
                "learning_rate": "0.5",
                "max_data": "32",
                "delta": "0.1",
                "lengthscale_prior": "bounds",
                "lengthscale_bounds": "0.01,0.3",
                "lengthscale": "0.155",
                "outputscale_prior_kind": "normal",
                "outputscale_prior": "2.0,1.0",
                "outputscale": "2.0",
                "noise_variance": "0.01",
                "standardize": "false",
                "fit_when": "window_full",
                "epsilon": "none",
            }
        ),  # fmt: skip
        "paper_hopper": _fixed(
            {
                "max_queries": "32",
                "learning_rate": "0.6",
                "max_data": "128",
                "delta": "0.2",
                "lengthscale_prior": "bounds",
                "lengthscale_bounds": "0.01,0.5",
                "lengthscale": "0.255",
                "outputscale_prior_kind": "normal",
                "outputscale_prior": "2.0,1.0",
                "outputscale": "2.0",
                "noise_variance": "0.02",
                "standardize": "false",
                "fit_when": "window_full",
                "epsilon": "none",
            }
        ),  # fmt: skip
    },
    "ars": {
        "paper_synthetic": _ars_paper_synthetic(None),
        "paper_synthetic_map": _ars_paper_synthetic(0.01),
        "paper_swimmer": _fixed(
            {
                "directions": "1",
                "top": "none",
                "step_size": "0.02",
                "noise": "0.01",
                "std_ddof": "1",
            }
        ),  # fmt: skip
        "paper_hopper": _fixed(
            {"directions": "8", "top": "4", "step_size": "0.01", "noise": "0.025", "std_ddof": "1"}
        ),  # fmt: skip
    },
    "cmaes": {
        "paper_synthetic": _cmaes_paper_synthetic,
        "paper_synthetic_map": _fixed({"sigma": "0.5", "bounded": "false"}),
    },
}


def preset_names(method: str) -> list[str]:
    return sorted(PRESETS.get(method, {}))


def preset_values(method: str, preset: str | None, objective: str,
                  noise_std: float = 0.1) -> dict[str, str]:  # fmt: skip
    """The searcher values ``preset`` sets for ``method`` on ``objective`` ({} for None)."""
    if not preset:
        return {}
    presets = PRESETS.get(method, {})
    if preset not in presets:
        accepted = ", ".join(presets) if presets else "none"
        raise UnknownNameError(
            f"unknown {method} preset {preset!r}{did_you_mean(preset, presets)}; "
            f"accepted: {accepted}"
        )
    return presets[preset](objective, noise_std)
