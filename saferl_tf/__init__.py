"""saferl_tf: safe model-based reinforcement learning in TensorFlow 2.

Subpackages: ``envs`` (environments), ``agents`` (the agent contract and
agents), ``data`` (replay), ``training`` (loop, logging, checkpoints), ``bo``
(the constrained hyperparameter tuner), ``analysis`` (reading results).
Importing ``saferl_tf`` itself imports neither TensorFlow nor MuJoCo, so
environment worker processes stay light.
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
