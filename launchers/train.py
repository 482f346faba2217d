"""Trains an agent: the ``saferl-train`` program, run from a source checkout.

See ``saferl_tf/cli/train.py`` or ``--help``.
"""

from saferl_tf.cli.train import run

if __name__ == "__main__":
    run()
