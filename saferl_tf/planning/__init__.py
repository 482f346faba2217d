"""Planners over action sequences that the planning agents share: the
cross-entropy method (``cem``), its min-max form over hallucinated controls
(``minmax``) and the objectives they score on a dynamics ensemble
(``objectives``)."""
