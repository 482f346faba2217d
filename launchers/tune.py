"""Tunes an agent's hyperparameters: the ``saferl-tune`` program, run from a source checkout.

See ``saferl_tf/cli/tune.py`` or ``--help``.
"""

from saferl_tf.cli.tune import run

if __name__ == "__main__":
    run()
