"""Tunes an agent's hyperparameters with constrained Bayesian optimization.

    saferl-tune --agent=lambda --config=vector,cpu --env=sgym_Safexp-PointGoal2-v0 --safety \
        --space=discount:0.8:1,lambda_:0.8:1 --trials=30 --trial_steps=20000 --workers=2

(``python launchers/tune.py`` and ``python -m saferl_tf.cli.tune`` are the same
program.) Every trial is a full ``saferl-train`` run in
``<study_dir>/trial_<i>/``. The objective (final ``eval/episode_return``) and
the constraint (``eval/episode_cost`` or ``train/cost_rate`` <= the cost limit)
each get a GP; Trieste's expected constrained improvement picks the next point.
``--objective=penalty`` folds them as the LAMBDA-BO seed did; ``--backend=skopt``
minimizes that penalty with scikit-optimize. Trials run as ``--workers`` child
processes, or as Ray tasks with ``--executor=ray [--address=auto]
[--trial_cpus=1 --trial_gpus=0]``, a new point proposed as each trial ends.
Run the same command again to resume a killed study. ``--synthetic=gardner``
tunes a cheap test problem instead of training runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags

from saferl_tf import cli
from saferl_tf.cli.executors import check_executor_flags, define_executor_flags, executor_from_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("agent", "random", "Registered agent to tune.")
    flags.DEFINE_string("env", "sgym_Safexp-PointGoal2-v0", "Environment id.")
    flags.DEFINE_bool("safety", True, "Trials train with --safety.")
    flags.DEFINE_string("config", "", "Base presets/config files of every trial.")
    flags.DEFINE_string(
        "space",
        "",
        "name:low:high[:log][:int],... "
        "(default: the agent's search_space in saferl_tf/configs/<agent>.yaml).",
    )
    flags.DEFINE_integer("trials", 30, "Trials in the study (initial design included).")
    flags.DEFINE_integer("initial", 8, "Points of the initial design.")
    flags.DEFINE_enum("design", "sobol", ["sobol", "lhs"], "Initial design.")
    flags.DEFINE_integer("trial_steps", 20_000, "Environment steps of each training trial.")
    flags.DEFINE_integer("eval_episodes", 3, "Evaluation episodes at the end of each trial.")
    flags.DEFINE_string("study_dir", None, "Study folder (default results/tune/<agent>/<env>).")
    flags.DEFINE_string(
        "backend", "trieste",
        "BO library: trieste (constrained BO) or skopt (the folded penalty). Where trials run "
        "is --executor.",
    )  # fmt: skip
    flags.DEFINE_enum(
        "objective",
        "constrained",
        ["constrained", "penalty"],
        "Constrained EI, or EI on 100 cost_rate + episode_cost - return.",
    )
    flags.DEFINE_enum(
        "constraint",
        "episode_cost",
        ["episode_cost", "cost_rate"],
        "Constrained quantity (eval episode cost or training cost rate).",
    )
    flags.DEFINE_float("cost_limit", None, "Constraint limit (default: the agent config's).")
    flags.DEFINE_integer("seed", 0, "Seed of the design, the proposals and the trials.")
    flags.DEFINE_list(
        "train_args", [], "Extra flags for every saferl-train trial, comma-separated."
    )
    flags.DEFINE_list("imports", [], "Modules or .py files that register agents/environments.")
    flags.DEFINE_string("synthetic", None, "Tune a synthetic problem (gardner) instead.")
    flags.DEFINE_float("synthetic_sleep", 0.0, "Seconds each synthetic trial sleeps.")
    define_executor_flags(
        "Trials run at once (default: 1 locally; on Ray, as many as the cluster fits)."
    )


def run(argv: Sequence[str] | None = None) -> None:
    """The ``saferl-tune`` entry point; ``argv`` as ``sys.argv`` (program name first)."""
    cli.launch(__doc__, define_flags, _tune, argv)


def _tune():
    import sys
    from pathlib import Path

    from saferl_tf.bo.space import SearchSpace
    from saferl_tf.bo.synthetic import PROBLEMS
    from saferl_tf.bo.trials import TrialSpec
    from saferl_tf.bo.tuner import Tuner, TunerSettings
    from saferl_tf.errors import ConfigError, UnknownNameError, did_you_mean

    cli.import_user_modules(FLAGS.imports)
    check_executor_flags()
    if FLAGS.backend in ("ray", "local"):
        raise ConfigError(
            f"--backend names the BO library (trieste, skopt); to run trials "
            f"{'on Ray' if FLAGS.backend == 'ray' else 'locally'}, use --executor={FLAGS.backend}"
        )
    objective = FLAGS.objective
    if FLAGS.backend == "skopt" and objective != "penalty":
        print("note: --backend=skopt minimizes the penalty objective", file=sys.stderr)
        objective = "penalty"
    if FLAGS.synthetic:
        if FLAGS.synthetic not in PROBLEMS:
            raise UnknownNameError(
                f"unknown synthetic problem {FLAGS.synthetic!r}"
                f"{did_you_mean(FLAGS.synthetic, PROBLEMS)}; accepted: {', '.join(PROBLEMS)}"
            )
        problem = PROBLEMS[FLAGS.synthetic]
        space = FLAGS.space or problem.space.to_text()
        cost_limit = problem.limit if FLAGS.cost_limit is None else FLAGS.cost_limit
        spec = TrialSpec(agent=None, env=None, synthetic=FLAGS.synthetic,
                         synthetic_sleep=FLAGS.synthetic_sleep, seed=FLAGS.seed)  # fmt: skip
        study_dir = FLAGS.study_dir or f"results/tune/synthetic/{FLAGS.synthetic}"
    else:
        from saferl_tf.agents.base import agent_class, preset_names
        from saferl_tf.config import build_config, search_space_for
        from saferl_tf.envs import parse_env_id

        cls = agent_class(FLAGS.agent)
        parse_env_id(FLAGS.env)
        config = build_config(cls.Config, preset_names(cls), FLAGS.config)
        space = FLAGS.space
        if not space:
            declared = search_space_for(preset_names(cls))
            if not declared:
                raise ConfigError(
                    f"no search space: give --space=name:low:high,... or a search_space "
                    f"entry in saferl_tf/configs/{FLAGS.agent}.yaml"
                )
            space = SearchSpace.from_mapping(declared).to_text()
        unknown = [p.name for p in SearchSpace.parse(space).parameters
                   if not hasattr(config, p.name)]  # fmt: skip
        if unknown:
            raise UnknownNameError(
                f"search space names unknown config key {unknown[0]!r} of "
                f"{cls.Config.__name__}{did_you_mean(unknown[0], vars(config))}"
            )
        cost_limit = config.cost_limit if FLAGS.cost_limit is None else FLAGS.cost_limit
        spec = TrialSpec(
            agent=FLAGS.agent,
            env=FLAGS.env,
            base_config=FLAGS.config,
            trial_steps=FLAGS.trial_steps,
            eval_episodes=FLAGS.eval_episodes,
            safety=FLAGS.safety,
            seed=FLAGS.seed,
            imports=tuple(
                str(Path(i).resolve()) if i.endswith(".py") else i for i in FLAGS.imports
            ),  # fmt: skip
            train_args=tuple(FLAGS.train_args),
        )
        study_dir = FLAGS.study_dir or f"results/tune/{FLAGS.agent}/{FLAGS.env}"
    settings = TunerSettings(
        study_dir=study_dir,
        space=space,
        trials=FLAGS.trials,
        initial=FLAGS.initial,
        design=FLAGS.design,
        backend=FLAGS.backend,
        objective=objective,
        constraint=FLAGS.constraint,
        cost_limit=cost_limit,
        workers=FLAGS.workers or 1,
        seed=FLAGS.seed,
    )
    if FLAGS.dry_run:
        space = Tuner.check(settings)
        print(
            f"dry run: would tune {spec.agent or spec.synthetic} "
            f"on {spec.env or 'a synthetic problem'} over {space.to_text()} "
            f"({settings.trials} trials, {settings.backend}) in {study_dir}"
        )
        return
    tuner = Tuner(settings, spec)
    executor = executor_from_flags(study_dir)
    settings.workers = executor.slots
    tuner.executor = executor
    tuner.run()


if __name__ == "__main__":
    run()
