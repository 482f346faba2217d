"""saferl_tf: safe model-based reinforcement learning in TensorFlow 2.

Subpackages: ``envs`` (environments), ``agents`` (the agent contract and
agents), ``models`` (world models and ensembles), ``planning`` (CEM and
min-max planners), ``rl`` (returns, the Lagrangian), ``search`` (GIBO and
its baselines), ``bo`` (the constrained hyperparameter tuner), ``data``
(replay), ``training`` (loop, logging, checkpoints), ``analysis`` (reading
results), ``cli`` (the programs) and ``configs`` (presets).
Importing ``saferl_tf`` or ``saferl_tf.envs`` imports neither TensorFlow nor
MuJoCo, so environment worker processes stay light (the package's own tasks
import TensorFlow only when a planner calls their task functions).
"""

__version__ = "0.1.0"


def _silence_adroit_notice() -> None:
    # gymnasium-robotics, loaded by gymnasium's plugin mechanism, prints a
    # notice about its Adroit tasks (which this package does not use) to stderr
    # on import; it reads the text from farama_notifications, so drop it there.
    try:
        import farama_notifications
    except ImportError:
        return
    farama_notifications.notifications.pop("gymnasium_robotics", None)


_silence_adroit_notice()
