"""A two-convolution network (BatchNorm optional) and a batch of 16 x 16 images: train_step
tests that need a model but not CE-Net."""
import flax.linen as nn
import numpy as np


class TinyNet(nn.Module):
    """Two convolutions, with or without a BatchNorm between them."""
    batch_norm: bool = True

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(4, (3, 3))(x)
        if self.batch_norm:
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Conv(1, (1, 1))(nn.relu(x))


def tiny_batch(size: int = 8, hw: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Random normalised images, binary labels and an all-true FOV."""
    rng = np.random.default_rng(seed)
    return {'image': rng.normal(size=(size, hw, hw, 3)).astype(np.float32),
            'label': rng.integers(0, 2, (size, hw, hw)).astype(np.int32),
            'fov': np.ones((size, hw, hw), np.float32)}
