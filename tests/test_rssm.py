"""RSSM shapes, resets, sampled-weight imagination, KL balancing; conv shapes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.models.networks import ConvDecoder, ConvEncoder, mlp
from saferl_tf.models.rssm import RSSM, RSSMState, balanced_kl


@pytest.fixture
def rssm():
    model = RSSM(deter=8, stoch=4, hidden=6)
    model.build_all(embedding_size=5, action_size=2)
    return model


def test_observe_shapes_and_a_reset_at_is_first(rssm):
    rng = np.random.default_rng(0)
    embeddings = tf.constant(rng.normal(size=(3, 7, 5)), tf.float32)
    actions = tf.constant(rng.normal(size=(3, 7, 2)), tf.float32)
    is_first = np.zeros((3, 7), bool)
    is_first[:, 0] = True
    posterior, prior = rssm.observe(embeddings, actions, tf.constant(is_first), tf.constant([1, 2]))
    assert posterior.deter.shape == (3, 7, 8) and prior.stoch.shape == (3, 7, 4)
    assert posterior.features().shape == (3, 7, 12)
    assert float(tf.reduce_min(posterior.std)) >= 0.1
    # A reset in the middle: step 4 of row 0 starts afresh, as a sequence starting there.
    is_first[0, 4] = True
    again, _ = rssm.observe(embeddings, actions, tf.constant(is_first), tf.constant([1, 2]))
    fresh, _ = rssm.observe(embeddings[:1, 4:], actions[:1, 4:], tf.constant(is_first[:1, 4:]),
                            tf.constant([5, 5]))  # fmt: skip
    for field in ("deter", "mean", "std"):  # The sample itself depends on the noise.
        np.testing.assert_allclose(getattr(again, field)[0, 4].numpy(),
                                   getattr(fresh, field)[0, 0].numpy(), atol=1e-6)  # fmt: skip
    assert not np.allclose(again.deter[0, 4], posterior.deter[0, 4])
    np.testing.assert_allclose(again.deter[1:].numpy(), posterior.deter[1:].numpy())


def test_imagination_with_the_models_own_weights_equals_stateless_call(rssm):
    state = rssm.initial(4)
    action = tf.ones([4, 2])
    own = rssm.imagine_step(state, action, tf.constant([0, 3]))
    weights = [tf.identity(v) for v in rssm.prior_step.trainable_variables]
    same = rssm.imagine_step(state, action, tf.constant([0, 3]), weights=weights)
    np.testing.assert_allclose(own.stoch.numpy(), same.stoch.numpy(), atol=1e-6)
    shifted = [w + 0.5 for w in weights]
    other = rssm.imagine_step(state, action, tf.constant([0, 3]), weights=shifted)
    assert not np.allclose(own.deter.numpy(), other.deter.numpy())

    @tf.function(jit_compile=True)
    def compiled(weights):
        return rssm.imagine_step(state, action, tf.constant([0, 3]), weights=weights).deter

    np.testing.assert_allclose(compiled(shifted).numpy(), other.deter.numpy(), atol=1e-5)


def test_balanced_kl_free_nats_and_value():
    def state(mean, std):
        mean = tf.constant(mean, tf.float32)
        return RSSMState(mean, mean, mean, tf.constant(std, tf.float32))

    posterior, prior = state([[0.0, 1.0]], [[1.0, 0.5]]), state([[0.0, 0.0]], [[1.0, 1.0]])
    # KL(N(1, 0.5) || N(0, 1)) = log 2 + (0.25 + 1) / 2 - 0.5 for the second dimension.
    expected = np.log(2.0) + 1.25 / 2 - 0.5
    loss, kl = balanced_kl(posterior, prior, balance=0.8, free_nats=0.0)
    assert float(kl) == pytest.approx(expected, rel=1e-5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    loss, _ = balanced_kl(posterior, prior, free_nats=3.0)
    assert float(loss) == pytest.approx(3.0)


def test_conv_encoder_decoder_shapes():
    encoder, decoder = ConvEncoder(depth=4), ConvDecoder(depth=4)
    images = tf.zeros([2, 3, 64, 64, 3])
    embedding = encoder(images)
    assert embedding.shape == (2, 3, 128)
    assert decoder(tf.zeros([2, 3, 10])).shape == (2, 3, 64, 64, 3)
    assert mlp([5, 5], output=3)(tf.zeros([4, 2])).shape == (4, 3)
