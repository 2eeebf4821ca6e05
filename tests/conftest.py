"""Test session setup: 4 virtual CPU devices (for data-parallel tests) before JAX starts, and a
persistent compilation cache so repeated compiles of the same step (resume tests,
subprocesses) are paid once."""
import os
import tempfile

_CACHE = os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                               os.path.join(tempfile.gettempdir(), 'cenet_jax_test_jit_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# Under pytest-xdist (`-n 2`, as .ci/run runs), each worker's oneDNN calls get their share of the
# cores: OpenMP teams of 2 on the 2 cores of each of 2 workers spin against each other and run
# several times slower (docs/performance.md, "Threads").
if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
    os.environ.setdefault('CENET_JAX_ONEDNN_THREADS', str(max(
        1, len(os.sched_getaffinity(0)) // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))))
import jax  # noqa: E402

jax.config.update('jax_num_cpu_devices', 4)
jax.config.update('jax_platforms', 'cpu')
