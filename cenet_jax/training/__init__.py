"""Training: state and optimizer, jitted steps, device mesh and hosts, the training loop."""
