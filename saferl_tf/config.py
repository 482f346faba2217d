"""Typed agent configs, named presets and ``key=value`` overrides.

Every agent has a dataclass ``Config`` (subclassing ``AgentConfig``) with its
defaults. A config is built in layers, each checked against the dataclass::

    defaults  <-  presets / files named by --config  <-  --config.KEY=VALUE

``--config`` takes a comma-separated list; each item is a preset name from
``configs/<agent>.yaml`` (for example ``debug``) or the path of a YAML or JSON
file holding a flat mapping of keys. Unknown keys, presets and ill-typed
values raise ``ConfigError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from saferl_tf.errors import ConfigError, UnknownNameError, did_you_mean


@dataclasses.dataclass
class AgentConfig:
    """Settings every agent has. Launcher flags of the same name override them.

    Attributes:
      observation: 'vector' or 'pixels'.
      action_repeat: environment steps per agent action.
      safety: whether cost enters the objective (otherwise only logged).
      cost_limit: the constraint budget of episode cost.
      jit: compile train steps with XLA (``tf.function(jit_compile=True)``).
      replay_capacity: the most environment transitions kept in memory.
    """

    observation: str = "vector"
    action_repeat: int = 1
    safety: bool = False
    cost_limit: float = 25.0
    jit: bool = True
    replay_capacity: int = 1_000_000


def configs_dir() -> Path:
    """The folder of preset files: $SAFERL_TF_CONFIGS or the package's configs/.

    The presets ship inside the package (package data), so an installed wheel
    finds them wherever it runs from.
    """
    override = os.environ.get("SAFERL_TF_CONFIGS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "configs"


def field_names(config_class: type) -> list[str]:
    return [field.name for field in dataclasses.fields(config_class)]


def _unwrap_optional(annotation) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _parse_text(annotation, text: str):
    """Parses a command-line string into ``annotation``'s type."""
    base, optional = _unwrap_optional(annotation)
    if optional and text.lower() in ("none", "null"):
        return None
    if base is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if base is int:
        return int(float(text)) if float(text).is_integer() else int(text)
    if base is float:
        return float(text)
    if base is str:
        return text
    if typing.get_origin(base) in (tuple, list):
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return _sequence(base, parts, _parse_text)
    return yaml.safe_load(text)


def _sequence(annotation, values, convert):
    """Converts each item of ``values`` to its type in ``annotation`` (``list[X]``,
    ``tuple[X, ...]`` or fixed-length ``tuple[X, Y]``), checking the length."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(values) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values, got {len(values)}")
        items = list(args)
    else:
        items = [args[0] if args else Any] * len(values)
    converted = []
    for position, (item, value) in enumerate(zip(items, values)):
        try:
            converted.append(value if item is Any else convert(item, value))
        except (ValueError, TypeError) as error:
            raise ValueError(f"item {position + 1} ({value!r}): {error}") from None
    return tuple(converted) if origin is tuple else converted


def _coerce(annotation, value):
    """Checks a value from a file or code against ``annotation``."""
    if isinstance(value, str) and annotation is not str:
        return _parse_text(annotation, value)
    base, optional = _unwrap_optional(annotation)
    if value is None:
        if optional:
            return None
        raise ValueError("None is not accepted")
    if base is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if typing.get_origin(base) in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return _sequence(base, list(value), _coerce)
    if base in (int, float, str, bool) and (
        not isinstance(value, base) or (base is int and isinstance(value, bool))
    ):
        raise ValueError(f"expected {base.__name__}")
    return value


def apply_values(config, values: Mapping[str, Any], source: str):
    """Returns a copy of ``config`` with ``values`` set; ``source`` names them in errors."""
    hints = typing.get_type_hints(type(config))
    names = field_names(type(config))
    changes = {}
    for key, value in values.items():
        if key not in hints or key not in names:
            raise UnknownNameError(
                f"unknown config key {key!r} in {source}{did_you_mean(key, names)}; "
                f"accepted keys of {type(config).__name__}: {', '.join(names)}"
            )
        try:
            changes[key] = _coerce(hints[key], value)
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"bad value {value!r} for config key {key!r} in {source}: {error}"
            ) from None
    return dataclasses.replace(config, **changes)


def load_mapping(path: Path) -> dict[str, Any]:
    """Reads a YAML or JSON file holding a mapping."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return data


SEARCH_SPACE_KEY = "search_space"  # Not a preset: the tuner's default search space.


def _preset_file(agent_names: Iterable[str]) -> Path | None:
    for name in agent_names:
        path = configs_dir() / f"{name}.yaml"
        if path.exists():
            return path
    return None


def search_space_for(agent_names: Iterable[str]) -> dict[str, Any]:
    """The ``search_space`` mapping of the agent's preset file, or {}."""
    path = _preset_file(agent_names)
    space = load_mapping(path).get(SEARCH_SPACE_KEY, {}) if path else {}
    if not isinstance(space, dict):
        raise ConfigError(f"search_space in {path} must map names to low:high[:log][:int]")
    return space


def presets_for(agent_names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Presets from ``configs/<name>.yaml`` for the first name that has a file."""
    path = _preset_file(agent_names)
    if path is None:
        return {}
    presets = load_mapping(path)
    presets.pop(SEARCH_SPACE_KEY, None)
    for preset, values in presets.items():
        if not isinstance(values, dict):
            raise ConfigError(f"preset {preset!r} in {path} must be a mapping")
    return presets


def _is_file_spec(item: str) -> bool:
    return item.endswith((".yaml", ".yml", ".json")) or os.sep in item


def build_config(
    config_class: type,
    agent_names: Iterable[str],
    spec: str = "",
    overrides: Mapping[str, Any] | None = None,
):
    """Builds a config: defaults, then each item of ``spec``, then ``overrides``.

    Args:
      config_class: the agent's Config dataclass.
      agent_names: names whose preset files are searched, most specific first
        (a subclass without presets of its own uses its parent's).
      spec: comma-separated preset names and/or config file paths.
      overrides: keys to values (strings are parsed to the field's type).
    """
    agent_names = list(agent_names)
    config = config_class()
    presets = None
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if _is_file_spec(item):
            path = Path(item)
            if not path.exists():
                raise ConfigError(f"config file {item} does not exist")
            values = load_mapping(path)
            values.pop("agent", None)  # Written by tools that record which agent.
            config = apply_values(config, values, f"file {item}")
            continue
        if presets is None:
            presets = presets_for(agent_names)
        if item not in presets:
            accepted = ", ".join(sorted(presets)) or "none"
            raise UnknownNameError(
                f"unknown config preset {item!r} for agent {agent_names[0]!r}"
                f"{did_you_mean(item, presets)}; accepted presets: {accepted}, "
                "or the path of a .yaml/.json config file"
            )
        config = apply_values(config, presets[item], f"preset {item!r}")
    if overrides:
        config = apply_values(config, overrides, "the overrides")
    return config


def config_to_dict(config) -> dict[str, Any]:
    values = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
