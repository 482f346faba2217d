"""The command-line programs and the helpers they share.

Each program is a module here with a ``run()`` entry: ``train`` (the
``saferl-train`` console script and ``launchers/train.py``), ``search``
(``saferl-search``) and ``tune`` (``saferl-tune``). ``launch`` starts any of
them the same way; the helpers give ``--config.KEY=VALUE`` overrides, import
user modules, and turn user errors into one line and the right exit code.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from absl import app, flags, logging

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) hides the
# launcher's own output (TensorFlow errors still raise). An explicit setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from saferl_tf.errors import ConfigError, NonFiniteError, UserError

CONFIG_OVERRIDES: dict[str, str] = {}


def fail(message: str, exit_code: int = 2):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(exit_code)


def split_config_overrides(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Separates ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) from other args."""
    rest, overrides = [], {}
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--config."):
            key, sep, value = arg[len("--config.") :].partition("=")
            if not sep:
                if index + 1 >= len(args):
                    fail(f"{arg} needs a value, as in {arg}=VALUE")
                index += 1
                value = args[index]
            if not key:
                fail(f"{arg}: name a config key, as in --config.KEY=VALUE")
            overrides[key] = value
        else:
            rest.append(arg)
        index += 1
    return rest, overrides


def flags_parser(argv: Sequence[str]) -> list[str]:
    """An ``app.run`` flags parser: overrides go to CONFIG_OVERRIDES, errors are one line."""
    rest, overrides = split_config_overrides(argv)
    CONFIG_OVERRIDES.clear()
    CONFIG_OVERRIDES.update(overrides)
    try:
        remaining = flags.FLAGS(rest)
    except flags.Error as error:
        hint = ""
        if "Unknown command line flag 'backend'" in str(error):
            hint = "; where runs go is --executor=local|ray (--backend is saferl-tune's BO library)"
        fail(f"{error}{hint} (see --helpfull for the accepted flags)")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    return remaining


def import_user_modules(specs: Sequence[str]) -> None:
    """Imports modules named by dotted path or by .py file (to register agents)."""
    for spec in specs:
        try:
            if spec.endswith(".py"):
                path = Path(spec)
                if not path.exists():
                    raise UserError(f"--imports: file {spec} does not exist")
                module_spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[path.stem] = module
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except ModuleNotFoundError as error:
            raise UserError(f"--imports: cannot import {spec!r} ({error})") from None


def run_guarded(main: Callable[[], object]) -> None:
    """Runs ``main``; user errors become one line and an exit code, never a traceback."""
    try:
        main()
    except (UserError, NonFiniteError) as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        # Outside the loop's own handling (start-up, compilation): nothing was lost
        # that a checkpoint held, and a traceback would only hide that.
        print("saferl_tf: stopped by Ctrl-C; its last checkpoint, if any, is kept",
              file=sys.stderr, flush=True)  # fmt: skip
        sys.exit(130)
    except Exception as error:
        # The loop's Interrupted is looked up, not imported: importing the loop loads
        # TensorFlow, which programs that never train (plots) should not wait for.
        loop = sys.modules.get("saferl_tf.training.loop")
        if loop is None or not isinstance(error, loop.Interrupted):
            raise
        # The message names the checkpoint written (or kept) and how to resume.
        print(f"saferl_tf: {error}.", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)


def launch(
    doc: str,
    define_flags: Callable[[], None],
    main: Callable[[], object],
    argv: Sequence[str] | None = None,
) -> None:
    """Defines a program's flags, parses ``argv`` and runs ``main`` under ``run_guarded``.

    The console script, ``launchers/<name>.py`` and ``python -m saferl_tf.cli.<name>``
    all come here, so they accept the same flags and print the same help.
    """
    defined_before = set(flags.FLAGS)
    define_flags()  # Here, not at import: the programs' modules share flag names.
    flags.DEFINE_bool(
        "dry_run",
        False,
        "Check the flags, names and configs, print what would run, and stop (nothing is written).",
    )
    # absl's --help prints __main__'s docstring and the key flags of the module
    # named sys.argv[0]; a console script is neither, so hand both over.
    for name in set(flags.FLAGS) - defined_before:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    # absl formats the docstring with %: a literal "95% s..." must be doubled.
    sys.modules["__main__"].__doc__ = doc.replace("%", "%%")

    def app_main(remaining: Sequence[str]) -> None:
        if len(remaining) > 1:
            fail(f"unexpected argument {remaining[1]!r}; flags take the form --name=value")
        run_guarded(main)

    app.run(app_main, argv=None if argv is None else list(argv), flags_parser=flags_parser)


def run_dir_flag() -> str | None:
    """The run folder from --run_dir, or from absl's --log_dir, its deprecated old name.

    ``--log_dir`` belongs to absl (its folder for log files), so a program cannot
    redefine it; an old command line that gives it still lands in the folder it names.
    """
    if flags.FLAGS["log_dir"].present:
        if flags.FLAGS["run_dir"].present:
            raise ConfigError("--log_dir is the deprecated name of --run_dir; give only --run_dir")
        print(
            "note: --log_dir is deprecated for the run folder; use --run_dir",
            file=sys.stderr,
            flush=True,
        )
        return flags.FLAGS.log_dir or None
    return flags.FLAGS.run_dir or None
