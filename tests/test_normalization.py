"""RunningNormalizer against NumPy, its clip, checkpoint and compiled use, and
the published LAMBDA code's (zero-biased) moving statistics."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from saferl_tf.models.normalization import RunningNormalizer


def _batches(rng, sizes, d=4, constant=2.5):
    """Batches [n, d] with different scales and offsets; the last dimension is constant."""
    batches = []
    for n in sizes:
        x = rng.normal(size=(n, d)) * [1.0, 3.0, 0.1, 0.0] + [0.0, -5.0, 100.0, constant]
        batches.append(x)
    return batches


def test_matches_numpy_over_all_data_in_random_batches():
    rng = np.random.default_rng(0)
    sizes = [1, *rng.integers(1, 200, 30), 1, 0, 7]  # Size-1 and empty batches included.
    batches = _batches(rng, sizes)
    normalizer = RunningNormalizer(4)
    for batch in batches:
        normalizer.update(batch.astype(np.float32) if len(batch) % 2 else batch)
    data = np.concatenate([b.astype(np.float32) if len(b) % 2 else b for b in batches])
    data = data.astype(np.float64)
    np.testing.assert_allclose(normalizer.mean.numpy(), data.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(normalizer.variance.numpy(), data.var(0), rtol=1e-10, atol=1e-20)
    assert normalizer.count.numpy() == len(data) == normalizer.weight.numpy()
    # The constant dimension: zero variance, std 1, normalized exactly to ~0.
    assert normalizer.variance.numpy()[3] < 1e-20
    x = rng.normal(size=(5, 4)) * [1.0, 3.0, 0.1, 0.0] + [0.0, -5.0, 100.0, 2.5]
    x = x.astype(np.float32)
    out = normalizer.normalize(tf.constant(x)).numpy()
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 3], 0.0, atol=1e-6)
    expected = (x - data.mean(0)) / np.where(data.std(0) < 1e-6, 1.0, data.std(0))
    np.testing.assert_allclose(out, np.clip(expected, -10, 10), rtol=1e-5, atol=1e-5)


def test_single_observation_and_empty_state():
    normalizer = RunningNormalizer(3)
    x = tf.constant([[1.0, -20.0, 3.0]])
    # Nothing seen: mean 0, variance 0 -> std 1, so normalize is a clip.
    np.testing.assert_allclose(normalizer.normalize(x).numpy(), [[1.0, -10.0, 3.0]])
    normalizer.update(tf.zeros([0, 3]))  # Nothing changes, no NaN.
    assert normalizer.count.numpy() == 0
    np.testing.assert_array_equal(normalizer.mean.numpy(), 0.0)
    normalizer.update(x)
    np.testing.assert_array_equal(normalizer.mean.numpy(), [1.0, -20.0, 3.0])
    np.testing.assert_array_equal(normalizer.variance.numpy(), 0.0)
    np.testing.assert_array_equal(normalizer.normalize(x).numpy(), 0.0)


def test_clip_and_the_published_small_std_rule():
    normalizer = RunningNormalizer(3, clip=10.0)
    normalizer._mean.assign([0.0, 1.0, 0.0])
    normalizer._variance.assign([4.0, 0.9e-12, 1e-14])  # std 2, just under 1e-6, 1e-7.
    x = tf.constant([[100.0, 3.0, 0.5], [-100.0, -1.0, -30.0], [4.0, 1.0, 0.0]])
    out = normalizer.normalize(x).numpy()
    np.testing.assert_allclose(out, [[10.0, 2.0, 0.5], [-10.0, -2.0, -10.0], [2.0, 0.0, 0.0]])
    np.testing.assert_allclose(normalizer.std.numpy(), [2.0, 1.0, 1.0])
    # An epsilon under the square root (off by default, as published).
    smooth = RunningNormalizer(1, clip=None, epsilon=1.0)
    smooth._variance.assign([3.0])
    np.testing.assert_allclose(smooth.normalize(tf.constant([[100.0]])).numpy(), [[50.0]])


def test_rank_and_dtypes():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 11, 2)) * 2.0 + 1.0
    normalizer = RunningNormalizer(2, dtype=tf.float32)
    normalizer.update(tf.constant(data, tf.float32))  # [B, T, D] sequences.
    flat = data.reshape(-1, 2)
    np.testing.assert_allclose(normalizer.mean.numpy(), flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(normalizer.variance.numpy(), flat.var(0), rtol=1e-5)
    assert normalizer.normalize(tf.constant(data, tf.bfloat16)).dtype == tf.bfloat16
    assert normalizer.normalize(tf.constant(data, tf.float64)).dtype == tf.float64
    assert normalizer.normalize(tf.constant([[1, 2]], tf.int32)).dtype == tf.float32


def test_large_offset_is_stable():
    # Naive sums of squares lose all digits here (1e16 * eps ~ 2).
    rng = np.random.default_rng(2)
    batches = [1e8 + rng.normal(size=(n, 1)) for n in rng.integers(1, 50, 100)]
    normalizer = RunningNormalizer(1)
    for batch in batches:
        normalizer.update(batch)
    data = np.concatenate(batches)
    np.testing.assert_allclose(normalizer.variance.numpy(), data.var(0), rtol=1e-7)
    np.testing.assert_allclose(normalizer.mean.numpy(), data.mean(0), rtol=1e-15)


def test_huge_counts_merge_exactly():
    normalizer = RunningNormalizer(1)
    count, mean, variance = 10**15, 5.0, 2.0
    normalizer._count.assign(float(count))
    normalizer._weight.assign(float(count))
    normalizer._mean.assign([mean])
    normalizer._variance.assign([variance])
    batch = np.array([[1e3], [-2e3], [7.0], [4e3]])
    normalizer.update(batch)
    # Exact rational reference.
    values = [Fraction(float(v)) for v in batch[:, 0]]
    n = Fraction(count)
    total = n + len(values)
    exact_mean = (n * Fraction(mean) + sum(values)) / total
    exact_m2 = n * Fraction(variance) + n * (Fraction(mean) - exact_mean) ** 2
    exact_m2 += sum((v - exact_mean) ** 2 for v in values)
    np.testing.assert_allclose(normalizer.mean.numpy(), [float(exact_mean)], rtol=1e-15)
    np.testing.assert_allclose(normalizer.variance.numpy(), [float(exact_m2 / total)], rtol=1e-13)
    assert normalizer.count.numpy() == count + 4
    assert np.all(np.isfinite(normalizer.variance.numpy()))


def test_checkpoint_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    normalizer = RunningNormalizer(4, decay=0.99)
    for batch in _batches(rng, [5, 1, 30]):
        normalizer.update(batch)
    path = tf.train.Checkpoint(normalizer=normalizer).save(str(tmp_path / "ckpt"))
    saved = [v.numpy() for v in (normalizer.mean, normalizer.variance, normalizer.count,
                                 normalizer.weight)]  # fmt: skip
    restored = RunningNormalizer(4, decay=0.99)
    tf.train.Checkpoint(normalizer=restored).restore(path).assert_consumed()
    for before, after in zip(saved, (restored.mean, restored.variance, restored.count,
                                     restored.weight)):  # fmt: skip
        np.testing.assert_array_equal(before, after.numpy())
    x = tf.constant(rng.normal(size=(2, 4)), tf.float32)
    np.testing.assert_array_equal(normalizer.normalize(x).numpy(), restored.normalize(x).numpy())


@pytest.mark.parametrize("decay", [None, 0.9])
def test_compiled_and_traced_once(decay):
    rng = np.random.default_rng(4)
    normalizer = RunningNormalizer(4, decay=decay)
    eager = RunningNormalizer(4, decay=decay)
    traces = {"update": 0, "normalize": 0}

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def update(batch):
        traces["update"] += 1
        normalizer.update(batch)

    @tf.function(jit_compile=True)
    def normalize(x):
        traces["normalize"] += 1
        return normalizer.normalize(x)

    x = tf.constant(rng.normal(size=(8, 4)), tf.float32)
    for batch in _batches(rng, [1, 17, 0, 3]):
        batch = tf.constant(batch, tf.float32)
        update(batch)
        eager.update(batch)
        np.testing.assert_allclose(normalizer.mean.numpy(), eager.mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(normalizer.variance.numpy(), eager.variance.numpy(),
                                   rtol=1e-10, atol=1e-20)  # fmt: skip
        # The compiled function reads the statistics' current values.
        np.testing.assert_allclose(normalize(x).numpy(), eager.normalize(x).numpy(), rtol=1e-6,
                                   atol=1e-6)  # fmt: skip
    assert traces == {"update": 1, "normalize": 1}


def _weighted_reference(batches, decay):
    """Exponentially weighted (per batch) mean and population variance."""
    t = len(batches)
    weights = np.concatenate(
        [
            np.full(len(b), (1 - decay) * decay ** (t - 1 - i) / len(b))
            for i, b in enumerate(batches)
        ]
    )
    data = np.concatenate(batches)
    mean = np.average(data, axis=0, weights=weights)
    return mean, np.average((data - mean) ** 2, axis=0, weights=weights)


def test_decay_weighs_each_update_exactly():
    rng = np.random.default_rng(5)
    batches = _batches(rng, rng.integers(1, 60, 40), constant=-1.0)
    normalizer = RunningNormalizer(4, decay=0.9)
    for i, batch in enumerate(batches):
        normalizer.update(batch)
        if i in (0, 1, 39):
            mean, variance = _weighted_reference(batches[: i + 1], 0.9)
            np.testing.assert_allclose(normalizer.mean.numpy(), mean, rtol=1e-12)
            np.testing.assert_allclose(normalizer.variance.numpy(), variance, rtol=1e-10,
                                       atol=1e-20)  # fmt: skip
    np.testing.assert_allclose(normalizer.weight.numpy(), 1 - 0.9**40)
    assert normalizer.count.numpy() == sum(len(b) for b in batches)
    normalizer.update(np.zeros([0, 4]))  # An empty batch does not decay anything.
    np.testing.assert_allclose(normalizer.weight.numpy(), 1 - 0.9**40)


def _published_update(episode, mean, variance, count):
    """la_mbda/replay_buffer.py ReplayBuffer._update_statistics (TFP 0.12 = 0.25 here)."""
    return tfp.stats.assign_moving_mean_variance(
        tf.constant(episode, tf.float32), mean, variance, axis=0, zero_debias_count=count
    )


def test_published_statistics_are_zero_biased_and_these_are_not():
    rng = np.random.default_rng(6)
    # Episodes of 1 + 500 observations (the first observation and every next one).
    episodes = [rng.normal(size=(501, 2)) * [2.0, 0.5] + [3.0, -1.0] for _ in range(300)]
    mean = tf.Variable(tf.zeros([2]))
    variance = tf.Variable(tf.zeros([2]))
    count = tf.Variable(0)
    ours = RunningNormalizer(2, decay=0.99)
    cumulative = RunningNormalizer(2)
    for i, episode in enumerate(episodes):
        debiased_mean, debiased_variance = _published_update(episode, mean, variance, count)
        ours.update(episode.astype(np.float32))
        cumulative.update(episode.astype(np.float32))
        if i == 0:
            first = episode.astype(np.float32).astype(np.float64)
            # What the published code normalized with (the raw variables)...
            np.testing.assert_allclose(mean.numpy(), 0.01 * first.mean(0), rtol=1e-5)
            np.testing.assert_allclose(variance.numpy(), 0.0099 * (first**2).mean(0), rtol=1e-5)
            # ...and TFP's debiased variance (dropped there) measures E[x^2], not Var[x].
            np.testing.assert_allclose(debiased_mean.numpy(), first.mean(0), rtol=1e-5)
            np.testing.assert_allclose(debiased_variance.numpy(), 0.99 * (first**2).mean(0),
                                       rtol=1e-5)  # fmt: skip
            for normalizer in (ours, cumulative):
                np.testing.assert_allclose(normalizer.mean.numpy(), first.mean(0), rtol=1e-12)
                np.testing.assert_allclose(normalizer.variance.numpy(), first.var(0), rtol=1e-12)
            # One standard deviation above the mean: published ~10 x / rms(x).
            x = tf.constant((first.mean(0) + first.std(0))[None], tf.float32)
            published = tf.clip_by_value((x - mean) / tf.sqrt(variance), -10.0, 10.0)
            np.testing.assert_allclose(published.numpy(), [[10.0, -4.4]], rtol=0.05)
            np.testing.assert_allclose(ours.normalize(x).numpy(), [[1.0, 1.0]], rtol=1e-5)
    # After 300 episodes the raw variables are still 1 - 0.99^300 = 0.95 of the truth.
    factor = 1.0 - 0.99**300
    np.testing.assert_allclose(mean.numpy(), factor * ours.mean.numpy(), rtol=2e-3)
    np.testing.assert_allclose(variance.numpy(), factor * ours.variance.numpy(), rtol=2e-2)
    data = np.concatenate(episodes)
    np.testing.assert_allclose(cumulative.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(ours.variance.numpy(), [4.0, 0.25], rtol=0.1)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"size": 2, "clip": 0.0}, {"size": 2, "decay": 1.0},
     {"size": 2, "dtype": "int32"}, {"size": 2, "min_std": -1.0}],
)  # fmt: skip
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        RunningNormalizer(**kwargs)
