"""Training: losses, optimiser, sharding, the train step, checkpoints and the loop."""
