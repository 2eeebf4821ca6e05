"""Training: state and optimizer, jitted steps, the training loop."""
