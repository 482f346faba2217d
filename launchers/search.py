"""Local policy search: GIBO, ARS, vanilla BO or CMA-ES on one objective.

    python launchers/search.py --method=gibo --objective=synthetic:8:0 --budget=300 --seed=0
    python launchers/search.py --method=ars --objective=gym_Swimmer-v4 --budget=500
    python launchers/search.py --method=gibo --objective=gym_Hopper-v4 --bias --normalize

Objectives: ``synthetic:D:INDEX`` (GIBO's GP-sample functions on [0, 1]^D,
saved under --functions_dir for reuse), ``lqr``, or any environment id (a
linear policy, ``--policy=mlp`` for an MLP; safety-gymnasium tasks log the
episode cost beside the return). Searcher settings: ``--set=KEY=VALUE,...``
(see ``saferl_tf/search/methods.py``). Logs go to
``<results_dir>/<method>/<objective>/<seed>/``; run the same command again to
resume a killed search. Plot runs with ``tools/plot_search.py``.
"""

from __future__ import annotations

from absl import app, flags

from saferl_tf import cli

flags.DEFINE_string("method", "gibo", "Searcher: gibo, ars, bo or cmaes.")
flags.DEFINE_string("objective", "synthetic:4:0", "synthetic:D:INDEX, lqr, or an environment id.")
flags.DEFINE_integer("budget", 300, "Objective evaluations.")
flags.DEFINE_integer("seed", 0, "Seed of the searcher, the noise and the environment.")
flags.DEFINE_list("set", [], "Searcher config values KEY=VALUE (e.g. delta=0.1,max_data=0).")
flags.DEFINE_string("results_dir", "results/search", "Root of the search results tree.")
flags.DEFINE_string("functions_dir", "results/synthetic_functions",
                    "Where generated synthetic functions are kept for reuse.")  # fmt: skip
flags.DEFINE_float("noise_std", 0.1, "Synthetic objectives: std of the observation noise.")
flags.DEFINE_integer("episodes", 1, "Environment objectives: episodes per evaluation.")
flags.DEFINE_enum("policy", "linear", ["linear", "mlp"], "Environment objectives: policy.")
flags.DEFINE_list("hidden", ["16"], "MLP policy: hidden layer sizes.")
flags.DEFINE_bool("bias", False, "Linear policy with an offset per action.")
flags.DEFINE_bool("normalize", False, "Standardize observations with running statistics.")
flags.DEFINE_integer("episode_length", None, "Environment objectives: step limit per episode.")
flags.DEFINE_list("imports", [], "Modules or .py files that register environments.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")

# --log_dir (the run folder) is absl's own flag.
FLAGS = flags.FLAGS


def main(argv):
    del argv
    cli.run_guarded(_search)


def _search():
    import json

    from saferl_tf.errors import ConfigError
    from saferl_tf.search.experiment import SearchSettings, run_search

    cli.import_user_modules(FLAGS.imports)
    values = {}
    for item in FLAGS.set:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ConfigError(f"--set item {item!r} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    try:
        hidden = tuple(int(size) for size in FLAGS.hidden)
    except ValueError:
        raise ConfigError(f"--hidden must be integers, got {','.join(FLAGS.hidden)}") from None
    summary = run_search(
        SearchSettings(
            method=FLAGS.method,
            objective=FLAGS.objective,
            budget=FLAGS.budget,
            seed=FLAGS.seed,
            values=values,
            log_dir=FLAGS.log_dir or None,
            results_dir=FLAGS.results_dir,
            functions_dir=FLAGS.functions_dir,
            noise_std=FLAGS.noise_std,
            episodes=FLAGS.episodes,
            policy=FLAGS.policy,
            hidden=hidden,
            bias=FLAGS.bias,
            normalize=FLAGS.normalize,
            episode_length=FLAGS.episode_length,
            progress=FLAGS.progress,
        )  # fmt: skip
    )
    shown = {k: v for k, v in summary.items() if k != "best_parameters"}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser)
