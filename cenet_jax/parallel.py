"""Device mesh, shardings and hosts: data parallelism over every device of every host.

Training and prediction both use it, so it sits below both (it imports only `errors`, and
orbax's process barrier when several processes train)."""
from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cenet_jax.errors import ConfigError

DATA_AXIS = 'data'

# Environment variables that mean "this process is one of several" (TPU pods set up
# jax.distributed.initialize() themselves from metadata; these cover the others).
_MULTI_PROCESS_ENV = ('JAX_COORDINATOR_ADDRESS', 'COORDINATOR_ADDRESS')


def maybe_initialize_distributed(mode: str = 'auto', coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> bool:
    """Call `jax.distributed.initialize()` for multi-host runs; returns whether it did.

    mode 'on' always initialises (TPU pods, SLURM and Open MPI are auto-detected by JAX),
    'off' never, 'auto' when a coordinator address is given as a flag or in the environment.
    Must run before anything touches the devices.
    """
    if mode not in ('auto', 'on', 'off'):
        raise ConfigError(f"--distributed must be 'auto', 'on' or 'off', got {mode!r}")
    wanted = mode == 'on' or (mode == 'auto' and (
        coordinator_address is not None or any(os.environ.get(k) for k in _MULTI_PROCESS_ENV)))
    if not wanted:
        return False
    kwargs: dict[str, Any] = {}
    if coordinator_address is not None:
        kwargs.update(coordinator_address=coordinator_address, num_processes=num_processes,
                      process_id=process_id)
    jax.distributed.initialize(**kwargs)
    return True


def make_mesh(devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh over all devices of all hosts, axis 'data'."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def on_mesh(fn: Callable[..., Any], mesh: Mesh) -> Callable[..., Any]:
    """`fn` called with `mesh` set (`jax.set_mesh`), so that a jitted fn is traced seeing it:
    operations that work per shard (the oneDNN calls of `cenet_jax.ops`) split the batch over
    it instead of gathering it onto every device."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with jax.set_mesh(mesh):
            return fn(*args, **kwargs)
    return call


# How long a process waits for the others at a barrier (slow hosts, cold compile caches).
BARRIER_TIMEOUT_S = 1800


def wait_for_every_process(what: str) -> None:
    """Several processes: wait until every process gets here (a barrier of the distributed
    runtime, not a collective, so it waits BARRIER_TIMEOUT_S). CPU collectives (gloo) give a peer
    30 s to reach a program's first collective: a host that starts or compiles more slowly than
    that would otherwise fail the run. One process: returns at once."""
    if jax.process_count() == 1:
        return
    from orbax.checkpoint import multihost   # the barrier orbax's checkpoints use
    multihost.get_barrier_sync_fn()(key=what, timeout_ms=BARRIER_TIMEOUT_S * 1000)


def compile_on_every_process(jitted: Any, mesh: Mesh, *args: Any, what: str) -> None:
    """Several processes: compile `jitted` for `args` here, then wait until every process has
    (wait_for_every_process), so that the hosts reach its first collective together. One
    process: nothing to do (the first call compiles)."""
    if jax.process_count() == 1:
        return
    with jax.set_mesh(mesh):
        jitted.lower(*args).compile()   # the jitted function's later calls reuse this executable
    wait_for_every_process(f'compiled {what}')


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Same value on every device."""
    return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """Per-host batch size; a clear error if the global batch does not split evenly."""
    n_dev, n_proc = mesh.devices.size, jax.process_count()
    if global_batch_size <= 0 or global_batch_size % n_dev:
        raise ConfigError(
            f'config.batch_size={global_batch_size} must be a positive multiple of the number of '
            f'devices ({n_dev}: {jax.device_count()} over {n_proc} host(s)); e.g. '
            f'--config.batch_size={max(n_dev, (global_batch_size // n_dev or 1) * n_dev)}.')
    return global_batch_size // n_proc


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This host's numpy batch -> global jax.Arrays sharded on the data axis."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a pytree of host values on every device (same values on every host)."""
    return jax.device_put(tree, replicated(mesh))
