"""A two-convolution network (BatchNorm optional) and a batch of 16 x 16 images: train_step
tests that need a model but not CE-Net; a small softmax encoder-decoder (LayerNet) that learns
the synthetic OCT layers in seconds."""
import flax.linen as nn
import jax
import jax.numpy as jnp
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


class LayerNet(nn.Module):
    """Softmax logits from two poolings and dilated convolutions (a receptive field of about 60
    rows), upsampled and joined with the full-resolution features: enough for OCT layers."""
    num_classes: int = 11

    @nn.compact
    def __call__(self, x, train: bool = False):
        full = nn.relu(nn.Conv(16, (3, 3))(x))
        low = nn.relu(nn.Conv(32, (3, 3))(nn.max_pool(full, (2, 2), (2, 2))))
        low = nn.max_pool(low, (2, 2), (2, 2))
        for dilation in (2, 4):
            low = nn.relu(nn.Conv(32, (3, 3), kernel_dilation=dilation)(low))
        up = jax.image.resize(low, full.shape[:3] + low.shape[-1:], 'bilinear')
        joined = nn.relu(nn.Conv(32, (3, 3))(jnp.concatenate([full, up], axis=-1)))
        return nn.Conv(self.num_classes, (1, 1))(joined)

