"""The cost per step over the most recent real environment steps.

A Lagrangian whose multiplier follows the cost the agent actually incurs
(OmniSafe's ``SACLag`` moves its multiplier with the logged episode cost) needs
that cost measured where the multiplier is updated. ``CostWindow`` keeps the
last ``size`` step costs in a ring of non-trainable ``tf.Variable``s, so it is in
any checkpoint that holds it and a resumed run measures the same window::

    window = CostWindow(size=1000)
    window.add(costs)            # [N] costs of one (vector) environment step
    rate = window.rate()         # [] mean cost per step over the kept steps (0 when empty)
    window.count                 # steps kept, at most size
"""

from __future__ import annotations

import tensorflow as tf


class CostWindow(tf.Module):
    def __init__(self, size: int, name: str = "cost_window"):
        super().__init__(name=name)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)
        self.costs = tf.Variable(tf.zeros([self.size]), trainable=False, name="costs")
        self.next = tf.Variable(0, dtype=tf.int64, trainable=False, name="next")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")

    def add(self, costs) -> None:
        """Appends [N] step costs, oldest first, overwriting the oldest kept."""
        costs = tf.reshape(tf.cast(costs, tf.float32), [-1])
        added = tf.shape(costs, out_type=tf.int64)[0]
        slots = (self.next + tf.range(added, dtype=tf.int64)) % self.size
        # With more costs than slots only the newest `size` land (later writes win).
        keep = tf.range(added, dtype=tf.int64) >= added - self.size
        self.costs.scatter_nd_update(slots[keep][:, None], costs[keep])
        self.next.assign((self.next + added) % self.size)
        self.count.assign(tf.minimum(self.count + added, self.size))

    def rate(self) -> tf.Tensor:
        """[] the mean cost per step over the kept steps; 0 before any step."""
        kept = tf.cast(self.count, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(self.costs), kept)
