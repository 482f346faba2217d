"""Training: the collect/update/evaluate loop, logging and checkpoints."""
