"""Model and converter tests (parity with PyTorch, shapes, training sanity)."""
