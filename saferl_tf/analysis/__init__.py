"""Analysis of finished runs: reading a results tree into curves, aggregating, plotting.

``results`` reads ``<data_path>/<algo>/<env>/<experiment>/metrics.jsonl`` (or the
TensorBoard events when that file is missing) and draws one figure per
environment; ``tools/plot.py`` is its command line. ``stats`` has the
interquartile mean and stratified-bootstrap intervals of its table, ``output``
the atomic figure writes and one-line output errors of the plot tools.
"""
