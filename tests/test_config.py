import dataclasses

import pytest

from saferl_tf.config import AgentConfig, build_config
from saferl_tf.errors import ConfigError, UnknownNameError


@dataclasses.dataclass
class ExampleConfig(AgentConfig):
    learning_rate: float = 1e-3
    layers: tuple[int, ...] = (400, 400)
    horizon: int = 15
    schedule: str | None = None


@pytest.fixture
def presets(tmp_path, monkeypatch):
    (tmp_path / "example.yaml").write_text(
        "debug:\n  layers: [8]\n  horizon: 3\nfast:\n  learning_rate: 0.01\n"
    )
    monkeypatch.setenv("SAFERL_TF_CONFIGS", str(tmp_path))
    return tmp_path


def test_defaults_presets_files_and_overrides_stack(presets, tmp_path):
    assert build_config(ExampleConfig, ["example"]) == ExampleConfig()
    config = build_config(ExampleConfig, ["example"], "debug,fast")
    assert config.layers == (8,) and config.horizon == 3 and config.learning_rate == 0.01
    best = tmp_path / "best.yaml"
    best.write_text("agent: example\nhorizon: 7\n")
    config = build_config(
        ExampleConfig, ["example"], f"debug,{best}", {"learning_rate": "3e-4", "safety": "true"}
    )
    assert config.horizon == 7 and config.layers == (8,)
    assert config.learning_rate == 3e-4 and config.safety is True


def test_text_overrides_are_parsed_to_the_field_type(presets):
    config = build_config(
        ExampleConfig,
        ["example"],
        overrides={"layers": "64,64,32", "horizon": "20", "jit": "false", "schedule": "none"},
    )
    assert config.layers == (64, 64, 32) and config.horizon == 20
    assert config.jit is False and config.schedule is None


def test_subclass_uses_parent_presets(presets):
    config = build_config(ExampleConfig, ["my_example", "example"], "debug")
    assert config.horizon == 3


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"overrides": {"horizn": "3"}}, UnknownNameError, ["'horizn'", "did you mean horizon"]),
        ({"spec": "debgu"}, UnknownNameError, ["'debgu'", "debug", "fast"]),
        ({"overrides": {"horizon": "abc"}}, ConfigError, ["horizon", "'abc'"]),
        ({"overrides": {"jit": "maybe"}}, ConfigError, ["jit", "true or false"]),
        ({"spec": "missing.yaml"}, ConfigError, ["missing.yaml", "does not exist"]),
    ],
)
def test_bad_input_gives_one_line_errors(presets, kwargs, error, words):
    with pytest.raises(error) as raised:
        build_config(ExampleConfig, ["example"], **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_file_with_unknown_key(presets, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"horizon": 5, "discount": 0.9}')
    with pytest.raises(UnknownNameError, match="unknown config key 'discount' in file"):
        build_config(ExampleConfig, ["example"], str(path))
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        build_config(ExampleConfig, ["example"], str(path))


def test_repository_presets_are_valid():
    from saferl_tf.agents import agent_class, registered_agents
    from saferl_tf.agents.base import preset_names
    from saferl_tf.config import presets_for

    for name in registered_agents():
        cls = agent_class(name)
        presets = presets_for(preset_names(cls))
        assert "debug" in presets, f"agent {name} has no debug preset"
        for preset in presets:
            build_config(cls.Config, preset_names(cls), preset)
