"""saferl-evaluate: restoring a trained run, episodes, reports, videos; the
training loop's evaluation videos; the watch camera."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import fake_agents  # noqa: F401  (registers test_flaky)
import imageio.v2 as imageio
import numpy as np
import pytest
import tensorflow as tf

from saferl_tf import envs
from saferl_tf.agents import Agent, agent_class, make_agent, registered_agents
from saferl_tf.agents.base import preset_names
from saferl_tf.agents.lambda_ import LambdaAgent
from saferl_tf.config import build_config, config_to_dict, presets_for
from saferl_tf.envs.watch import watch_camera
from saferl_tf.errors import CheckpointError, ConfigError
from saferl_tf.training.evaluation import run_episodes, run_vector_episodes, summarize
from saferl_tf.training.experiment import RunSettings, train
from saferl_tf.training.run_evaluation import EvalSettings, evaluate_run

ROOT = Path(__file__).resolve().parent.parent
ENV = "saferl_PointHazard-v0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A debug-size LAMBDA trained for 200 steps, checkpoints at 100 and 200."""
    run_dir = tmp_path_factory.mktemp("evaluate") / "run"
    train(RunSettings(env=ENV, agent="lambda", config="debug", run_dir=str(run_dir),
                      total_steps=200, eval_every=0, checkpoint_every=100,
                      progress=False))  # fmt: skip
    return run_dir


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _hand_written_returns(run_dir: Path, checkpoint: str, seeds) -> list[float]:
    """The restored agent played in a plain loop, without the evaluation code."""
    record = json.loads((run_dir / "config.json").read_text())
    config = build_config(LambdaAgent.Config, preset_names(LambdaAgent), "debug")
    assert record["agent_config"] == json.loads(json.dumps(config_to_dict(config)))
    env = envs.make(ENV, action_repeat=config.action_repeat, observation=config.observation)
    agent = make_agent("lambda", env.observation_space, env.action_space, config, seed=0)
    path = str(run_dir / "checkpoints" / checkpoint)
    tf.train.Checkpoint(agent=agent).restore(path).expect_partial()
    agent.after_restore()
    returns = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        first, done, total = True, False, 0.0
        while not done:
            action = agent.act(observation[None], explore=False, is_first=np.array([first]))
            observation, reward, _, terminated, truncated, _ = env.step(action[0])
            total, first, done = total + reward, False, terminated or truncated
        returns.append(total)
    return returns


def test_evaluation_restores_the_agent_and_changes_no_file_of_the_run(trained):
    before = _hashes(trained)
    report = evaluate_run(EvalSettings(run_dir=str(trained), episodes=3, seed=5), echo=lambda _: 0)
    after = _hashes(trained)
    assert after.pop("checkpoints/eval_200.json")
    assert after == before
    assert report["step"] == 200 and report["checkpoint"] == "ckpt-200"
    returns = [row["episode_return"] for row in report["episodes"]]
    assert [row["seed"] for row in report["episodes"]] == [5, 6, 7]
    assert returns == pytest.approx(_hand_written_returns(trained, "ckpt-200", [5, 6, 7]),
                                    rel=1e-6)  # fmt: skip
    # The report on disk is the one returned; a second evaluation keeps the first.
    written = json.loads((trained / "checkpoints" / "eval_200.json").read_text())
    assert written["summary"] == report["summary"]
    again = evaluate_run(EvalSettings(run_dir=str(trained), episodes=1), echo=lambda _: 0)
    assert Path(again["report_file"]).name == "eval_200.2.json"
    assert json.loads((trained / "checkpoints" / "eval_200.json").read_text()) == written


def test_a_checkpoint_step_picks_that_checkpoint(trained):
    report = evaluate_run(EvalSettings(run_dir=str(trained), episodes=2, checkpoint="100"),
                          echo=lambda _: 0)  # fmt: skip
    assert (report["step"], report["checkpoint"]) == (100, "ckpt-100")
    returns = [row["episode_return"] for row in report["episodes"]]
    assert returns == pytest.approx(_hand_written_returns(trained, "ckpt-100", [0, 1]), rel=1e-6)
    with pytest.raises(
        CheckpointError, match=r"no checkpoint at step 150 .*accepted: latest, 100, 200"
    ):
        evaluate_run(EvalSettings(run_dir=str(trained), checkpoint="150"))


def test_a_video_has_one_frame_per_agent_step_and_one_per_reset(trained, tmp_path):
    path = tmp_path / "episodes.mp4"
    report = evaluate_run(EvalSettings(run_dir=str(trained), episodes=2, video=str(path),
                                       video_size=96), echo=lambda _: 0)  # fmt: skip
    # PointHazard episodes are 100 steps; the debug preset repeats actions twice.
    assert [row["episode_length"] for row in report["episodes"]] == [100, 100]
    reader = imageio.get_reader(path)
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == 2 * (50 + 1)
    assert frames[0].shape == (96, 96, 3)
    with pytest.raises(ConfigError, match="exists; name a new video file"):
        evaluate_run(EvalSettings(run_dir=str(trained), video=str(path)))
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, python, subprocess_env):
    def evaluate(*args):
        return subprocess.run(
            [python, str(ROOT / "launchers" / "evaluate.py"), *args],
            capture_output=True, text=True, env=subprocess_env, timeout=300, cwd=tmp_path,
        )  # fmt: skip

    before = _hashes(trained)
    cases = {
        (f"--run_dir={tmp_path / 'missing'}",): "is not a folder",
        (f"--run_dir={tmp_path}",): "is not a run folder: it has no config.json",
        (f"--run_dir={trained}", "--checkpoint=7"): "no checkpoint at step 7",
        (f"--run_dir={trained}", "--env=saferl_ConstrainedPendulum-v0"): (
            "does not fit the agent: its action space is Box(1,) where "
            "saferl_PointHazard-v0's is Box(2,)"
        ),
    }
    for args, message in cases.items():
        result = evaluate(*args)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2, result.stderr
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert _hashes(trained) == before


def test_an_old_run_without_new_settings_and_with_dropped_ones_still_evaluates(trained, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained, old, ignore=shutil.ignore_patterns("eval_*.json"))
    record = json.loads((old / "config.json").read_text())
    record["agent_config"].pop("unsafe_weight")  # Added later: takes its default.
    record["agent_config"]["a_setting_since_removed"] = 3
    (old / "config.json").write_text(json.dumps(record))
    report = evaluate_run(EvalSettings(run_dir=str(old), episodes=1), echo=lambda _: 0)
    assert report["step"] == 200


class _Towards(Agent):
    """Steers towards the origin of its first two observations: deterministic."""

    def _act(self, observation, explore, is_first):
        return np.tanh(-3.0 * observation[:, :2]).astype(np.float32)


def test_episodes_are_the_same_in_one_or_in_several_environments():
    env = envs.make(ENV)
    agent = _Towards(env.observation_space, env.action_space)
    seeds = list(range(10, 15))
    single = run_episodes(agent, env, seeds)
    env.close()
    with envs.make_vector(ENV, 2, episode_seeds=seeds, parallel=False) as vector:
        spread = run_vector_episodes(agent, vector, len(seeds), seeds=seeds)
    assert [e.seed for e in spread] == seeds
    # Vector steps carry float32 rewards: equal to float32 precision.
    assert [e.episode_return for e in spread] == pytest.approx(
        [e.episode_return for e in single], rel=1e-6
    )
    assert [e.length for e in spread] == [e.length for e in single]
    # Different seeds, different episodes (the check above could not pass by accident).
    assert len({e.episode_return for e in single}) == len(seeds)


def test_summaries_are_mean_std_and_iqm():
    from saferl_tf.training.evaluation import Episode

    episodes = [Episode(float(r), float(c), 10) for r, c in
                [(1, 0), (2, 5), (3, 0), (4, 0), (5, 0), (6, 0), (7, 1), (100, 0)]]  # fmt: skip
    summary = summarize(episodes)
    returns = np.array([1, 2, 3, 4, 5, 6, 7, 100.0])
    assert summary["episode_return"]["mean"] == pytest.approx(returns.mean())
    assert summary["episode_return"]["std"] == pytest.approx(returns.std())
    assert summary["episode_return"]["iqm"] == pytest.approx(4.5)  # The mean of 3, 4, 5, 6.
    assert summary["cost_rate"]["mean"] == pytest.approx(6 / 8 / 10)


def test_episode_cost_limits_follow_each_agents_definition():
    lambda_config = LambdaAgent.Config(cost_limit=25.0, episode_length=1000)
    assert LambdaAgent.episode_cost_limit(lambda_config, 100) == pytest.approx(2.5)
    from saferl_tf.agents import PessimisticAgent, RandomAgent

    planner = PessimisticAgent.Config(cost_limit=25.0, episode_length=1000)
    assert PessimisticAgent.episode_cost_limit(planner, 200) == pytest.approx(5.0)
    assert RandomAgent.episode_cost_limit(RandomAgent.Config(cost_limit=3.0), 50) == 3.0


def test_training_films_its_evaluations_into_files_and_tensorboard(tmp_path):
    run_dir = tmp_path / "run"
    train(RunSettings(env="saferl_TestCounting-v0", agent="random", run_dir=str(run_dir),
                      total_steps=60, eval_every=20, checkpoint_every=60, progress=False,
                      eval_video_every=40, eval_video_size=32))  # fmt: skip
    videos = sorted(p.name for p in (run_dir / "videos").glob("*.mp4"))
    assert videos == ["eval_video-20.mp4", "eval_video-60.mp4"]  # 40 is less than 40 after 20.
    reader = imageio.get_reader(run_dir / "videos" / "eval_video-20.mp4")
    assert len([frame for frame in reader]) == 11  # 10 steps and the reset.
    reader.close()
    images = [
        (event.step, value.image.encoded_image_string[:6])
        for path in run_dir.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.HasField("image")
    ]
    assert images == [(20, b"GIF89a"), (60, b"GIF89a")]


def test_the_logger_never_writes_over_a_video(tmp_path):
    from saferl_tf.training.logger import Logger

    logger = Logger(tmp_path)
    frames = np.random.default_rng(0).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)
    first = logger.video("eval/policy", frames, step=7)
    second = logger.video("eval/policy", frames[:5], step=7)
    logger.close()
    assert (first.name, second.name) == ("eval_policy-7.mp4", "eval_policy-7.2.mp4")
    reader = imageio.get_reader(first)
    assert len([frame for frame in reader]) == 12
    reader.close()


def test_the_watch_camera_leaves_pixel_observations_unchanged_and_follows_resets():
    def play(film: bool):
        env = envs.make("sgym_SafetyPointGoal1-v0", observation="pixels", seed=3)
        camera = watch_camera(env, 64) if film else None
        observations, frames = [env.reset()[0]], []
        for t in range(12):
            if camera is not None:
                frames.append(camera.frame())
            observations.append(env.step(np.array([1.0, 0.5 if t < 6 else -0.5]))[0])
        observations.append(env.reset()[0])  # A new layout: a new model in safety-gymnasium.
        if camera is not None:
            frames.append(camera.frame())
            camera.close()
        env.close()
        return np.stack(observations), frames

    plain, _ = play(False)
    filmed, frames = play(True)
    np.testing.assert_array_equal(filmed, plain)
    assert frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[11])  # The robot moved.
    assert not np.array_equal(frames[11], frames[12])  # The reset's new layout is shown.


def test_tasks_without_frames_say_so():
    env = envs.make("saferl_LQR-v0", render=True)  # It has no render modes.
    with pytest.raises(ConfigError, match="cannot render frames"):
        watch_camera(env)


BUILT_IN = [name for name in registered_agents() if not name.startswith("test_")]


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_agent_evaluates_from_its_run_folder(name, tmp_path):
    cls = agent_class(name)
    config = "debug" if "debug" in presets_for(preset_names(cls)) else ""
    run_dir = tmp_path / name
    train(RunSettings(env=ENV, agent=name, config=config, run_dir=str(run_dir),
                      total_steps=40, episode_length=20, eval_every=0, checkpoint_every=40,
                      progress=False))  # fmt: skip
    report = evaluate_run(EvalSettings(run_dir=str(run_dir), episodes=2), echo=lambda _: 0)
    assert report["step"] == 40 and report["agent"] == name
    assert [row["episode_length"] for row in report["episodes"]] == [20, 20]


def test_a_users_agent_evaluates_with_imports(tmp_path, python, subprocess_env):
    run_dir = tmp_path / "flaky"
    train(RunSettings(env=ENV, agent="test_flaky", run_dir=str(run_dir), total_steps=20,
                      episode_length=10, eval_every=0, checkpoint_every=20,
                      progress=False))  # fmt: skip

    def evaluate(*args):
        return subprocess.run(
            [python, str(ROOT / "launchers" / "evaluate.py"), f"--run_dir={run_dir}",
             "--episodes=2", *args],
            capture_output=True, text=True, env=subprocess_env, timeout=300, cwd=ROOT,
        )  # fmt: skip

    result = evaluate("--imports=tests/fake_agents.py")
    assert result.returncode == 0, result.stderr
    assert "mean cost" in result.stdout and "eval_20.json" in result.stdout
    result = evaluate()
    assert result.returncode == 2
    assert "unknown agent 'test_flaky'" in result.stderr
