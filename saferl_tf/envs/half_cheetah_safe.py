"""``saferl_HalfCheetahSafe-v0``: the CMBPO seed's HalfCheetahSafe-v2, on gymnasium and mujoco 2.3.

The half cheetah runs along x behind a wall that a motor drives forward. The
wall (a box 0.2 m thick, on the slide joint ``wall_joint``, ``qpos[0]``) starts
10 m ahead of the cheetah and is pushed by ``120 * (0.02 sin(t/3)^2 - 0.004)`` N,
t the simulated time before the step: it first drifts back a little, then moves
ahead at about 3.4 m/s on average (between about -2 and 9 m/s, period 3π s).
It collides with the cheetah.

Step (dt = 0.05 s: frame skip 5 at timestep 0.01), as the seed's
``envs/mujoco_safety_gym/envs/half_cheetah.py``:

- the action in [-1, 1]^6 is clipped to that box (the seed's environment
  wrapper clipped it) and drives the cheetah's six motors;
- reward = (x_after - x_before) / dt - 0.1 |action|^2, x = ``qpos[1]`` (rootx);
- cost = 1 when |wall_x - x_after| < 2, wall_x the x of the wall's geom as
  MuJoCo left it after the last substep (``data.geom_xpos``, from the
  kinematics of the substep's start, as mujoco-py's was); also when the
  cheetah is ahead of the wall. ``info['cost']`` holds it;
- never terminates; episodes last 1000 steps (registered time limit).

Observation (20 numbers): ``qpos[2:]`` (rootz, rooty, six joint angles; 8),
``qvel[1:]`` (9), the wall's velocity, the wall's control for the next step
``0.02 sin(t/3)^2 - 0.004`` (t after the step) and
``clip((wall_x - x) / 10, -5, 5)``. Reset: every qpos (wall and rootx
included) gets U(-0.1, 0.1) noise and every qvel 0.1 N(0, 1), time 0.

``TASK_FUNCTIONS``: cost = ``|next_observation[..., -1] * 10| < 2`` (the seed's
``hcs_cost_f``), no termination, the reward learned (None). The cost function
works on float32 observations, so it can differ from ``info['cost']`` only when
the distance lies within float32 rounding (about 1e-7 m) of 2 m.

Differences from the seed: MuJoCo 2.3.3 instead of 2.0 (trajectories may
differ slightly), the floor texture's colours written as numbers (MuJoCo >= 2.3
rejects '#rrggbb'), gymnasium's rendering and seeding.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

from saferl_tf.envs.registry import TaskFunctions, register_env

ASSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "half_cheetah_safe.xml")
FRAME_SKIP = 5
EPISODE_STEPS = 1000
CONTROL_COST = 0.1
COST_DISTANCE = 2.0
DISTANCE_SCALE = 10.0
DISTANCE_CLIP = 5.0
RESET_NOISE = 0.1
OBSERVATION_SIZE = 20
WALL_COLOR = np.array([1.0, 0.5, 0.5, 0.8])
WALL_COLOR_COST = np.array([1.0, 0.0, 0.0, 1.0])


def wall_control(time: float) -> float:
    """The wall motor's control at simulated ``time`` (its force is 120 times this)."""
    return 0.02 * np.sin(time / 3) ** 2 - 0.004


class HalfCheetahSafeEnv(MujocoEnv, utils.EzPickle):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}

    def __init__(self, **kwargs):
        utils.EzPickle.__init__(self, **kwargs)
        observation_space = Box(-np.inf, np.inf, (OBSERVATION_SIZE,), np.float64)
        MujocoEnv.__init__(
            self,
            ASSET,
            FRAME_SKIP,
            observation_space=observation_space,
            default_camera_config={"distance": 4.0},
            **kwargs,
        )
        self._wall_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "obj_geom")
        wall_joint = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "wall_joint")
        self._wall_qpos = int(self.model.jnt_qposadr[wall_joint])
        self._wall_dof = int(self.model.jnt_dofadr[wall_joint])

    def _set_action_space(self):
        # The cheetah's six motors; the last actuator (the wall's) is not the agent's.
        low, high = self.model.actuator_ctrlrange[:-1].astype(np.float32).T
        self.action_space = Box(low=low, high=high, dtype=np.float32)
        return self.action_space

    @property
    def wall_x(self) -> float:
        """The x of the wall's geom, from MuJoCo's last kinematics (as cost and observation use)."""
        return float(self.data.geom_xpos[self._wall_geom, 0])

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64).reshape(self.action_space.shape), -1, 1)
        x_before = self.data.qpos[1]
        control = np.append(action, wall_control(self.data.time))
        self._step_mujoco_simulation(control, FRAME_SKIP)
        x_after = self.data.qpos[1]
        cost = float(abs(self.wall_x - x_after) < COST_DISTANCE)
        self.model.geom_rgba[self._wall_geom] = WALL_COLOR_COST if cost else WALL_COLOR
        reward_run = (x_after - x_before) / self.dt
        reward_ctrl = -CONTROL_COST * float(np.square(action).sum())
        info = {"reward_run": reward_run, "reward_ctrl": reward_ctrl, "cost": cost}
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward_run + reward_ctrl, False, False, info

    def _get_obs(self) -> np.ndarray:
        qpos, qvel = self.data.qpos, self.data.qvel
        # The seed read body_xvelp('obj1')[0]: the wall's x velocity, its slide joint's.
        wall_velocity = qvel[self._wall_dof]
        distance = np.clip((self.wall_x - qpos[1]) / DISTANCE_SCALE, -DISTANCE_CLIP, DISTANCE_CLIP)
        return np.concatenate(
            [qpos[2:], qvel[1:], [wall_velocity, wall_control(self.data.time), distance]]
        )

    def reset_model(self):
        qpos = self.init_qpos + self.np_random.uniform(-RESET_NOISE, RESET_NOISE, self.model.nq)
        qvel = self.init_qvel + RESET_NOISE * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()


def half_cheetah_safe_cost(observation, action, next_observation):
    """The seed's ``hcs_cost_f`` on batches: 1.0 where the cheetah ends within 2 m of the wall."""
    import tensorflow as tf

    del observation, action
    next_observation = tf.convert_to_tensor(next_observation)
    near = tf.abs(next_observation[..., -1] * DISTANCE_SCALE) < COST_DISTANCE
    return tf.cast(near, next_observation.dtype)


TASK_FUNCTIONS = TaskFunctions(reward=None, cost=half_cheetah_safe_cost, terminal=None)

register_env(
    "HalfCheetahSafe-v0",
    lambda **kwargs: HalfCheetahSafeEnv(**kwargs),
    max_episode_steps=EPISODE_STEPS,
    task_functions=TASK_FUNCTIONS,
)
