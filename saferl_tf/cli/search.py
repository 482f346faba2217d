"""Local policy search: GIBO, ARS, vanilla BO or CMA-ES on one objective.

    saferl-search --method=gibo --objective=synthetic:8:0 --budget=300 --seed=0
    saferl-search --method=ars --objective=gym_Swimmer-v4 --budget=500
    saferl-search --method=gibo --objective=gym_Hopper-v4 --bias --normalize

(``python launchers/search.py`` and ``python -m saferl_tf.cli.search`` are the
same program.) Objectives: ``synthetic:D:INDEX`` (GIBO's GP-sample functions on
[0, 1]^D, saved under --functions_dir for reuse), ``lqr``, or any environment id
(a linear policy, ``--policy=mlp`` for an MLP; safety-gymnasium tasks log the
episode cost beside the return). Searcher settings: ``--set=KEY=VALUE,...``
(see ``saferl_tf/search/methods.py``). Logs go to
``<results_dir>/<method>/<objective>/<seed>/`` or the folder ``--run_dir``
names; run the same command again to resume a killed search. Plot runs with
``tools/plot_search.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("method", "gibo", "Searcher: gibo, ars, bo or cmaes.")
    flags.DEFINE_string(
        "objective", "synthetic:4:0", "synthetic:D:INDEX, lqr, or an environment id."
    )
    flags.DEFINE_integer("budget", 300, "Objective evaluations.")
    flags.DEFINE_integer("seed", 0, "Seed of the searcher, the noise and the environment.")
    flags.DEFINE_list(
        "set",
        [],
        "Searcher config values KEY=VALUE (e.g. delta=0.1,max_data=0; "
        "a pair: lengthscale_bounds=0.01,0.5).",
    )
    flags.DEFINE_string(
        "preset",
        None,
        "Named searcher settings applied before --set: the published GIBO experiments' "
        "(gibo: oracle, paper_synthetic, paper_synthetic_as_run, uninformed, paper_swimmer, "
        "paper_hopper; "
        "ars: paper_synthetic, paper_synthetic_map, paper_swimmer, paper_hopper; "
        "cmaes: paper_synthetic, paper_synthetic_map; see saferl_tf/search/presets.py).",
    )
    flags.DEFINE_string(
        "run_dir",
        None,
        "The run folder (default: <results_dir>/<method>/<objective>/<seed>). "
        "--log_dir is its deprecated old name.",
    )
    flags.DEFINE_string("results_dir", "results/search", "Root of the search results tree.")
    flags.DEFINE_string(
        "functions_dir",
        "results/synthetic_functions",
        "Where generated synthetic functions are kept for reuse.",
    )
    flags.DEFINE_float("noise_std", 0.1, "Synthetic objectives: std of the observation noise.")
    flags.DEFINE_integer("episodes", 1, "Environment objectives: episodes per evaluation.")
    flags.DEFINE_enum("policy", "linear", ["linear", "mlp"], "Environment objectives: policy.")
    flags.DEFINE_list("hidden", ["16"], "MLP policy: hidden layer sizes.")
    flags.DEFINE_bool("bias", False, "Linear policy with an offset per action.")
    flags.DEFINE_bool("normalize", False, "Standardize observations with running statistics.")
    flags.DEFINE_integer("episode_length", None, "Environment objectives: step limit per episode.")
    flags.DEFINE_float(
        "reward_shift", 0.0, "Environment objectives: the searcher sees (r + shift) * scale."
    )
    flags.DEFINE_float("reward_scale", 1.0, "Environment objectives: see --reward_shift.")
    flags.DEFINE_integer(
        "iterate_every",
        0,
        "Every N evaluations (and after the last) measure the searcher's current parameters "
        "apart from the budget: noise-free on synthetic functions, on episodes of their own "
        "with the raw reward on environments (0: never).",
    )
    flags.DEFINE_integer("iterate_episodes", 1, "Episodes per --iterate_every measurement.")
    flags.DEFINE_list("imports", [], "Modules or .py files that register environments.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")


def parse_set(items) -> dict[str, str]:
    """--set's comma-split items as {key: value}. An item without '=' continues
    the value before it, so a pair takes both numbers: ``bounds=0.01,0.5``."""
    from saferl_tf.errors import ConfigError

    values: dict[str, str] = {}
    key = None
    for item in items:
        name, separator, value = item.partition("=")
        if separator and name.strip():
            key = name.strip()
            values[key] = value.strip()
        elif key is not None and not separator:
            values[key] += "," + item.strip()
        else:
            raise ConfigError(f"--set item {item!r} is not KEY=VALUE")
    return values


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-search`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _search, argv)


def _search():
    import json

    from saferl_tf.errors import ConfigError
    from saferl_tf.search.experiment import SearchSettings, describe, run_search

    run_dir = cli.run_dir_flag()
    cli.import_user_modules(FLAGS.imports)
    values = parse_set(FLAGS.set)
    try:
        hidden = tuple(int(size) for size in FLAGS.hidden)
    except ValueError:
        raise ConfigError(f"--hidden must be integers, got {','.join(FLAGS.hidden)}") from None
    settings = SearchSettings(
        method=FLAGS.method,
        objective=FLAGS.objective,
        budget=FLAGS.budget,
        seed=FLAGS.seed,
        values=values,
        preset=FLAGS.preset,
        run_dir=run_dir,
        results_dir=FLAGS.results_dir,
        functions_dir=FLAGS.functions_dir,
        noise_std=FLAGS.noise_std,
        episodes=FLAGS.episodes,
        policy=FLAGS.policy,
        hidden=hidden,
        bias=FLAGS.bias,
        normalize=FLAGS.normalize,
        episode_length=FLAGS.episode_length,
        reward_shift=FLAGS.reward_shift,
        reward_scale=FLAGS.reward_scale,
        iterate_every=FLAGS.iterate_every,
        iterate_episodes=FLAGS.iterate_episodes,
        progress=FLAGS.progress,
    )
    if FLAGS.dry_run:
        print(f"dry run: {describe(settings)}")
        return
    summary = run_search(settings)
    shown = {k: v for k, v in summary.items() if k != "best_parameters"}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    run()
