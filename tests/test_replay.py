import numpy as np
import pytest

from saferl_tf.data import EpisodeReplay


def _fill(replay, steps, num_envs=1, episode_length=10, start=0, t0=0):
    """Adds ``steps`` batched steps; observation[0] counts steps within the episode."""
    t = np.full(num_envs, t0, np.int64)
    for step in range(start, start + steps):
        observation = np.stack([[t[i], i, step] for i in range(num_envs)]).astype(np.float32)
        t_next = t + 1
        next_observation = np.stack([[t_next[i], i, step + 1] for i in range(num_envs)])
        done = t_next >= episode_length
        replay.add(
            observation,
            np.full((num_envs, 2), step, np.float32),
            np.ones(num_envs),
            (t_next % 3 == 0).astype(np.float32),
            next_observation.astype(np.float32),
            done,
            np.zeros(num_envs, bool),
        )
        t = np.where(done, 0, t_next)


def test_round_trip_through_disk(tmp_path):
    replay = EpisodeReplay(tmp_path, capacity=1000, num_envs=2)
    _fill(replay, 35, num_envs=2)
    assert replay.num_episodes == 6 and replay.num_steps == 60
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 6
    reloaded = EpisodeReplay(tmp_path, capacity=1000, num_envs=2)
    reloaded.load(replay.num_chunks, replay.num_episodes)
    assert reloaded.num_steps == 60
    for original, loaded in zip(replay.chunks(), reloaded.chunks()):
        for field in ("observation", "action", "reward", "cost", "terminated"):
            np.testing.assert_array_equal(getattr(original, field), getattr(loaded, field))
        assert loaded.first


def test_flush_keeps_unfinished_episodes_and_continues_them(tmp_path):
    replay = EpisodeReplay(tmp_path, capacity=1000)
    _fill(replay, 14)  # One episode of 10 and 4 steps of the next.
    replay.flush()
    assert replay.num_steps == 14 and replay.num_chunks == 2 and replay.num_episodes == 1
    fragment = replay.chunks()[-1]
    assert len(fragment) == 4 and fragment.first and not fragment.terminated.any()
    _fill(replay, 6, start=14, t0=4)  # The rest of that episode.
    rest = replay.chunks()[-1]
    assert len(rest) == 6 and not rest.first and rest.terminated[-1]
    np.testing.assert_array_equal(rest.observation[0], fragment.observation[-1])


def test_load_sets_aside_chunks_written_after_the_checkpoint(tmp_path):
    replay = EpisodeReplay(tmp_path, capacity=1000)
    _fill(replay, 30)
    reloaded = EpisodeReplay(tmp_path, capacity=1000)
    reloaded.load(num_chunks=2, num_episodes=2)
    assert reloaded.num_steps == 20
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert len(list((tmp_path / "orphaned").glob("*.npz"))) == 1
    _fill(reloaded, 10)
    assert sorted(p.name for p in tmp_path.glob("*.npz"))[-1].startswith("00000002-")


def test_memory_is_bounded_by_capacity(tmp_path):
    replay = EpisodeReplay(tmp_path, capacity=25)
    _fill(replay, 100)
    assert replay.num_steps == 20  # Whole episodes of 10, at most 25 steps.
    assert replay.chunks()[-1].action[-1, 0] == 99  # The newest are kept.
    assert len(list(tmp_path.glob("*.npz"))) == 10  # Disk keeps everything.
    reloaded = EpisodeReplay(tmp_path, capacity=25)
    reloaded.load(replay.num_chunks, replay.num_episodes)
    assert reloaded.num_steps == 20 and reloaded.chunks()[-1].action[-1, 0] == 99


def test_transition_batches():
    replay = EpisodeReplay(None, capacity=1000, num_envs=2)
    _fill(replay, 50, num_envs=2)
    batch = replay.sample_transitions(64)
    assert batch["observation"].shape == (64, 3) and batch["next_observation"].shape == (64, 3)
    assert batch["action"].shape == (64, 2)
    for name in ("reward", "cost", "terminated"):
        assert batch[name].shape == (64,)
    # Consistency: next observation follows the observation in the same env.
    np.testing.assert_array_equal(batch["next_observation"][:, 0], batch["observation"][:, 0] + 1)
    np.testing.assert_array_equal(batch["next_observation"][:, 1], batch["observation"][:, 1])
    np.testing.assert_array_equal(batch["terminated"], batch["next_observation"][:, 0] == 10)
    np.testing.assert_array_equal(batch["cost"], batch["next_observation"][:, 0] % 3 == 0)


def test_sequence_batches_stay_within_one_episode():
    replay = EpisodeReplay(None, capacity=1000, num_envs=2)
    _fill(replay, 60, num_envs=2)
    batch = replay.sample_sequences(32, 8)
    assert batch["observation"].shape == (32, 8, 3)
    assert batch["action"].shape == (32, 8, 2)
    for name in ("reward", "cost", "terminated", "is_first"):
        assert batch[name].shape == (32, 8)
    t = batch["observation"][..., 0]
    np.testing.assert_array_equal(np.diff(t, axis=1), 1)  # Consecutive, no episode crossing.
    np.testing.assert_array_equal(np.diff(batch["observation"][..., 1], axis=1), 0)
    np.testing.assert_array_equal(batch["is_first"][:, 0], t[:, 0] == 0)
    assert not batch["is_first"][:, 1:].any()
    starts = replay.sample_sequences(2000, 8)["observation"][:, 0, 0]
    assert set(np.unique(starts)) == {0, 1, 2}  # Every window of a 10-step episode.


def test_sampling_needs_data():
    replay = EpisodeReplay(None)
    with pytest.raises(ValueError, match="empty"):
        replay.sample_transitions(4)
    _fill(replay, 10)
    with pytest.raises(ValueError, match="11 steps"):
        replay.sample_sequences(4, 11)
