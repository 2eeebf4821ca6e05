"""Loader of the compiled oneDNN library (csrc/, built by `pip install -e .` or `pip wheel .`
into this folder as `_onednn.so`, a plain shared library) and the one way to call it from jitted
code: `call(key, inputs, results)`, an XLA FFI custom call that runs the oneDNN operation `key`
describes (the operations and their VJPs are in `onednn.py`).

The library needs oneDNN 3.2's runtime from the `onednn-cpu-gomp` wheel (x86-64 Linux; its
RUNPATH points where pip installs it). It is used only when it was built for this Python side
(ABI version and key schema, `onednn_schema.py`; in a checkout, also from the csrc/ sources
there now) and XLA runs its handler (a tiny call at load); otherwise `unavailable_reason()` says
why and how to fix it, and `conv_impl='auto'` stays on 'matmul'.
A key is a tuple of integers (operation, direction, dtypes, shapes, options: `onednn_schema`);
the loader puts the OpenMP thread count in front (`plan_key`), and `describe(key)` builds and
caches the primitive at trace time and says how many bytes each of its buffers and its scratch
space take, so that XLA allocates them.
"""
from __future__ import annotations

import ctypes
import functools
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

from cenet_jax.errors import ConfigError
from cenet_jax.ops import onednn_schema

log = logging.getLogger('cenet_jax')

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

TARGET = 'cenet_onednn'
LIBRARY = Path(__file__).resolve().parent / '_onednn.so'
# Written by setup.py beside the library when it could not build it: the reason.
BUILD_REASON_FILE = LIBRARY.parent / '_onednn_build.txt'
RUNTIME_DISTRIBUTION = 'onednn-cpu-gomp'
DTYPE_CODES = {jnp.dtype(name): code for code, name in enumerate(onednn_schema.ENUMS['dtype'])}
# OpenMP threads per oneDNN primitive (see num_threads).
THREADS_ENV = 'CENET_JAX_ONEDNN_THREADS'
OMP_THREADS_ENV = 'OMP_NUM_THREADS'
REBUILD = 'rebuild it with `pip install -e .` in the checkout (or reinstall cenet-jax)'


def num_threads() -> int:
    """OpenMP threads each oneDNN primitive is built and run with: CENET_JAX_ONEDNN_THREADS,
    else OMP_NUM_THREADS (its first value), else the cores this process may run on. Read when
    a key is built (at trace time): the count travels in the key, so a compiled step keeps the
    count it was traced with."""
    for name in (THREADS_ENV, OMP_THREADS_ENV):
        text = os.environ.get(name, '').strip()
        if text:
            first = text.split(',')[0].strip()
            if not first.isdigit() or int(first) < 1:
                raise ConfigError(f'{name}={text!r}: a positive number of threads expected')
            return int(first)
    return len(os.sched_getaffinity(0))


def threads_words(threads: int) -> str:
    """'1 thread' / '2 threads': the count as the logs and the reports print it."""
    return f'{threads} thread{"" if threads == 1 else "s"}'


def _not_built() -> str:
    """Why there is no library: the build's own reason when setup.py left one."""
    reason = 'the oneDNN library was not built'
    if BUILD_REASON_FILE.is_file():
        reason = BUILD_REASON_FILE.read_text().strip() or reason
    return (f'{reason} (no {LIBRARY}; `pip install -e .` builds it where a C++ compiler and '
            'the onednn-devel-cpu-gomp wheel are available)')


def _dlopen() -> ctypes.CDLL:
    """The library, libdnnl.so.3 found through its RUNPATH or, where that does not lead to it
    (a checkout used from another environment), loaded first from the onednn-cpu-gomp wheel."""
    try:
        return ctypes.CDLL(str(LIBRARY))
    except OSError as first:
        try:
            runtime = next(Path(f.locate()).resolve()
                           for f in importlib.metadata.files(RUNTIME_DISTRIBUTION) or ()
                           if f.name == 'libdnnl.so.3')
        except (importlib.metadata.PackageNotFoundError, StopIteration):
            raise first from None
        ctypes.CDLL(str(runtime), mode=os.RTLD_GLOBAL | os.RTLD_NOW)
        return ctypes.CDLL(str(LIBRARY))


def _stale(lib: ctypes.CDLL) -> str | None:
    """Why the library does not belong to this Python side, or None: another ABI version or key
    schema, or (in a checkout) other csrc/ sources than those there now."""
    try:
        abi = lib.cenet_onednn_abi
    except AttributeError:
        return f'{LIBRARY} is stale (built before its version was checked); {REBUILD}'
    abi.restype, abi.argtypes = ctypes.c_int64, [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    out = (ctypes.c_int64 * 2)()
    abi(out, 2)
    built, expected = (out[0], out[1]), (onednn_schema.ABI_VERSION, onednn_schema.KEY_SCHEMA)
    if built != expected:
        return (f'{LIBRARY} is stale: built for ABI {built[0]}, key schema {built[1]:x}; this '
                f'cenet_jax has ABI {expected[0]}, key schema {expected[1]:x}; {REBUILD}')
    checkout = LIBRARY.parents[2]
    if (checkout / 'setup.py').is_file() and (checkout / 'csrc' / 'plan.h').is_file():
        lib.cenet_onednn_sources.restype = ctypes.c_char_p
        if lib.cenet_onednn_sources().decode() != onednn_schema.source_digest(checkout / 'csrc'):
            return (f'{LIBRARY} is stale: built from other sources than {checkout / "csrc"} '
                    f'holds now; {REBUILD}')
    return None


def _declare(lib: ctypes.CDLL) -> None:
    key_args = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    lib.cenet_onednn_describe.restype = ctypes.c_int64
    lib.cenet_onednn_describe.argtypes = key_args + [ctypes.POINTER(ctypes.c_int64),
                                                     ctypes.c_int64]
    lib.cenet_onednn_impl_info.restype = ctypes.c_char_p
    lib.cenet_onednn_impl_info.argtypes = key_args
    lib.cenet_onednn_last_error.restype = ctypes.c_char_p
    lib.cenet_onednn_version.restype = ctypes.c_char_p
    lib.cenet_onednn_profile.argtypes = [ctypes.c_int]
    lib.cenet_onednn_profile_read.argtypes = [ctypes.POINTER(ctypes.c_double),
                                              ctypes.POINTER(ctypes.c_int64)]


def _probe(lib: ctypes.CDLL) -> str | None:
    """Runs one tiny max pooling through XLA, so that a handler XLA refuses (built against FFI
    headers newer than this jaxlib) or a library that computes wrong is found at load, not in a
    training step. None when it gives the right answer, else what went wrong."""
    key = (1, *onednn_schema.pack(
        'max_pool', op=onednn_schema.code('pass', 'forward'),
        act_dtype=onednn_schema.code('dtype', 'float32'), n=1, c=1, ih=2, iw=2, oh=1, ow=1,
        kh=2, kw=2, sh=2, sw=2, pad_top=0, pad_bottom=0, pad_left=0, pad_right=0))
    x = np.array([1.0, 4.0, 3.0, 2.0], np.float32).reshape(1, 2, 2, 1)
    try:
        description = _describe(lib, key)
        results = [jax.ShapeDtypeStruct((1, 1, 1, 1), jnp.float32),
                   jax.ShapeDtypeStruct((description.slots[2][1],), jnp.uint8)]
        with jax.ensure_compile_time_eval():  # run now, even when asked while tracing
            y = jax.jit(lambda x: _ffi_call(key, description, [x], results)[0])(
                jax.device_put(x, jax.devices('cpu')[0]))
            y = float(np.asarray(y).reshape(()))
    except Exception as e:  # XLA's refusal (registration, compile or run), oneDNN's error
        return f'{type(e).__name__}: {e}'
    return None if y == 4.0 else f'the max of [1, 4, 3, 2] came out as {y}'


@functools.cache
def _load() -> ctypes.CDLL | str:
    """The loaded library with its FFI target registered and tried, or why it cannot be used."""
    if sys.platform != 'linux' or platform.machine() not in ('x86_64', 'AMD64'):
        return f'the oneDNN library is built for x86-64 Linux only (this is {sys.platform} ' \
               f'{platform.machine()})'
    if not LIBRARY.exists():
        return _not_built()
    try:
        lib = _dlopen()
    except OSError as e:
        return f'cannot load {LIBRARY}: {e}; pip install onednn-cpu-gomp==2023.2.0'
    stale = _stale(lib)
    if stale:
        return stale
    _declare(lib)
    try:
        # On a running CPU backend a handler XLA refuses fails its registration, as itself
        # (registered before, it fails the backend's start with a message about plugins).
        jax.devices('cpu')
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.cenet_onednn), platform='cpu')
        failure = _probe(lib)
    except Exception as e:  # registration refused
        failure = f'{type(e).__name__}: {e}'
    if failure:
        return f'XLA cannot run the handler of {LIBRARY} ({failure}); {REBUILD}'
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
        raise ConfigError(f"model.conv_impl='onednn' cannot run: {lib}. Use "
                          "model.conv_impl='auto' (falls back to 'matmul') or 'xla'.")
    return lib


def version() -> str:
    """oneDNN's version and the instruction set it dispatches to, e.g. '3.2.0 avx512_core_amx'."""
    return _library().cenet_onednn_version().decode()


# ---------------------------------------------------------------------------------------------
# Calls.

Key = onednn_schema.Key


class Description(NamedTuple):
    """What a key's primitive needs: scratch bytes, the OpenMP threads it was built for, and
    (is_output, bytes) per buffer in call order (inputs and outputs interleaved as the operation
    lists them)."""
    scratch_bytes: int
    threads: int
    slots: tuple[tuple[bool, int], ...]


def _as_c(key: Key):
    return (ctypes.c_int64 * len(key))(*key), len(key)


def plan_key(key: Key) -> Key:
    """The key the library plans: the thread count (`num_threads`, now) in front of `key`."""
    return (num_threads(), *key)


def _describe(lib: ctypes.CDLL, plan: Key) -> Description:
    out = (ctypes.c_int64 * 64)()
    n = lib.cenet_onednn_describe(*_as_c(plan), out, 64)
    if n < 0:
        raise ValueError(f'oneDNN cannot run {plan}: {lib.cenet_onednn_last_error().decode()}')
    slots = tuple((bool(out[3 + 2 * i]), int(out[4 + 2 * i])) for i in range(out[2]))
    return Description(int(out[0]), int(out[1]), slots)


@functools.lru_cache(maxsize=None)
def _describe_plan(plan: Key) -> Description:
    return _describe(_library(), plan)


def describe(key: Key) -> Description:
    """Builds (once) the primitive of `key` with the current thread count and describes its
    buffers; an operation oneDNN cannot do fails here, at trace time, with oneDNN's reason."""
    return _describe_plan(plan_key(key))


def output_bytes(key: Key) -> list[int]:
    """Bytes of each output of `key`, in order (to size opaque results such as masks)."""
    return [size for output, size in describe(key).slots if output]


def impl_info(key: Key) -> str:
    """oneDNN's name for the kernel a key runs, e.g. 'brgconv:avx512_core_amx'."""
    plan = plan_key(key)
    _describe_plan(plan)
    return _library().cenet_onednn_impl_info(*_as_c(plan)).decode()


def _ffi_call(plan: Key, description: Description, inputs: Sequence[jax.Array],
              results: Sequence[jax.ShapeDtypeStruct]) -> list[jax.Array]:
    scratch = jax.ShapeDtypeStruct((description.scratch_bytes,), jnp.uint8)
    outputs = jax.ffi.ffi_call(TARGET, (*results, scratch))(
        *inputs, key=np.asarray(plan, np.int64))
    return list(outputs[:-1])


def call(key: Key, inputs: Sequence[jax.Array], results: Sequence[jax.ShapeDtypeStruct]
         ) -> list[jax.Array]:
    """Runs the operation of `key` on `inputs`, returning `results` (the outputs in order);
    XLA allocates the scratch space as one more, discarded, result."""
    plan = plan_key(key)
    return _ffi_call(plan, _describe_plan(plan), inputs, results)


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
