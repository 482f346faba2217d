"""Network builders shared by the agents (Keras 3 layers, float32 or mixed).

    mlp([400, 400, 400], output=30)          # Dense stack, ELU, linear output, any rank
    ConvEncoder(depth=32)(images [B, 64, 64, 3] in [-0.5, 0.5]) -> [B, 32 depth]
    ConvDecoder(depth=32)(features [B, F]) -> means [B, 64, 64, 3]

The convolutional pair is Dreamer's (and LAMBDA's): four stride-2 convolutions
with kernels 4 and depths d, 2d, 4d, 8d down to 2x2, and four transposed
convolutions with kernels 5, 5, 6, 6 from 1x1 back to 64x64.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import keras
import tensorflow as tf


@contextlib.contextmanager
def seeded_initializers(seed: int):
    """Within this block, Keras layers draw their initial weights from ``seed``.

    A Keras 3 initializer made without a seed takes one from Python's ``random``
    module when it is made, so two agents with the same seed would start from
    different weights. ``keras.utils.set_random_seed`` would reseed Python,
    NumPy and TensorFlow for the whole process; this seeds Python's generator
    for the block only and then puts its state back.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _named_layers(owner: keras.layers.Layer, prefix: str, layers) -> None:
    """Sets ``layers`` as attributes ``<prefix>_0``, ``<prefix>_1``, ...

    ``tf.train.Checkpoint`` follows a Keras 3 layer's attributes but not the
    layers inside a list attribute: layers kept in a list would be trained but
    silently missing from every checkpoint.
    """
    for index, layer in enumerate(layers):
        setattr(owner, f"{prefix}_{index}", layer)
    owner._layer_counts = {**getattr(owner, "_layer_counts", {}), prefix: len(layers)}


def _layers(owner: keras.layers.Layer, prefix: str) -> list:
    return [getattr(owner, f"{prefix}_{i}") for i in range(owner._layer_counts[prefix])]


class MLP(keras.layers.Layer):
    """Dense layers of ``units`` with ``activation``, then a linear ``output`` layer.

    Unlike ``keras.Sequential``, which fixes its input rank at the first call,
    it takes inputs of any rank [..., F] (batch, time, samples, ...).
    """

    def __init__(self, units: Sequence[int], output: int | None = None,
                 activation: str = "elu", **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        _named_layers(self, "hidden", [keras.layers.Dense(size, activation=activation)
                                       for size in units])  # fmt: skip
        self.output_layer = None if output is None else keras.layers.Dense(output)

    def call(self, inputs):
        x = inputs
        for layer in _layers(self, "hidden"):
            x = layer(x)
        return x if self.output_layer is None else self.output_layer(x)


def mlp(units: Sequence[int], output: int | None = None, activation: str = "elu",
        name: str | None = None) -> MLP:  # fmt: skip
    """``MLP(units, output, activation)``."""
    return MLP(units, output, activation, name=name)


def preprocess_image(image) -> tf.Tensor:
    """uint8 [..., H, W, C] -> float32 in [-0.5, 0.5]."""
    return tf.cast(image, tf.float32) / 255.0 - 0.5


class ConvEncoder(keras.layers.Layer):
    def __init__(self, depth: int = 32, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        _named_layers(self, "convolution", [
            keras.layers.Conv2D(multiple * depth, 4, strides=2, activation=activation)
            for multiple in (1, 2, 4, 8)
        ])  # fmt: skip

    def call(self, images):
        """images [..., 64, 64, C] (float) -> [..., 32 depth]."""
        leading = tf.shape(images)[:-3]
        x = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))
        for convolution in _layers(self, "convolution"):
            x = convolution(x)
        return tf.reshape(x, tf.concat([leading, [32 * self.depth]], 0))


class ConvDecoder(keras.layers.Layer):
    def __init__(self, depth: int = 32, channels: int = 3, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.dense = keras.layers.Dense(32 * depth)
        _named_layers(self, "transposed", [
            keras.layers.Conv2DTranspose(4 * depth, 5, strides=2, activation=activation),
            keras.layers.Conv2DTranspose(2 * depth, 5, strides=2, activation=activation),
            keras.layers.Conv2DTranspose(depth, 6, strides=2, activation=activation),
            keras.layers.Conv2DTranspose(channels, 6, strides=2),
        ])  # fmt: skip

    def call(self, features):
        """features [..., F] -> image means [..., 64, 64, channels]."""
        leading = tf.shape(features)[:-1]
        x = tf.reshape(self.dense(features), [-1, 1, 1, 32 * self.depth])
        for layer in _layers(self, "transposed"):
            x = layer(x)
        return tf.reshape(x, tf.concat([leading, tf.shape(x)[1:]], 0))
