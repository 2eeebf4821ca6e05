"""What machine a benchmark ran on, for the JSON that docs tables are regenerated from: the CPU,
its core count, AMX and the oneDNN ISA cap, the settings both frameworks inherit, and the
package versions (read from the installed metadata, so nothing heavy is imported here)."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

# Environment both frameworks' workers inherit and that changes their speed.
SETTINGS_ENV = ('GLIBC_TUNABLES', 'ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'OMP_NUM_THREADS',
                'CENET_JAX_ONEDNN_THREADS', 'XLA_FLAGS')
PACKAGES = ('jax', 'jaxlib', 'flax', 'torch', 'onednn-cpu-gomp')


def cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo's text."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key = key.strip()
        if key == 'model name' and model is None:
            model = value.strip()
        elif key == 'flags' and not flags:
            flags = set(value.split())
    return model, flags


def isa_cap(env: dict[str, str]) -> str | None:
    """oneDNN's ISA cap as oneDNN reads it: ONEDNN_MAX_CPU_ISA, else DNNL_MAX_CPU_ISA."""
    return env.get('ONEDNN_MAX_CPU_ISA') or env.get('DNNL_MAX_CPU_ISA') or None


def amx_usable(cpu_flags: set[str], cap: str | None) -> bool:
    """Whether oneDNN may run AMX kernels: the CPU has amx_tile and amx_bf16 and
    ONEDNN_MAX_CPU_ISA (if set) names an AMX level or no cap (ALL / DEFAULT)."""
    if not {'amx_tile', 'amx_bf16'} <= cpu_flags:
        return False
    cap = (cap or '').strip().upper()
    return cap in ('', 'ALL', 'DEFAULT') or 'AMX' in cap


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(cpuinfo_path: str = '/proc/cpuinfo') -> dict[str, Any]:
    """This machine and process environment (the benchmark's parent: its workers inherit it)."""
    path = Path(cpuinfo_path)
    model, flags = cpuinfo(path.read_text()) if path.exists() else (None, set())
    cap = isa_cap(dict(os.environ))
    return {
        'cpu': model or platform.processor() or platform.machine(),
        'cores': os.cpu_count(),
        'cores_usable': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
        'amx_cpu': {'amx_tile', 'amx_bf16'} <= flags,
        'isa_cap': cap,
        'amx': amx_usable(flags, cap),
        'avx512_bf16': 'avx512_bf16' in flags,
        'python': platform.python_version(),
        'versions': {p: _version(p) for p in PACKAGES},
        'env': {k: os.environ.get(k) for k in SETTINGS_ENV},
    }
