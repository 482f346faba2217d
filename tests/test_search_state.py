"""Saved search states: JSON plus .npz, exact resumes, and files that are refused."""

from __future__ import annotations

import json
import pathlib
import pickle

import numpy as np
import pytest

from saferl_tf.errors import CheckpointError
from saferl_tf.search import methods
from saferl_tf.search import state as state_io
from saferl_tf.search.experiment import SearchSettings, run_search

OPTIMUM = np.array([0.3, 0.7])


class _Box:
    """What ``make_searcher`` reads from an objective."""

    initial = np.full(2, 0.5)
    bounds = (np.zeros(2), np.ones(2))


def _value(parameters: np.ndarray, index: int) -> float:
    # Noise keyed by the evaluation index: the same for a resumed run.
    noise = np.random.default_rng(index).normal(0.0, 0.01)
    return -float(np.sum((parameters - OPTIMUM) ** 2)) + noise


def _run(searcher, start: int, stop: int, asked: list) -> None:
    for index in range(start, stop):
        parameters = np.asarray(searcher.ask(), np.float64)
        asked.append(parameters)
        searcher.tell(parameters, _value(parameters, index))


def _disturb_global_random_state() -> None:
    # A resumed run starts in a new process: nothing may hang on global seeds.
    import tensorflow as tf

    np.random.seed(12345)  # noqa: NPY002
    np.random.rand(17)  # noqa: NPY002
    tf.random.set_seed(999)
    tf.random.uniform([5])


# (method, searcher config, evaluations before a save, in all). The saves fall
# between and inside a GIBO query round (centre and D = 2 queries), an ARS
# iteration (2 x 3 points) and a CMA-ES generation (6 points at D = 2), and
# after BO's GP was built.
CASES = [
    ("gibo", {}, (3, 5), 12),
    ("ars", {"directions": "3"}, (6, 8), 14),
    ("cmaes", {}, (12, 9), 20),
    ("bo", {"initial": "2"}, (3,), 4),
]


@pytest.mark.parametrize("method, values, splits, total", CASES, ids=[c[0] for c in CASES])
def test_a_loaded_searcher_asks_what_the_uninterrupted_one_asks(
    tmp_path, method, values, splits, total
):
    whole: list = []
    _run(methods.make_searcher(method, _Box(), seed=3, values=values), 0, total, whole)
    for split in splits:
        resumed: list = []
        first = methods.make_searcher(method, _Box(), seed=3, values=values)
        _run(first, 0, split, resumed)
        state_io.save(tmp_path, {"searcher": first.state()})
        _disturb_global_random_state()
        second = methods.make_searcher(method, _Box(), seed=3, values=values)
        second.load_state(state_io.load(tmp_path)["searcher"])
        _run(second, split, total, resumed)
        np.testing.assert_array_equal(np.asarray(resumed), np.asarray(whole), err_msg=f"{split}")
        assert not np.allclose(whole[split], whole[split - 1])  # The search moves on.


def test_the_format_round_trips_json_values_and_arrays(tmp_path):
    rng = np.random.default_rng(7)
    rng.normal(size=3)
    tree = {"rng": rng.bit_generator.state, "best": -np.inf, "none": None, "flag": True,
            "count": np.int64(4), "x": np.arange(6.0).reshape(2, 3), "empty": np.zeros((0, 2)),
            "nested": [{"a": np.ones(2, np.float32)}, (1, "b")]}  # fmt: skip
    state_io.save(tmp_path, tree)
    loaded = state_io.load(tmp_path)
    restored = np.random.default_rng(0)
    restored.bit_generator.state = loaded["rng"]  # 128-bit integers survive JSON.
    assert restored.normal() == rng.normal()
    assert loaded["best"] == -np.inf and loaded["none"] is None and loaded["count"] == 4
    np.testing.assert_array_equal(loaded["x"], tree["x"])
    assert loaded["empty"].shape == (0, 2) and loaded["nested"][0]["a"].dtype == np.float32
    assert loaded["nested"][1] == [1, "b"]
    document = json.loads((tmp_path / state_io.STATE_FILE).read_text())
    assert document["version"] == state_io.VERSION
    # One arrays file, named by its content: the older one is gone after a save.
    state_io.save(tmp_path, {"x": np.zeros(1)})
    names = [path.name for path in tmp_path.glob("*.npz")]
    assert len(names) == 1 and names[0] != document["arrays"]["file"]
    with pytest.raises(TypeError, match="object arrays"):
        state_io.save(tmp_path, {"x": np.array([object()])})


def test_objectives_continue_from_a_saved_state(tmp_path):
    from saferl_tf.search.objectives import make_objective

    def pair():
        synthetic = make_objective("synthetic:2:0", seed=1, cache_dir=tmp_path / "functions")
        episodes = make_objective("saferl_TestCounting-v0", seed=1, normalize=True, episodes=2)
        return synthetic, episodes

    parameters = [np.full(2, 0.4), np.full(2, 0.6), np.full(2, 0.5)]
    whole = pair()
    for objective in whole:
        size = objective.dimension
        for point in parameters[:2]:
            objective(np.resize(point, size))
    saved = pair()
    for objective in saved:
        objective(np.resize(parameters[0], objective.dimension))
    state_io.save(tmp_path, {"objectives": [objective.state() for objective in saved]})
    resumed = pair()
    for objective, state in zip(resumed, state_io.load(tmp_path)["objectives"]):
        objective.load_state(state)
        objective(np.resize(parameters[1], objective.dimension))
    for done, again in zip(whole, resumed):
        point = np.resize(parameters[2], done.dimension)
        assert done(point) == again(point)  # The same noise draw, the same episode seeds.
        assert done.info() == again.info()
    assert whole[1].state()["count"] > 0  # Observation statistics were kept and grew.
    np.testing.assert_array_equal(whole[1].state()["m2"], resumed[1].state()["m2"])


# --- run folders -------------------------------------------------------------------


def _settings(tmp_path, **changes) -> SearchSettings:
    values = dict(method="ars", objective="synthetic:2:0", budget=3,
                  run_dir=str(tmp_path / "run"), functions_dir=str(tmp_path / "functions"),
                  progress=False)  # fmt: skip
    values.update(changes)
    return SearchSettings(**values)


class _TouchOnLoad:
    """A pickle that creates ``path`` when it is unpickled: code run by loading."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def _snapshot(folder: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith("search_state")}


def test_an_old_pickled_state_is_refused_unopened(tmp_path):
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(_TouchOnLoad(armed)))
    assert armed.exists()  # The payload does run when unpickled...
    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "search_state.pkl").write_bytes(pickle.dumps({"searcher": _TouchOnLoad(marker)}))
    before = _snapshot(run_dir)
    with pytest.raises(CheckpointError, match="saved with pickle") as raised:
        run_search(_settings(tmp_path))
    assert not marker.exists()  # ...and resuming never unpickled it.
    message = str(raised.value)
    assert "\n" not in message and str(run_dir / "search_state.pkl") in message
    assert "--run_dir" in message and _snapshot(run_dir) == before
    assert not (run_dir / "metrics.jsonl").exists()  # Nothing ran.


def _break_json(run_dir):
    (run_dir / "search_state.json").write_text('{"format": "saferl_tf.search_state", "ver')


def _other_version(run_dir):
    path = run_dir / "search_state.json"
    path.write_text(path.read_text().replace('"version": 1', '"version": 99'))


def _flip_a_byte(run_dir):
    (path,) = run_dir.glob("search_state-*.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _object_array_with_a_matching_checksum(run_dir):
    # An .npz whose array is a pickle (an object array), with the checksum
    # rewritten to match: np.load(allow_pickle=False) must still refuse it.
    import hashlib
    import io

    buffer = io.BytesIO()
    np.savez(buffer, payload=np.array([_TouchOnLoad(run_dir.parent / "marker")], dtype=object))
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    name = f"search_state-{digest[:16]}.npz"
    (run_dir / name).write_bytes(data)
    path = run_dir / "search_state.json"
    document = json.loads(path.read_text())
    document["arrays"] = {"file": name, "sha256": digest}
    path.write_text(json.dumps(document))


def _arrays_elsewhere(run_dir):
    path = run_dir / "search_state.json"
    document = json.loads(path.read_text())
    document["arrays"]["file"] = "../../elsewhere.npz"
    path.write_text(json.dumps(document))


def _state_of_another_method(run_dir):
    path = run_dir / "search_state.json"
    document = json.loads(path.read_text())
    document["state"]["searcher"] = {"told_points": [], "told_costs": []}
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "damage, words",
    [
        (_break_json, "not readable JSON"),
        (_other_version, "format version 99"),
        (_flip_a_byte, "does not match the checksum"),
        (_object_array_with_a_matching_checksum, "arrays cannot be read"),
        (_arrays_elsewhere, "arrays file name"),
        (_state_of_another_method, "ars state does not fit"),
    ],
)
def test_an_unusable_state_is_a_one_line_error_and_is_left_intact(tmp_path, damage, words):
    run_search(_settings(tmp_path, budget=2))
    run_dir = tmp_path / "run"
    damage(run_dir)
    before = _snapshot(run_dir)
    rows = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(CheckpointError, match=words) as raised:
        run_search(_settings(tmp_path, budget=4))
    message = str(raised.value)
    assert "\n" not in message and str(run_dir / "search_state.json") in message
    assert "--run_dir" in message
    assert _snapshot(run_dir) == before and (run_dir / "metrics.jsonl").read_text() == rows
    assert not (tmp_path / "marker").exists()


def test_the_launcher_refuses_an_old_pickle_with_exit_2(python, subprocess_env, tmp_path):
    import subprocess

    from conftest import ROOT

    marker = tmp_path / "marker"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "search_state.pkl").write_bytes(pickle.dumps(_TouchOnLoad(marker)))
    result = subprocess.run(
        [python, str(ROOT / "launchers" / "search.py"), "--method=ars", "--budget=2",
         "--objective=synthetic:2:0", f"--run_dir={run_dir}", "--noprogress",
         f"--functions_dir={tmp_path / 'functions'}"],
        capture_output=True, text=True, env=subprocess_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "saved with pickle" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not marker.exists()
