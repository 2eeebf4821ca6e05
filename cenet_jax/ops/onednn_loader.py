"""Loader of the compiled oneDNN extension (`csrc/`, built by `pip install -e .` into this
folder as `_onednn*.so`) and the one way to call it from jitted code: `call(key, inputs,
results)`, an XLA FFI custom call that runs the oneDNN operation `key` describes (the
operations and their VJPs are in `onednn.py`).

The extension needs oneDNN 3.2's runtime from the `onednn-cpu-gomp` wheel (x86-64 Linux); where
it cannot load, `unavailable_reason()` says why and `conv_impl='auto'` stays on 'matmul'.
A key is a tuple of integers (operation, direction, dtypes, shapes, options; see the csrc/ files);
`describe(key)` builds and caches the primitive at trace time and says how many bytes each of
its buffers and its scratch space take, so that XLA allocates them.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import importlib.metadata
import logging
import os
import platform
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

log = logging.getLogger('cenet_jax')

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

TARGET = 'cenet_onednn'
CONV, BATCH_NORM, MAX_POOL = 0, 1, 2  # key[0]
DTYPE_CODES = {jnp.dtype(jnp.float32): 0, jnp.dtype(jnp.bfloat16): 1}
EXTENSION_STEM = '_onednn'
RUNTIME_DISTRIBUTION = 'onednn-cpu-gomp'
# OpenMP threads per oneDNN call; default: the cores this process may run on.
THREADS_ENV = 'CENET_JAX_ONEDNN_THREADS'


def _extension_path() -> Path | None:
    """The compiled extension beside this file (an in-place or installed build), if any."""
    here = Path(__file__).resolve().parent
    found = sorted(glob.glob(str(here / f'{EXTENSION_STEM}*.so')))
    return Path(found[0]) if found else None


def _runtime_path() -> Path:
    """libdnnl.so.3 as the onednn-cpu-gomp wheel installs it (under the environment's prefix)."""
    for f in importlib.metadata.files(RUNTIME_DISTRIBUTION) or ():
        if f.name == 'libdnnl.so.3':
            return Path(f.locate()).resolve()
    raise FileNotFoundError(f'{RUNTIME_DISTRIBUTION} lists no libdnnl.so.3')


@functools.cache
def _load() -> ctypes.CDLL | str:
    """The loaded extension with its FFI target registered, or why it cannot be used."""
    if sys.platform != 'linux' or platform.machine() not in ('x86_64', 'AMD64'):
        return f'the oneDNN extension is built for x86-64 Linux only (this is {sys.platform} ' \
               f'{platform.machine()})'
    ext = _extension_path()
    if ext is None:
        return ('the oneDNN extension was not built (`pip install -e .` builds it where a C++ '
                'compiler and the onednn-devel-cpu-gomp wheel are available; its build log says '
                'why it was skipped)')
    try:
        runtime = _runtime_path()
    except (importlib.metadata.PackageNotFoundError, FileNotFoundError) as e:
        return f'oneDNN runtime not found ({e}); pip install onednn-cpu-gomp==2023.2.0'
    try:
        # The extension needs libdnnl.so.3; loading it globally first lets the dynamic linker
        # find it by its soname wherever the wheel put it.
        ctypes.CDLL(str(runtime), mode=os.RTLD_GLOBAL | getattr(os, 'RTLD_NOW', 2))
        lib = ctypes.CDLL(str(ext))
    except OSError as e:
        return f'cannot load the oneDNN extension {ext}: {e}'
    key_args = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    lib.cenet_onednn_describe.restype = ctypes.c_int64
    lib.cenet_onednn_describe.argtypes = key_args + [ctypes.POINTER(ctypes.c_int64),
                                                     ctypes.c_int64]
    lib.cenet_onednn_impl_info.restype = ctypes.c_char_p
    lib.cenet_onednn_impl_info.argtypes = key_args
    lib.cenet_onednn_last_error.restype = ctypes.c_char_p
    lib.cenet_onednn_version.restype = ctypes.c_char_p
    lib.cenet_onednn_set_num_threads.argtypes = [ctypes.c_int]
    lib.cenet_onednn_profile.argtypes = [ctypes.c_int]
    lib.cenet_onednn_profile_read.argtypes = [ctypes.POINTER(ctypes.c_double),
                                              ctypes.POINTER(ctypes.c_int64)]
    threads = os.environ.get(THREADS_ENV) or len(os.sched_getaffinity(0))
    lib.cenet_onednn_set_num_threads(int(threads))
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.cenet_onednn), platform='cpu')
    return lib


def unavailable_reason() -> str | None:
    """None when the oneDNN path can run here, else one sentence saying why not."""
    lib = _load()
    return lib if isinstance(lib, str) else None


def available() -> bool:
    return unavailable_reason() is None


def _library() -> ctypes.CDLL:
    lib = _load()
    if isinstance(lib, str):
        from cenet_jax.errors import ConfigError
        raise ConfigError(f"model.conv_impl='onednn' cannot run: {lib}. Use "
                          "model.conv_impl='auto' (falls back to 'matmul') or 'xla'.")
    return lib


def version() -> str:
    """oneDNN's version and the instruction set it dispatches to, e.g. '3.2.0 avx512_core_amx'."""
    return _library().cenet_onednn_version().decode()


# ---------------------------------------------------------------------------------------------
# Calls.

Key = tuple[int, ...]


class Description(NamedTuple):
    """What a key's primitive needs: scratch bytes, and (is_output, bytes) per buffer in call
    order (inputs and outputs interleaved as the operation lists them)."""
    scratch_bytes: int
    slots: tuple[tuple[bool, int], ...]


def _as_c(key: Key):
    return (ctypes.c_int64 * len(key))(*key), len(key)


@functools.lru_cache(maxsize=None)
def describe(key: Key) -> Description:
    """Builds (once) the primitive of `key` and describes its buffers; an operation oneDNN
    cannot do fails here, at trace time, with oneDNN's reason."""
    lib = _library()
    out = (ctypes.c_int64 * 64)()
    n = lib.cenet_onednn_describe(*_as_c(key), out, 64)
    if n < 0:
        raise ValueError(f'oneDNN cannot run {key}: {lib.cenet_onednn_last_error().decode()}')
    slots = tuple((bool(out[2 + 2 * i]), int(out[3 + 2 * i])) for i in range(out[1]))
    return Description(int(out[0]), slots)


def output_bytes(key: Key) -> list[int]:
    """Bytes of each output of `key`, in order (to size opaque results such as masks)."""
    return [size for output, size in describe(key).slots if output]


def impl_info(key: Key) -> str:
    """oneDNN's name for the kernel a key runs, e.g. 'brgconv:avx512_core_amx'."""
    describe(key)
    return _library().cenet_onednn_impl_info(*_as_c(key)).decode()


def call(key: Key, inputs: Sequence[jax.Array], results: Sequence[jax.ShapeDtypeStruct]
         ) -> list[jax.Array]:
    """Runs the operation of `key` on `inputs`, returning `results` (the outputs in order);
    XLA allocates the scratch space as one more, discarded, result."""
    scratch = jax.ShapeDtypeStruct((describe(key).scratch_bytes,), jnp.uint8)
    outputs = jax.ffi.ffi_call(TARGET, (*results, scratch))(
        *inputs, key=np.asarray(key, np.int64))
    return list(outputs[:-1])


# ---------------------------------------------------------------------------------------------
# Timing inside the calls (bench/step_profile.py): how much of each call is reordering.

LABELS = ('conv forward', 'transposed conv forward', 'conv data gradient',
          'transposed conv data gradient', 'conv weight gradient',
          'transposed conv weight gradient', 'batch norm forward', 'batch norm backward',
          'max pool forward', 'max pool backward')
PHASES = ('reorder_in', 'compute', 'reorder_out')


def start_call_timing() -> None:
    """Reset and start the per-call timers of the extension (a few clock reads per call)."""
    _library().cenet_onednn_profile(1)


def read_call_timing(stop: bool = True) -> dict[str, dict[str, float]]:
    """{label: {'calls': n, 'reorder_in': s, 'compute': s, 'reorder_out': s}} since
    `start_call_timing`, seconds summed over calls."""
    lib = _library()
    seconds = (ctypes.c_double * (3 * len(LABELS)))()
    calls = (ctypes.c_int64 * len(LABELS))()
    lib.cenet_onednn_profile_read(seconds, calls)
    if stop:
        lib.cenet_onednn_profile(0)
    return {label: {'calls': calls[i], **{p: seconds[3 * i + j] for j, p in enumerate(PHASES)}}
            for i, label in enumerate(LABELS) if calls[i]}
