"""The PID Lagrangian against hand-computed values, a float64 transcription of
OmniSafe's ``pid_update`` and the paper's Algorithm 2."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf

from saferl_tf.errors import ConfigError
from saferl_tf.rl.lagrangian import PIDLagrangian, make_penalty


class OmniSafePID:
    """OmniSafe's PIDLagrangian.pid_update in float64, fed ep_cost_avg = g with
    cost_limit = 0; penalty_max applies when neither sum_norm nor diff_norm."""

    def __init__(self, kp, ki, kd, d_delay, alpha_p, alpha_d, init, sum_norm=True,
                 diff_norm=False, penalty_max=100.0):  # fmt: skip
        self.kp, self.ki, self.kd, self.alpha_p, self.alpha_d = kp, ki, kd, alpha_p, alpha_d
        self.sum_norm, self.diff_norm, self.penalty_max = sum_norm, diff_norm, penalty_max
        self.integral, self.delta_p, self.cost_d, self.derivative = init, 0.0, 0.0, 0.0
        self.history = collections.deque([0.0], maxlen=d_delay)
        self.multiplier = 0.0

    def update(self, cost):
        delta = cost - 0.0
        self.integral = max(0.0, self.integral + delta * self.ki)
        if self.diff_norm:
            self.integral = max(0.0, min(1.0, self.integral))
        self.delta_p = self.alpha_p * self.delta_p + (1 - self.alpha_p) * delta
        self.cost_d = self.alpha_d * self.cost_d + (1 - self.alpha_d) * cost
        self.derivative = max(0.0, self.cost_d - self.history[0])
        output = self.kp * self.delta_p + self.integral + self.kd * self.derivative
        self.multiplier = max(0.0, output)
        if self.diff_norm:
            self.multiplier = min(1.0, self.multiplier)
        if not (self.diff_norm or self.sum_norm):
            self.multiplier = min(self.multiplier, self.penalty_max)
        self.history.append(self.cost_d)


def state(pid):
    return {key: float(value) for key, value in pid.metrics().items()}


def test_update_by_hand():
    """kp 1, ki 0.5, kd 2, both EMAs 0.5, derivative over 2 updates, I from 0."""
    settings = {"kp": 1.0, "ki": 0.5, "kd": 2.0, "d_delay": 2, "delta_p_ema_alpha": 0.5,
                "delta_d_ema_alpha": 0.5, "initial_multiplier": 0.0}  # fmt: skip
    pid = PIDLagrangian(**settings)
    capped = PIDLagrangian(**settings, max_multiplier=10.0)
    wound = PIDLagrangian(**settings, max_integral=5.0)
    # g = 4: I = 0 + 2 = 2; P = 0.5*0 + 0.5*4 = 2; S = 2, S_-1 = 0 -> D = 2;
    # lambda = 2 + 2 + 2*2 = 8.
    # g = -10: I = max(0, 2 - 5) = 0; P = 1 - 5 = -4; S = -4, S_0 = 0 -> D = max(0, -4) = 0;
    # lambda = max(0, -4 + 0 + 0) = 0.
    # g = 6: I = 3; P = -2 + 3 = 1; S = 1, S_1 = 2 -> D = max(0, -1) = 0; lambda = 1 + 3 = 4.
    # g = 8: I = 7; P = 0.5 + 4 = 4.5; S = 4.5, S_2 = -4 -> D = 8.5; lambda = 4.5 + 7 + 17 = 28.5.
    expected = [
        {"multiplier": 8.0, "integral": 2.0, "proportional": 2.0, "derivative": 2.0},
        {"multiplier": 0.0, "integral": 0.0, "proportional": -4.0, "derivative": 0.0},
        {"multiplier": 4.0, "integral": 3.0, "proportional": 1.0, "derivative": 0.0},
        {"multiplier": 28.5, "integral": 7.0, "proportional": 4.5, "derivative": 8.5},
    ]
    for g, values in zip([4.0, -10.0, 6.0, 8.0], expected):
        for penalty in (pid, capped, wound):
            penalty.update(g)
        assert state(pid) == pytest.approx(values)
    # Capped: lambda = min(28.5, 10); the integral is not.
    assert state(capped) == pytest.approx({**expected[-1], "multiplier": 10.0})
    # Integral capped at 5 (it was 7): lambda = 4.5 + 5 + 17 = 26.5.
    assert state(wound) == pytest.approx({**expected[-1], "integral": 5.0, "multiplier": 26.5})


@pytest.mark.parametrize("mode", ["sum_norm", "penalty_max", "diff_norm"])
def test_matches_omnisafe_pid_update(mode):
    settings = {"kp": 0.3, "ki": 0.05, "kd": 0.7, "d_delay": 3, "delta_p_ema_alpha": 0.9,
                "delta_d_ema_alpha": 0.8, "initial_multiplier": 0.2}  # fmt: skip
    ours = {"sum_norm": {}, "penalty_max": {"max_multiplier": 1.5},
            "diff_norm": {"max_multiplier": 1.0, "max_integral": 1.0}}[mode]  # fmt: skip
    flags = {"sum_norm": {}, "penalty_max": {"sum_norm": False, "penalty_max": 1.5},
             "diff_norm": {"sum_norm": False, "diff_norm": True}}[mode]  # fmt: skip
    pid = PIDLagrangian(**settings, **ours)
    reference = OmniSafePID(0.3, 0.05, 0.7, 3, 0.9, 0.8, 0.2, **flags)
    rng = np.random.default_rng(1)
    # Violations, then recovery, then noise: the clamps at 0 and above all act.
    costs = np.concatenate([rng.uniform(0, 20, 15), rng.uniform(-30, 0, 15), rng.normal(0, 8, 30)])
    clamped = capped = rises = falls = 0
    for g in costs:
        pid.update(tf.constant(g, tf.float32))
        reference.update(float(g))
        got = state(pid)
        want = {"multiplier": reference.multiplier, "integral": reference.integral,
                "proportional": reference.delta_p, "derivative": reference.derivative}  # fmt: skip
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
        clamped += reference.multiplier == 0.0
        capped += reference.multiplier == ours.get("max_multiplier")
        rises += reference.derivative > 0
        falls += reference.derivative == 0
    assert clamped and rises and falls and (capped or mode == "sum_norm")


def test_no_smoothing_and_one_step_delay_is_algorithm_2():
    """Stooke et al., Algorithm 2: I <- (I + e)+, D = (J - J_prev)+,
    lambda = (Kp e + Ki I + Kd D)+, with J_prev = 0 at first (here J is g)."""
    kp, ki, kd = 0.5, 0.2, 1.5
    pid = PIDLagrangian(kp, ki, kd, d_delay=1, delta_p_ema_alpha=0.0, delta_d_ema_alpha=0.0,
                        initial_multiplier=0.0)  # fmt: skip
    integral = previous = 0.0
    for g in np.random.default_rng(2).normal(0, 5, 40):
        integral = max(0.0, integral + g)
        multiplier = max(0.0, kp * g + ki * integral + kd * max(0.0, g - previous))
        previous = g
        pid.update(g)
        assert float(pid.multiplier) == pytest.approx(multiplier, rel=1e-5, abs=1e-5)


def test_loss_term_is_lambda_times_g_with_the_multiplier_constant():
    pid = PIDLagrangian(kp=1.0, ki=0.5, kd=0.0, delta_p_ema_alpha=0.5, initial_multiplier=0.25)
    constraint = tf.Variable(3.0)
    with tf.GradientTape() as tape:
        term = pid(constraint)
    assert float(term) == pytest.approx(0.75)  # The multiplier before any update.
    assert float(tape.gradient(term, constraint)) == pytest.approx(0.25)
    assert not pid.trainable_variables
    pid.update(constraint)  # I = 0.25 + 1.5, P = 1.5: lambda = 3.25.
    assert float(pid(constraint)) == pytest.approx(3.0 * 3.25)


def test_checkpoint_round_trip_resumes_identically(tmp_path):
    settings = {"kp": 0.3, "ki": 0.05, "kd": 0.7, "d_delay": 4, "max_multiplier": 50.0}
    pid = make_penalty("pid", **settings)
    for g in [5.0, 12.0, -3.0, 8.0, 20.0]:
        pid.update(g)
    path = tf.train.Checkpoint(penalty=pid).write(str(tmp_path / "ckpt"))
    restored = make_penalty("pid", **settings)
    tf.train.Checkpoint(penalty=restored).read(path).assert_consumed()
    np.testing.assert_array_equal(restored.history.numpy(), pid.history.numpy())
    assert restored.history.numpy().any()
    for g in [-1.0, 9.0, 30.0, -15.0, 2.0]:  # The derivative needs the whole history.
        pid.update(g)
        restored.update(g)
        assert state(restored) == state(pid)
        np.testing.assert_array_equal(restored.smoothed.numpy(), pid.smoothed.numpy())


@pytest.mark.parametrize("settings", [
    {"kp": -0.1}, {"ki": -1e-3}, {"kd": float("nan")}, {"kp": "0.1"}, {"d_delay": 0},
    {"d_delay": 2.5}, {"d_delay": True}, {"delta_p_ema_alpha": 1.0},
    {"delta_d_ema_alpha": -0.1}, {"max_multiplier": 0.0}, {"max_integral": -1.0},
    {"initial_multiplier": -0.5}, {"initial_multiplier": 2.0, "max_multiplier": 1.0},
    {"initial_multiplier": 2.0, "max_integral": 1.0},
])  # fmt: skip
def test_bad_settings(settings):
    with pytest.raises(ConfigError) as error:
        make_penalty("pid", **settings)
    assert "\n" not in str(error.value)
