"""Experience storage."""

from saferl_tf.data.replay import Chunk, EpisodeReplay

__all__ = ["Chunk", "EpisodeReplay"]
