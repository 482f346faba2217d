"""Trains agents x environments x seeds: ``saferl-sweep``, run from a source checkout.

See ``saferl_tf/cli/sweep.py`` or ``--help``.
"""

from saferl_tf.cli.sweep import run

if __name__ == "__main__":
    run()
