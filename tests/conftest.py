"""Test session setup: 4 virtual CPU devices (for data-parallel tests) before JAX starts, and a
persistent compilation cache so repeated compiles of the same step (resume tests,
subprocesses) are paid once."""
import os
import tempfile

_CACHE = os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                               os.path.join(tempfile.gettempdir(), 'cenet_jax_test_jit_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
import jax  # noqa: E402

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_platforms', 'cpu')
