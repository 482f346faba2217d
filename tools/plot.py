"""Plots a results tree: the ``saferl-plot`` program, run from a source checkout.

See ``saferl_tf/cli/plot.py`` or ``--help``.
"""

from saferl_tf.cli.plot import run

if __name__ == "__main__":
    run()
