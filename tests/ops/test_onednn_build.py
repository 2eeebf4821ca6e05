"""The compiled oneDNN library and its Python side: the key schema both are built from, the
version check at load (a stale library means no oneDNN: 'auto' falls back with one line, an
explicit 'onednn' is an error), the reason a skipped build leaves, and (slow) a wheel built by
`pip wheel .` that installs and runs in a fresh virtual environment."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from cenet_jax import cli, ops
from cenet_jax.errors import ConfigError
from cenet_jax.ops import dispatch, onednn, onednn_loader, onednn_schema

ROOT = Path(__file__).resolve().parents[2]
needs_library = pytest.mark.skipif(
    not onednn_loader.available(),
    reason=f'oneDNN extension unavailable: {onednn_loader.unavailable_reason()}')


@pytest.fixture
def reload_library(monkeypatch):
    """Loads the library afresh inside the test (after its monkeypatches) and once more after
    them, so that the rest of the session sees the real one."""
    onednn_loader._load.cache_clear()
    dispatch._log_fallback_once.cache_clear()
    yield
    monkeypatch.undo()
    onednn_loader._load.cache_clear()
    dispatch._log_fallback_once.cache_clear()


# ---------------------------------------------------------------------------------------------
# The schema.

def test_the_python_codes_are_the_schemas():
    assert (onednn.FORWARD, onednn.BACKWARD_DATA, onednn.BACKWARD_WEIGHTS) == tuple(
        onednn_schema.code('conv_op', op) for op in ('forward', 'backward_data',
                                                     'backward_weights'))
    assert (onednn.FORWARD, onednn.BACKWARD) == (onednn_schema.code('pass', 'forward'),
                                                 onednn_schema.code('pass', 'backward'))


def test_pack_names_every_field_once():
    fields = dict.fromkeys(onednn_schema.FIELDS['batch_norm'], 7)
    assert onednn_schema.pack('batch_norm', **fields) == (
        onednn_schema.code('operation', 'batch_norm'), *[7] * len(fields))
    with pytest.raises(ValueError, match=r"missing \['relu'\], unknown \['rleu'\]"):
        onednn_schema.pack('batch_norm', **{('rleu' if k == 'relu' else k): v
                                            for k, v in fields.items()})
    plan = (3, *onednn_schema.pack('batch_norm', **fields))
    assert onednn_schema.unpack(plan) == ('batch_norm', {'threads': 3, 'operation': 1, **fields})


def test_the_schema_hash_follows_the_layout(monkeypatch):
    """Any change of a field, its order or an enumeration changes KEY_SCHEMA, so a library built
    before it is refused."""
    assert onednn_schema._hash() == onednn_schema.KEY_SCHEMA
    pool = onednn_schema.FIELDS['max_pool']
    for changed in (pool + ('dilation',), (pool[1], pool[0]) + pool[2:]):
        monkeypatch.setitem(onednn_schema.FIELDS, 'max_pool', changed)
        assert onednn_schema._hash() != onednn_schema.KEY_SCHEMA
    monkeypatch.setitem(onednn_schema.FIELDS, 'max_pool', pool)
    monkeypatch.setitem(onednn_schema.ENUMS, 'layout', ('nhwc', 'any'))
    assert onednn_schema._hash() != onednn_schema.KEY_SCHEMA


def test_the_generated_header_reads_each_field_at_its_position():
    text = onednn_schema.header('abc')
    assert f'kKeySchema = {onednn_schema.KEY_SCHEMA}LL;' in text
    assert f'kAbiVersion = {onednn_schema.ABI_VERSION};' in text and 'kSources = "abc"' in text
    head = len(onednn_schema.HEADER)
    names = onednn_schema.FIELDS['max_pool']
    assert f'int64_t {", ".join(names)};' in text
    assert f'if (key.size() != {head + len(names)})' in text
    assert 'return MaxPoolKey{' + ', '.join(f'key[{head + i}]' for i in range(len(names))) in text


def test_the_source_digest_sees_every_edit(tmp_path):
    shutil.copytree(ROOT / 'csrc', tmp_path / 'csrc')
    before = onednn_schema.source_digest(tmp_path / 'csrc')
    assert before == onednn_schema.source_digest(ROOT / 'csrc')
    with open(tmp_path / 'csrc' / 'plan.h', 'a') as f:
        f.write('// an edit\n')
    assert onednn_schema.source_digest(tmp_path / 'csrc') != before


# ---------------------------------------------------------------------------------------------
# The version check at load.

@needs_library
@pytest.mark.parametrize('what', ['key schema', 'ABI', 'sources'])
def test_a_stale_library_falls_back_for_auto_and_is_an_error_for_onednn(
        what, monkeypatch, reload_library, caplog, capsys):
    if what == 'key schema':
        monkeypatch.setattr(onednn_schema, 'KEY_SCHEMA', onednn_schema.KEY_SCHEMA ^ 1)
    elif what == 'ABI':
        monkeypatch.setattr(onednn_schema, 'ABI_VERSION', onednn_schema.ABI_VERSION + 1)
    else:  # csrc/ edited after the build
        monkeypatch.setattr(onednn_schema, 'source_digest', lambda csrc: 'edited')
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        assert ops.resolve_conv_impl('auto', 'cpu') == 'matmul'
        assert ops.resolve_conv_impl('auto', 'cpu') == 'matmul'
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert str(onednn_loader.LIBRARY) in lines[0] and 'stale' in lines[0]
    assert '`pip install -e .`' in lines[0]
    with pytest.raises(ConfigError, match="conv_impl='onednn' cannot run: .* is stale") as err:
        ops.resolve_conv_impl('onednn', 'cpu')
    assert cli.report_errors(lambda: ops.resolve_conv_impl('onednn', 'cpu')) == 2
    assert capsys.readouterr().err.startswith(f"error: model.conv_impl='onednn' cannot run: "
                                              f"{onednn_loader.LIBRARY} is stale")
    assert str(err.value).count('pip install -e .') == 1


def test_a_library_from_before_the_version_check_is_stale():
    class Old:  # a ctypes library without cenet_onednn_abi
        pass
    assert 'built before its version was checked' in onednn_loader._stale(Old())


def test_a_skipped_build_gives_its_reason(monkeypatch, tmp_path, reload_library, caplog):
    """setup.py, without oneDNN's headers, installs without the library and writes why; the
    loader's fallback line gives that reason."""
    script = textwrap.dedent('''
        import importlib.metadata as m, runpy, sys
        real = m.distribution
        def distribution(name):
            if name == 'onednn-devel-cpu-gomp':
                raise m.PackageNotFoundError(name)
            return real(name)
        m.distribution = distribution
        sys.argv = ['setup.py', '-q', 'build_ext', '--build-lib', sys.argv[1],
                    '--build-temp', sys.argv[2]]
        runpy.run_path('setup.py', run_name='__main__')
    ''')
    done = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'lib'),
                           str(tmp_path / 'temp')], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "the oneDNN library was not built: oneDNN headers or library not found" in done.stderr
    reason_file = tmp_path / 'lib' / 'cenet_jax' / 'ops' / '_onednn_build.txt'
    assert not (reason_file.parent / '_onednn.so').exists()
    monkeypatch.setattr(onednn_loader, 'LIBRARY', reason_file.parent / '_onednn.so')
    monkeypatch.setattr(onednn_loader, 'BUILD_REASON_FILE', reason_file)
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        assert ops.resolve_conv_impl('auto', 'cpu') == 'matmul'
    assert 'oneDNN headers or library not found in the build environment' in caplog.text


@needs_library
def test_the_load_time_call_catches_what_xla_refuses(monkeypatch):
    lib = onednn_loader._load()
    assert onednn_loader._probe(lib) is None

    def refused(*args, **kwargs):
        raise RuntimeError('handler API version 0.9 is not supported')
    monkeypatch.setattr(onednn_loader, '_ffi_call', refused)
    assert onednn_loader._probe(lib) == 'RuntimeError: handler API version 0.9 is not supported'


@needs_library
def test_the_library_is_a_plain_shared_library_with_a_runpath():
    lib = onednn_loader.LIBRARY
    assert lib.name == '_onednn.so'
    data = lib.read_bytes()
    assert data[:4] == b'\x7fELF' and b'PyInit_' not in data
    assert b'$ORIGIN/../../../..' in data  # where pip puts libdnnl.so.3, from site-packages


# ---------------------------------------------------------------------------------------------
# The wheel, in a fresh virtual environment (slow: pip builds in an isolated environment and
# installs jax & co from PyPI the first time; the environment is kept under the temp folder).

WHEEL_CHECK = textwrap.dedent('''
    import ctypes, sys
    import numpy as np
    from cenet_jax.ops import onednn_loader
    ctypes.CDLL(str(onednn_loader.LIBRARY))  # its RUNPATH finds libdnnl.so.3 by itself
    assert onednn_loader.available(), onednn_loader.unavailable_reason()
    import jax, jax.numpy as jnp
    from cenet_jax import ops
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 9, 4)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 4, 8)), jnp.float32)
    def conv(x, k, impl):
        return ops.conv2d(x, k, (1, 1), ((1, 1), (1, 1)), (1, 1), impl)
    got, ref = (jax.jit(conv, static_argnums=2)(x, k, impl) for impl in ('onednn', 'xla'))
    assert float(jnp.max(jnp.abs(got - ref))) < 1e-4
    print('ok', jax.__version__, onednn_loader.version(), onednn_loader.LIBRARY)
''')


def _source_copy(dest: Path) -> Path:
    """The checkout's files as a clone would have them (tracked and new, not ignored)."""
    names = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _venv(wheel: Path, runtime: list[str]) -> Path:
    """A virtual environment with the wheel and its dependencies, or (`runtime` given) just
    those packages; kept between runs under the temp folder, keyed by `runtime`, the wheel
    itself reinstalled every time."""
    key = hashlib.sha256(' '.join(runtime).encode()).hexdigest()[:10]
    venv = Path(tempfile.gettempdir()) / f'cenet_jax_wheel_venv_{key}'
    pip = [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q']
    if not (venv / 'ready').exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
        subprocess.run(pip + (runtime or [str(wheel)]), check=True, timeout=1800)
        (venv / 'ready').touch()
    subprocess.run(pip + ['--force-reinstall', '--no-deps', str(wheel)], check=True)
    return venv


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """`pip wheel .` in a copy of the checkout (the sdist's contents checked on the way)."""
    src = _source_copy(tmp_path_factory.mktemp('src'))
    sdist = subprocess.run(
        [sys.executable, '-c', 'import setuptools.build_meta as b; print(b.build_sdist("dist"))'],
        cwd=src, capture_output=True, text=True, check=True).stdout.split()[-1]
    with tarfile.open(src / 'dist' / sdist) as tar:
        members = {name.split('/', 1)[1] for name in tar.getnames() if '/' in name}
    assert {f'csrc/{p.name}' for p in (ROOT / 'csrc').iterdir()} <= members
    wheels = tmp_path_factory.mktemp('wheels')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '.', '-w',
                    str(wheels)], cwd=src, check=True, timeout=1800)
    (built,) = wheels.glob('*.whl')
    return built


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='oneDNN wheels: x86-64 Linux')
@pytest.mark.parametrize('runtime', [
    [],  # the wheel's own dependencies, newest
    ['jax==0.7.0', 'jaxlib==0.7.0', 'numpy', 'onednn-cpu-gomp==2023.2.0'],  # what ops/ needs
], ids=['wheel with its dependencies', 'oldest supported jaxlib'])
def test_pip_wheel_installs_and_runs_onednn_in_a_fresh_venv(wheel, runtime, tmp_path):
    assert wheel.name.endswith('-py3-none-linux_x86_64.whl'), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    assert 'cenet_jax/ops/_onednn.so' in files and 'cenet_jax/ops/_onednn_build.txt' not in files
    venv = _venv(wheel, runtime)
    done = subprocess.run([str(venv / 'bin' / 'python'), '-c', WHEEL_CHECK], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith('ok'), done.stdout
    assert str(venv) in done.stdout  # the installed wheel ran, not this checkout
