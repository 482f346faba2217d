"""Search spaces of hyperparameters, mapped to and from the unit cube.

A parameter is written ``name:low:high[:log][:int]`` on the command line
(``--space=discount:0.8:1,learning_rate:1e-5:1e-3:log,units:64:512:int``) or
under ``search_space:`` in ``configs/<agent>.yaml``. The proposers work in
``[0, 1]^D``; ``decode`` maps a unit point back to parameter values (log scale
in log space, integers rounded).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from saferl_tf.errors import ConfigError

DESIGNS = ("sobol", "lhs")


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self):
        if not self.low < self.high:
            raise ConfigError(
                f"search space: {self.name} needs low < high, got {self.low}, {self.high}"
            )
        if self.log and self.low <= 0:
            raise ConfigError(f"search space: {self.name} on a log scale needs low > 0")

    def encode(self, value: float) -> float:
        if self.log:
            return (math.log(value) - math.log(self.low)) / (
                math.log(self.high) - math.log(self.low)
            )
        return (value - self.low) / (self.high - self.low)

    def decode(self, unit: float) -> float | int:
        unit = min(max(float(unit), 0.0), 1.0)
        if self.log:
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + unit * (self.high - self.low)
        if self.integer:
            return int(min(max(round(value), math.ceil(self.low)), math.floor(self.high)))
        return value

    def to_text(self) -> str:
        flags = (":log" if self.log else "") + (":int" if self.integer else "")
        return f"{self.name}:{self.low:g}:{self.high:g}{flags}"


def parse_parameter(text: str) -> Parameter:
    """Parses ``name:low:high[:log][:int]``."""
    parts = [part.strip() for part in text.split(":")]
    if len(parts) < 3 or not parts[0]:
        raise ConfigError(
            f"search space: cannot read {text!r}; write name:low:high[:log][:int], "
            "for example discount:0.8:1 or learning_rate:1e-5:1e-3:log"
        )
    name, low, high, *options = parts
    unknown = [option for option in options if option not in ("log", "int", "linear", "real")]
    if unknown:
        raise ConfigError(
            f"search space: unknown option {unknown[0]!r} in {text!r}; accepted: log, int"
        )
    try:
        low_value, high_value = float(low), float(high)
    except ValueError:
        raise ConfigError(f"search space: bounds of {name} must be numbers, got {text!r}") from None
    return Parameter(name, low_value, high_value, "log" in options, "int" in options)


class SearchSpace:
    """An ordered set of parameters: unit points [N, D] <-> dicts of values."""

    def __init__(self, parameters: Sequence[Parameter]):
        if not parameters:
            raise ConfigError("the search space is empty: give --space or a search_space entry")
        names = [p.name for p in parameters]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ConfigError(f"search space: {', '.join(sorted(duplicates))} given twice")
        self.parameters = list(parameters)

    @classmethod
    def parse(cls, text: str) -> SearchSpace:
        return cls([parse_parameter(item) for item in text.split(",") if item.strip()])

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> SearchSpace:
        """From ``{name: "low:high[:log][:int]"}`` or ``{name: {low, high, log, int}}``."""
        parameters = []
        for name, spec in mapping.items():
            if isinstance(spec, str):
                parameters.append(parse_parameter(f"{name}:{spec}"))
            elif isinstance(spec, Mapping):
                parameters.append(
                    Parameter(
                        name,
                        float(spec["low"]),
                        float(spec["high"]),
                        bool(spec.get("log", False)),
                        bool(spec.get("int", False)),
                    )
                )
            else:
                raise ConfigError(f"search space: cannot read the entry for {name!r}")
        return cls(parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def dimension(self) -> int:
        return len(self.parameters)

    def decode(self, unit_point: Sequence[float]) -> dict[str, float | int]:
        return {p.name: p.decode(u) for p, u in zip(self.parameters, unit_point)}

    def encode(self, values: Mapping[str, float]) -> np.ndarray:
        return np.asarray([p.encode(values[p.name]) for p in self.parameters])

    def to_text(self) -> str:
        return ",".join(p.to_text() for p in self.parameters)

    def design(self, count: int, kind: str, seed: int) -> np.ndarray:
        """An initial design of ``count`` unit points [count, D]."""
        from scipy.stats import qmc

        if kind == "sobol":
            sampler = qmc.Sobol(self.dimension, scramble=True, seed=seed)
            # Sobol points are balanced in powers of two; take the first ``count``.
            points = sampler.random(2 ** max(math.ceil(math.log2(max(count, 1))), 0))[:count]
        elif kind == "lhs":
            points = qmc.LatinHypercube(self.dimension, seed=seed).random(count)
        else:
            raise ConfigError(f"unknown initial design {kind!r}; accepted: {', '.join(DESIGNS)}")
        return np.asarray(points, np.float64)
