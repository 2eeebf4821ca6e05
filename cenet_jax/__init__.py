"""cenet-jax: CE-Net (Gu et al., IEEE TMI 2019) for 2D medical image segmentation in JAX/Flax."""
__version__ = '0.1.0'
