"""FLOPs of one training step from XLA's cost analysis, and the devices' peak FLOP/s (for MFU).

The count comes from the train step built with `model.conv_impl='xla'` and only lowered, never
compiled: `jax.jit(step).lower(state, batch).cost_analysis()['flops']`. XLA's cost analysis
counts convolutions, dots and elementwise work, but not custom calls, so the oneDNN formulation
(the CPU default) would count almost nothing; the formulations compute the same convolutions, so
the XLA form's count is the work of the step whichever one runs. Cost analysis counts the body of
a loop once, so a step with gradient accumulation is counted as one pass over the whole batch
(the same arithmetic). The count is of the global batch (the step before it is split over
devices), so FLOP/s and MFU are of all devices together.

MFU = achieved FLOP/s / (devices x peak FLOP/s per device), with the dense bf16 peak of the
device's datasheet (the convention of MaxText and big_vision), or `config.peak_tflops`. CPUs have
no entry: there the log gives TFLOP/s only.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import jax
import ml_collections
from flax import linen as nn

from cenet_jax.models import build_model

log = logging.getLogger('cenet_jax')

# Dense bf16 peak per JAX device, TFLOP/s, by a substring of `device.device_kind` (first match
# wins, so the more specific names come first). TPU v2/v3 devices are single cores.
PEAK_TFLOPS = (
    ('H100 PCIe', 756.0), ('H100', 989.0), ('H200', 989.0), ('GH200', 989.0), ('B200', 2250.0),
    ('A100', 312.0), ('A10G', 125.0), ('A10', 125.0), ('L40S', 362.0), ('L4', 121.0),
    ('V100', 125.0), ('T4', 65.0), ('RTX 4090', 165.0),
    ('TPU v6 lite', 918.0), ('TPU v5 lite', 197.0), ('TPU v5p', 459.0), ('TPU v5', 459.0),
    ('TPU v4', 275.0), ('TPU v3', 61.5), ('TPU v2', 22.5),
)


def peak_flops_per_device(device: Any, override_tflops: float = 0.0) -> float | None:
    """Peak FLOP/s of one device: `override_tflops` if > 0, else the table's entry for a GPU or
    TPU, else None (CPU, or a device kind the table does not know)."""
    if override_tflops > 0:
        return float(override_tflops) * 1e12
    if device.platform == 'cpu':
        return None
    kind = str(getattr(device, 'device_kind', ''))
    for pattern, tflops in PEAK_TFLOPS:
        if pattern.lower() in kind.lower():
            return tflops * 1e12
    log.info('MFU not shown: no peak FLOP/s known for device kind %r (set --config.peak_tflops '
             'to its dense bf16 TFLOP/s per device)', kind)
    return None


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


_CACHE: dict[str, float | None] = {}


def _lowered_flops(fn: Callable[..., Any], args: tuple[Any, ...]) -> float | None:
    costs = jax.jit(fn).lower(*args).cost_analysis()
    if isinstance(costs, (list, tuple)):   # older JAX: one dict per computation
        costs = costs[0] if costs else {}
    flops = float((costs or {}).get('flops', 0.0))
    return flops if flops > 0 else None


def train_step_flops(make_step: Callable[[nn.Module], Callable[..., Any]],
                     model_cfg: ml_collections.ConfigDict, state: Any, batch: Any,
                     cache_key: str = '') -> float | None:
    """FLOPs of one step `make_step(model)(state, batch)` of the model built from `model_cfg`
    with conv_impl='xla' (lowered, not compiled; see the module docstring). `state` and `batch`
    may be arrays or shape structs; None if XLA reports no count. Counts are cached per
    `cache_key` (give one that says everything the step depends on, or '' for no cache)."""
    if cache_key and cache_key in _CACHE:
        return _CACHE[cache_key]
    xla_cfg = model_cfg.copy_and_resolve_references()
    with xla_cfg.unlocked():
        xla_cfg.conv_impl = 'xla'
    try:
        flops = _lowered_flops(make_step(build_model(xla_cfg)), (_abstract(state), _abstract(batch)))
    except Exception as err:   # a count is a nicety: never stop training for it
        log.warning('cannot count the FLOPs of a training step (%s: %s); the log shows images/s '
                    'only', type(err).__name__, str(err).splitlines()[0] if str(err) else '')
        return None
    if cache_key:
        _CACHE[cache_key] = flops
    return flops
