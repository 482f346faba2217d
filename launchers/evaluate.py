"""Evaluates a trained run: the ``saferl-evaluate`` program, run from a source checkout.

See ``saferl_tf/cli/evaluate.py`` or ``--help``.
"""

from saferl_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
