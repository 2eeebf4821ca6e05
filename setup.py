"""Build step of cenet-jax's optional compiled part: the oneDNN convolution extension (csrc/).

Everything else about the package is in pyproject.toml. On x86-64 Linux the build environment
holds oneDNN's headers (onednn-devel-cpu-gomp) and XLA's FFI headers (jaxlib), and
`pip install -e .` compiles `cenet_jax/ops/_onednn*.so` (where `ops/onednn_loader.py` looks for
it). Where that cannot happen (another platform, no C++ compiler, a failed compile) the package
still installs, without the extension: one line of the build log says why, and `model.conv_impl='auto'` uses 'matmul'.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NAME = 'cenet_jax.ops._onednn'


def _wheel_file(distribution: str, suffix: str) -> Path:
    """A file of an installed distribution (found wherever pip put it, build env included)."""
    for f in importlib.metadata.files(distribution) or ():
        if str(f).replace('\\', '/').endswith(suffix):
            return Path(f.locate()).resolve()
    raise FileNotFoundError(f'{distribution} has no {suffix}')


def _extension() -> tuple[Extension | None, str]:
    """The extension to build, or None and the reason it is skipped."""
    if sys.platform != 'linux' or platform.machine() != 'x86_64':
        return None, f'oneDNN wheels exist for x86-64 Linux only, not {sys.platform} {platform.machine()}'
    try:
        header = _wheel_file('onednn-devel-cpu-gomp', 'include/oneapi/dnnl/dnnl.hpp')
        runtime = _wheel_file('onednn-cpu-gomp', 'libdnnl.so.3')
    except (importlib.metadata.PackageNotFoundError, FileNotFoundError) as e:
        return None, f'oneDNN headers or library not found ({e})'
    spec = importlib.util.find_spec('jaxlib')
    if spec is None or not spec.submodule_search_locations:
        return None, "jaxlib (XLA's FFI headers) is not in the build environment"
    ffi_include = Path(list(spec.submodule_search_locations)[0]) / 'include'
    if not (ffi_include / 'xla' / 'ffi' / 'api' / 'ffi.h').exists():
        return None, f'no XLA FFI headers under {ffi_include}'
    return Extension(
        NAME, sources=sorted(str(p) for p in Path('csrc').glob('*.cc')),
        depends=['csrc/plan.h'], language='c++',
        include_dirs=[str(header.parents[2]), str(ffi_include)],
        library_dirs=[str(runtime.parent)], libraries=['dnnl'],
        extra_compile_args=['-std=c++17', '-O2', '-fvisibility=hidden'],
        extra_link_args=['-fopenmp']), ''


class OptionalBuildExt(build_ext):
    """Builds the extension when it can; any failure is one log line, not a failed install
    (a failed extension is dropped, so an editable install does not look for its file)."""

    def build_extensions(self) -> None:
        for ext in list(self.extensions):
            try:
                self.build_extension(ext)
            except Exception as e:  # a compiler error, a missing compiler, a link error
                print(f'cenet-jax: the oneDNN extension was not built ({type(e).__name__}: '
                      f"{e}); model.conv_impl='auto' will use 'matmul'", file=sys.stderr)
                self.extensions.remove(ext)


extension, why_not = _extension()
if extension is None:
    print(f"cenet-jax: the oneDNN extension is skipped: {why_not}; model.conv_impl='auto' will "
          "use 'matmul'", file=sys.stderr)
setup(ext_modules=[extension] if extension else [], cmdclass={'build_ext': OptionalBuildExt})
