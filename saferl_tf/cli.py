"""Helpers shared by the absl launchers: ``--config.KEY=VALUE`` overrides,
importing user modules, and one-line errors with the right exit code."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from absl import flags, logging

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) hides the
# launcher's own output (TensorFlow errors still raise). An explicit setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from saferl_tf.errors import NonFiniteError, UserError

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
        fail(f"{error} (see --helpfull for the accepted flags)")
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
    from saferl_tf.training.loop import Interrupted

    try:
        main()
    except UserError as error:
        fail(str(error), error.exit_code)
    except NonFiniteError as error:
        fail(str(error), error.exit_code)
    except Interrupted as error:
        print(
            f"saferl_tf: {error}; checkpoint {error.checkpoint} written. "
            "Run the same command again to resume.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(error.exit_code)
