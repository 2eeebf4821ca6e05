"""Build step of cenet-jax's optional compiled part: the oneDNN library (csrc/), loaded with ctypes
by `cenet_jax/ops/onednn_loader.py`.

Everything else about the package is in pyproject.toml. On x86-64 Linux the build environment
holds oneDNN's headers (onednn-devel-cpu-gomp) and XLA's FFI headers (jaxlib, pinned there to
the oldest release the runtime accepts), and `pip install -e .` / `pip wheel .` compile
`cenet_jax/ops/_onednn.so`: a plain shared library (no Python ABI in it or in its name) with the
key layout of `cenet_jax/ops/onednn_schema.py` compiled in (a generated header) and a RUNPATH to
the directory where pip installs the onednn-cpu-gomp wheel's libdnnl.so.3. Where that cannot
happen (no C++ compiler, a failed compile, missing headers) the package still installs without
it, and the reason is written beside the package (`_onednn_build.txt`), where the loader reads it:
`model.conv_impl='auto'` then logs it with its fallback to 'matmul' (pip shows a build's own
output only with -v).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import posixpath
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

NAME = 'cenet_jax.ops._onednn'
REASON_FILE = '_onednn_build.txt'  # keep in step with onednn_loader.BUILD_REASON_FILE
HERE = Path(__file__).resolve().parent


def _schema():
    """cenet_jax/ops/onednn_schema.py, loaded by path (the package's imports are not installed)."""
    spec = importlib.util.spec_from_file_location(
        'onednn_schema', HERE / 'cenet_jax' / 'ops' / 'onednn_schema.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed_file(distribution: str, name: str) -> tuple[Path, Path]:
    """(the file, the folder its distribution's metadata lives in) for an installed file."""
    dist = importlib.metadata.distribution(distribution)
    for f in dist.files or ():
        if str(f).replace('\\', '/').endswith(name):
            return Path(f.locate()).resolve(), Path(dist.locate_file('')).resolve()
    raise FileNotFoundError(f'{distribution} has no {name}')


def _runpath(runtime: Path, site: Path) -> str:
    """libdnnl.so.3's folder relative to where the library is installed (site/cenet_jax/ops):
    pip puts onednn-cpu-gomp's libdnnl.so.3 in the environment's lib/, which sits at the same
    place relative to site-packages in the build environment and in any venv."""
    up = '/'.join(['..'] * (NAME.count('.')))
    return '$ORIGIN/' + posixpath.normpath(f'{up}/{os.path.relpath(runtime.parent, site)}')


def _build_settings(build_temp: Path, inplace: bool) -> tuple[dict, str]:
    """Include dirs, libraries and link flags for the build, or ({}, why it cannot be built)."""
    try:
        header, _ = _installed_file('onednn-devel-cpu-gomp', 'include/oneapi/dnnl/dnnl.hpp')
        runtime, site = _installed_file('onednn-cpu-gomp', 'libdnnl.so.3')
    except (importlib.metadata.PackageNotFoundError, FileNotFoundError) as e:
        return {}, f'oneDNN headers or library not found in the build environment ({e})'
    spec = importlib.util.find_spec('jaxlib')
    if spec is None or not spec.submodule_search_locations:
        return {}, "jaxlib (XLA's FFI headers) is not in the build environment"
    ffi_include = Path(list(spec.submodule_search_locations)[0]) / 'include'
    if not (ffi_include / 'xla' / 'ffi' / 'api' / 'ffi.h').exists():
        return {}, f'no XLA FFI headers under {ffi_include}'
    schema = _schema()
    generated = build_temp / 'cenet_generated'
    generated.mkdir(parents=True, exist_ok=True)
    (generated / 'cenet_schema.h').write_text(schema.header(schema.source_digest(HERE / 'csrc')))
    runpaths = [_runpath(runtime, site)]
    if inplace:  # an editable install: also the lib/ of the environment pip installs into
        runpaths.append(str(Path(sys.prefix) / 'lib'))
    return {'include_dirs': [str(generated), str(header.parents[2]), str(ffi_include)],
            'library_dirs': [str(runtime.parent)], 'libraries': ['dnnl'],
            'extra_link_args': ['-fopenmp', '-Wl,--enable-new-dtags']
            + [f'-Wl,-rpath,{p}' for p in runpaths]}, ''


class OptionalBuildExt(build_ext):
    """Builds the library as a plain `.so` when it can; when it cannot (missing headers, no
    compiler, a compile or link error) the install goes on without it, and the reason is written
    to REASON_FILE beside where the library would be (a skipped library is also dropped from the
    outputs, so an editable install does not look for its file)."""

    def get_ext_filename(self, fullname: str) -> str:
        filename = super().get_ext_filename(fullname)  # fullname: dotted, or the last part
        suffix = sysconfig.get_config_var('EXT_SUFFIX')
        if NAME.endswith(fullname) and filename.endswith(suffix):
            return filename[:-len(suffix)] + '.so'  # loaded with ctypes, not imported: no ABI tag
        return filename

    def run(self) -> None:
        # setuptools builds in build_lib even in place (editable installs), then copies the
        # library into the checkout: remember which, for the RUNPATH and the reason file.
        self.in_place, self.why_not = self.inplace, ''
        super().run()
        folders = [Path(self.build_lib) / 'cenet_jax' / 'ops']
        if self.in_place:
            folders.append(Path(self.get_finalized_command('build_py')
                                .get_package_dir('cenet_jax.ops')))
        for folder in folders:
            if self.why_not:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / REASON_FILE).write_text(self.why_not + '\n')
            else:
                (folder / REASON_FILE).unlink(missing_ok=True)

    def build_extensions(self) -> None:
        for ext in list(self.extensions):
            settings, why_not = _build_settings(Path(self.build_temp), self.in_place)
            if not why_not:
                for field, values in settings.items():
                    getattr(ext, field).extend(values)
                try:
                    self.build_extension(ext)
                    continue
                except Exception as e:  # a compiler error, a missing compiler, a link error
                    print(f'cenet-jax: {type(e).__name__}: {e}', file=sys.stderr)
                    why_not = (f'the compile failed ({type(e).__name__}; `pip install -v -e .` '
                               "shows the compiler's messages)")
            self.why_not = f'the oneDNN library was not built: {why_not}'
            print(f"cenet-jax: {self.why_not}; model.conv_impl='auto' will use 'matmul'",
                  file=sys.stderr)
            self.extensions.remove(ext)


class PlatformWheel(bdist_wheel):
    """The library holds no Python ABI: one wheel per platform serves every Python 3."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return 'py3', 'none', plat


extensions = []
if sys.platform == 'linux' and platform.machine() == 'x86_64':  # the oneDNN wheels' platform
    extensions.append(Extension(
        NAME, sources=sorted(f'csrc/{p.name}' for p in (HERE / 'csrc').glob('*.cc')),
        depends=sorted(f'csrc/{p.name}' for p in (HERE / 'csrc').glob('*.h'))
        + ['cenet_jax/ops/onednn_schema.py'],
        language='c++', extra_compile_args=['-std=c++17', '-O2', '-fvisibility=hidden']))
setup(ext_modules=extensions,
      cmdclass={'build_ext': OptionalBuildExt, 'bdist_wheel': PlatformWheel})
