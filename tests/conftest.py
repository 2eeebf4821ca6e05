"""Test session setup: 4 virtual CPU devices (for data-parallel tests) before JAX starts."""
import os

os.environ.setdefault('XLA_FLAGS', '')
import jax  # noqa: E402

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_platforms', 'cpu')
