"""Frames for people to watch: the environment's own camera at a watchable size.

``camera = watch_camera(env, size=480)`` then ``camera.frame()`` after each
``reset`` or ``step`` returns the scene as uint8 [size, size, 3];
``camera.close()`` frees it. Pixel observations (64x64, the agent's view)
are too small to watch, and the robot's ``vision`` camera shows little of a
safety-gymnasium task, so MuJoCo tasks get a renderer of their own:

- safety-gymnasium: the ``track`` camera that follows the robot, with every
  geometry group shown (hazards, goal and vases are in groups the default
  view hides; safety-gymnasium's own ``render`` turns them on the same way);
- gymnasium MuJoCo tasks (and the package's own MuJoCo tasks): the camera
  gymnasium renders with, ``track`` where the model has one, else the free
  camera set up by the task's ``default_camera_config``;
- other tasks (the package's NumPy tasks): their own ``render()``, scaled up
  (they must be made with ``make(..., render=True)``).

The renderer is a second offscreen OpenGL context beside the one a pixel
environment renders its observations with; only one context is current at a
time, so after each frame the environment's own is made current again and
its observations are unchanged (tests/test_watch.py checks this).
"""

from __future__ import annotations

import numpy as np

from saferl_tf.envs import rendering
from saferl_tf.envs.wrappers import SafeEnv, resize_image
from saferl_tf.errors import ConfigError

DEFAULT_SIZE = 480


class WatchCamera:
    """Renders frames of one environment (see the module docstring)."""

    def frame(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _MujocoCamera(WatchCamera):
    def __init__(self, physics, size: int, camera: str | None, camera_config: dict | None,
                 all_geom_groups: bool, other_viewers):  # fmt: skip
        from gymnasium.envs.mujoco.mujoco_rendering import OffScreenViewer

        self._physics = physics
        model, data = physics()
        self._camera = camera
        # The offscreen buffer takes its size from the model when it is made.
        settings = model.vis.global_
        previous = settings.offwidth, settings.offheight
        settings.offwidth = settings.offheight = size
        try:
            self._viewer = OffScreenViewer(model, data)
        finally:
            settings.offwidth, settings.offheight = previous
        self._camera_id = camera_id = self._find_camera(model)
        if camera_id == -1:
            for key, value in (camera_config or {}).items():
                if isinstance(value, np.ndarray):
                    getattr(self._viewer.cam, key)[:] = value
                else:
                    setattr(self._viewer.cam, key, value)
        if all_geom_groups:
            self._viewer.vopt.geomgroup[:] = 1
        self._other_viewers = other_viewers

    def _find_camera(self, model) -> int:
        import mujoco

        if self._camera is None:
            return -1
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self._camera)

    def frame(self) -> np.ndarray:
        # safety-gymnasium builds a new model and data when a reset changes the
        # layout; the viewer follows them as safety-gymnasium's own does.
        model, data = self._physics()
        if model is not self._viewer.model or data is not self._viewer.data:
            self._viewer.model, self._viewer.data = model, data
            self._camera_id = self._find_camera(model)
        self._viewer.make_context_current()
        try:
            frame = self._viewer.render("rgb_array", camera_id=self._camera_id)
        finally:
            for viewer in self._other_viewers():
                viewer.make_context_current()
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.free()
            self._viewer = None
            for viewer in self._other_viewers():
                viewer.make_context_current()


class _RenderCamera(WatchCamera):
    def __init__(self, env: SafeEnv, size: int):
        self._env = env
        self._size = size

    def frame(self) -> np.ndarray:
        frame = self._env.render()
        if frame is None:
            raise ConfigError(
                "the environment rendered nothing; make it with make(..., render=True) to watch it"
            )
        frame = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
        if frame.shape[:2] != (self._size, self._size):
            frame = resize_image(frame, self._size)
        return frame


def watch_camera(env: SafeEnv, size: int = DEFAULT_SIZE) -> WatchCamera:
    """A camera on ``env`` giving uint8 [size, size, 3] frames (module docstring).

    Raises ConfigError (one line) when the environment cannot render.
    """
    if size < 16:
        raise ConfigError(f"the video size must be at least 16 pixels, got {size}")
    inner = env.unwrapped
    task = getattr(inner, "task", None)
    if task is not None and hasattr(task, "model") and hasattr(task, "_viewers"):
        # safety-gymnasium: the model lives on the task; its own viewers (the
        # pixel observation's) are in ``task._viewers``.
        rendering.prepare_headless_rendering()
        return _MujocoCamera(lambda: (task.model, task.data), size, "track", None, True,
                             lambda: list(task._viewers.values()))  # fmt: skip
    if hasattr(inner, "model") and hasattr(inner, "mujoco_renderer"):
        rendering.prepare_headless_rendering()
        renderer = inner.mujoco_renderer
        return _MujocoCamera(lambda: (inner.model, inner.data), size, "track",
                             renderer.default_cam_config, False,
                             lambda: list(renderer._viewers.values()))  # fmt: skip
    modes = getattr(inner, "metadata", {}).get("render_modes", [])
    if "rgb_array" not in modes:
        raise ConfigError(
            f"{type(inner).__name__} cannot render frames (its render modes: "
            f"{', '.join(modes) or 'none'}), so it has no video"
        )
    return _RenderCamera(env, size)


def frames_per_second(env: SafeEnv, action_repeat: int = 1) -> float:
    """The playback rate at which a video of ``env``, one frame per agent step,
    runs in real time: the task's ``render_fps`` over the action repeat."""
    fps = getattr(env.unwrapped, "metadata", {}).get("render_fps") or 30
    return max(float(fps) / max(action_repeat, 1), 1.0)
