"""One policy-search run: what ``launchers/search.py`` calls.

``run_search(SearchSettings(method="gibo", objective="synthetic:8:0"))`` builds
the objective and the searcher, then asks, evaluates and tells ``budget``
times. The run folder defaults to ``<results_dir>/<method>/<objective>/<seed>/``
(the objective's folder name is ``synthetic-D8-f0``, ``saferl_LQR-v0`` or the
environment id), a results tree ``tools/plot.py`` and ``tools/plot_search.py``
read::

    config.json         the settings and the searcher's config
    metrics.jsonl       one row per evaluation (step = evaluations so far):
                        search/value, search/best_so_far, search/searcher_seconds,
                        search/objective_seconds and the objective's extras
                        (search/normalized_regret on synthetic functions,
                        search/episode_cost on environments)
    events.out.tfevents.*   the same scalars for TensorBoard
    search_state.json   searcher and objective after the last evaluation, with
    search_state-<hash>.npz   its arrays (``saferl_tf.search.state``: no pickle)
    summary.json        best value and parameters, timings, at the end

A killed run resumes from ``search_state.json`` (written after every
evaluation): the same command continues at the next evaluation, and asks for
the points the uninterrupted run would have asked for. The searcher is built
afresh from the settings and given its saved state (``Searcher.load_state``);
so is the objective. A state file that cannot be used, or a
``search_state.pkl`` from an earlier version (never unpickled), stops the run
with a one-line error and is left as it is. SIGINT or SIGTERM stops after the
evaluation in progress.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from saferl_tf import files
from saferl_tf.config import config_to_dict
from saferl_tf.errors import ConfigError, NonFiniteError
from saferl_tf.search import methods, presets
from saferl_tf.search import state as state_io
from saferl_tf.search.objectives import make_objective, parse_objective_spec
from saferl_tf.training.experiment import CONFIG_FILE, check_same_run

STATE_FILE = state_io.STATE_FILE
SUMMARY_FILE = "summary.json"


@dataclasses.dataclass
class SearchSettings:
    """Everything a search run is made from."""

    method: str = "gibo"
    objective: str = "synthetic:4:0"
    budget: int = 300
    seed: int = 0
    values: dict[str, str] = dataclasses.field(default_factory=dict)  # Searcher config.
    preset: str | None = None  # Named values applied before ``values`` (``presets``).
    run_dir: str | None = None
    results_dir: str = "results/search"
    functions_dir: str = "results/synthetic_functions"
    noise_std: float = 0.1  # Synthetic objectives: observation noise (std).
    episodes: int = 1  # Environment objectives: episodes per evaluation.
    policy: str = "linear"
    hidden: tuple[int, ...] = (16,)
    bias: bool = False
    normalize: bool = False
    episode_length: int | None = None
    reward_shift: float = 0.0  # Environment objectives: the searcher sees (r + shift) * scale.
    reward_scale: float = 1.0
    # Every this many evaluations (and after the last), the searcher's current
    # parameters are measured apart from the budget: noise-free on synthetic
    # functions, on episodes of their own with the raw reward on environments.
    iterate_every: int = 0
    iterate_episodes: int = 1
    progress: bool = True


def objective_folder(spec: str) -> str:
    kind, arguments = parse_objective_spec(spec)
    if kind == "synthetic":
        return f"synthetic-D{arguments[0]}-f{arguments[1]}"
    return arguments[0]


def run_dir_for(settings: SearchSettings) -> Path:
    if settings.run_dir:
        return Path(settings.run_dir)
    folder = objective_folder(settings.objective)
    return Path(settings.results_dir) / method_label(settings) / folder / str(settings.seed)


def method_label(settings: SearchSettings) -> str:
    """The method's folder name: ``gibo``, or ``gibo-oracle`` with a preset."""
    return f"{settings.method}-{settings.preset}" if settings.preset else settings.method


def searcher_values(settings: SearchSettings) -> dict[str, str]:
    """The preset's values, then ``--set``'s over them."""
    preset = presets.preset_values(settings.method, settings.preset, settings.objective,
                                   settings.noise_std)  # fmt: skip
    return {**preset, **settings.values}


def _check(settings: SearchSettings):
    if settings.budget < 1:
        raise ConfigError(f"--budget must be a positive integer, got {settings.budget}")
    if settings.episodes < 1:
        raise ConfigError(f"--episodes must be a positive integer, got {settings.episodes}")
    if settings.noise_std < 0:
        raise ConfigError(f"--noise_std must be >= 0, got {settings.noise_std}")
    if settings.iterate_every < 0 or settings.iterate_episodes < 1:
        raise ConfigError(
            f"--iterate_every must be >= 0 (0: never) and --iterate_episodes >= 1, got "
            f"{settings.iterate_every} and {settings.iterate_episodes}"
        )
    if settings.reward_scale <= 0:
        raise ConfigError(f"--reward_scale must be > 0, got {settings.reward_scale}")
    return methods.method_config(settings.method, searcher_values(settings))


def describe(settings: SearchSettings) -> str:
    """What ``run_search(settings)`` would do, after every check it makes before
    searching (method, its config, the objective spec); writes nothing."""
    config = _check(settings)
    parse_objective_spec(settings.objective)
    return (
        f"would run {settings.method} on {settings.objective} for {settings.budget} "
        f"evaluations into {run_dir_for(settings)}; config: {config_to_dict(config)}"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    files.write_atomically(path, data, files.RERUN_ADVICE)


def _record(settings: SearchSettings, config) -> dict:
    run = dataclasses.asdict(settings)
    run.pop("values")
    run.pop("progress")
    return {"method": settings.method, "objective": settings.objective,
            "searcher_config": config_to_dict(config), "run": run}  # fmt: skip


_RUN_KEYS = ("evaluations", "best_value", "best_parameters", "searcher_seconds",
             "objective_seconds")  # fmt: skip


def _resume(saved: dict, settings: SearchSettings, searcher, objective, path: Path) -> dict:
    """The run's counters from ``saved``, after loading its searcher and objective states."""
    if not isinstance(saved, dict):
        raise state_io.unusable(path, "it holds no search state")
    if (saved.get("method"), saved.get("objective_spec")) != (settings.method, settings.objective):
        raise state_io.unusable(
            path, f"it is a {saved.get('method')!r} search of {saved.get('objective_spec')!r}, "
            f"not {settings.method!r} of {settings.objective!r}",
        )  # fmt: skip
    try:
        state = {key: saved[key] for key in _RUN_KEYS}
        if "info" in saved:
            state["info"] = saved["info"]
        if not isinstance(state["evaluations"], int) or state["evaluations"] < 1:
            raise ValueError(f"bad evaluation count {state['evaluations']!r}")
        searcher.load_state(saved["searcher"])
        objective.load_state(saved["objective"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        name = type(error).__name__
        raise state_io.unusable(
            path, f"its {settings.method} state does not fit ({name}: {error})"
        ) from None
    return state


def _iterate_metrics(settings: SearchSettings, searcher, objective, at: int) -> dict[str, float]:
    iterate = searcher.iterate()
    if iterate is None:
        return {}
    measured = objective.evaluate_iterate(iterate, episodes=settings.iterate_episodes, at=at)
    return {f"search/{key}": value for key, value in measured.items()}


def run_search(settings: SearchSettings) -> dict:
    """Runs (or resumes) the search described by ``settings``; returns its summary."""

    config = _check(settings)
    run_dir = run_dir_for(settings)
    record = _record(settings, config)
    # A larger --budget continues a search; anything else must match.
    check_same_run(run_dir, record, ("method", "objective", "searcher_config"), "run",
                   what="search", ignore=("budget",))  # fmt: skip
    # Read (and check) a saved state before anything is built or written.
    saved = state_io.load(run_dir)
    files.make_folder(run_dir, "choose another --run_dir, or fix the permissions")
    with files.exclusive_lock(run_dir, "search", "choose another --run_dir"):
        return _run_search_locked(settings, config, run_dir, record, saved)


def _run_search_locked(settings: SearchSettings, config, run_dir: Path, record: dict, saved):
    from saferl_tf.training.logger import Logger
    from saferl_tf.training.loop import Interrupted, stop_on_signals
    from saferl_tf.training.progress import Progress

    state_path = run_dir / STATE_FILE
    _write_atomic(run_dir / CONFIG_FILE, (json.dumps(record, indent=2) + "\n").encode())
    objective = make_objective(
        settings.objective, seed=settings.seed, noise_std=settings.noise_std,
        episodes=settings.episodes, policy=settings.policy, hidden=settings.hidden,
        bias=settings.bias, normalize=settings.normalize,
        episode_length=settings.episode_length, reward_shift=settings.reward_shift,
        reward_scale=settings.reward_scale, cache_dir=settings.functions_dir,
    )  # fmt: skip
    searcher = methods.make_searcher(settings.method, objective, settings.seed,
                                     searcher_values(settings))  # fmt: skip
    if saved is not None:
        try:
            state = _resume(saved, settings, searcher, objective, state_path)
        except BaseException:
            objective.close()
            raise
        print(f"saferl_tf: resuming {run_dir} after evaluation {state['evaluations']}",
              file=sys.stderr, flush=True)  # fmt: skip
    else:
        state = {"evaluations": 0, "best_value": -math.inf, "best_parameters": None,
                 "searcher_seconds": 0.0, "objective_seconds": 0.0}  # fmt: skip
    logger = Logger(run_dir)
    logger.set_aside_after(state["evaluations"])
    print(
        f"saferl_tf: {settings.method} on {objective.name} ({objective.dimension} parameters, "
        f"{settings.budget} evaluations); logs in {run_dir}",
        file=sys.stderr,
        flush=True,
    )
    progress = Progress(settings.budget, state["evaluations"], settings.progress)
    stop: dict = {}
    try:
        # One BLAS thread: the searchers' linear algebra is tiny (at most a few
        # hundred points), and with every core busy (a training run beside
        # this one) OpenBLAS's spinning threads made GIBO 4-7x slower.
        with stop_on_signals(stop), threadpool_limits(1, user_api="blas"):
            while state["evaluations"] < settings.budget:
                started = time.perf_counter()
                parameters = np.asarray(searcher.ask(), np.float64)
                asked = time.perf_counter()
                value = float(objective(parameters))
                evaluated = time.perf_counter()
                if not math.isfinite(value):
                    raise NonFiniteError(
                        f"the objective returned {value} at evaluation {state['evaluations'] + 1}"
                        f"; stopped (the state after evaluation {state['evaluations']} is kept)"
                    )
                searcher.tell(parameters, value)
                told = time.perf_counter()
                state["evaluations"] += 1
                if value > state["best_value"]:
                    state["best_value"], state["best_parameters"] = value, parameters
                searcher_seconds = (asked - started) + (told - evaluated)
                state["searcher_seconds"] += searcher_seconds
                state["objective_seconds"] += evaluated - asked
                metrics = {"search/value": value, "search/best_so_far": state["best_value"],
                           "search/searcher_seconds": searcher_seconds,
                           "search/objective_seconds": evaluated - asked}  # fmt: skip
                state["info"] = objective.info()
                metrics.update({f"search/{k}": v for k, v in state["info"].items()})
                every, done = settings.iterate_every, state["evaluations"]
                if every and (done % every == 0 or done == settings.budget):
                    metrics.update(_iterate_metrics(settings, searcher, objective, done))
                logger.write(metrics, state["evaluations"])
                state_io.save(run_dir, {**state, "method": settings.method,
                                        "objective_spec": settings.objective,
                                        "searcher": searcher.state(),
                                        "objective": objective.state()})  # fmt: skip
                progress.update(1)
                progress.set(value=value, best=state["best_value"])
                if stop.get("signum"):
                    raise Interrupted(stop["signum"], state["evaluations"], str(state_path))
    finally:
        progress.close()
        logger.close()
        objective.close()
    summary = {
        "method": settings.method,
        "objective": settings.objective,
        "evaluations": state["evaluations"],
        "best_value": state["best_value"],
        "best_parameters": np.asarray(state["best_parameters"]).tolist(),
        "searcher_seconds_per_evaluation": state["searcher_seconds"] / state["evaluations"],
        "objective_seconds_per_evaluation": state["objective_seconds"] / state["evaluations"],
        **{f"final_{k}": v for k, v in state.get("info", {}).items()},
    }
    _write_atomic(run_dir / SUMMARY_FILE, (json.dumps(summary, indent=2) + "\n").encode())
    return summary
