"""Local policy search: the ``saferl-search`` program, run from a source checkout.

See ``saferl_tf/cli/search.py`` or ``--help``.
"""

from saferl_tf.cli.search import run

if __name__ == "__main__":
    run()
