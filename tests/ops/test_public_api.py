"""The boundary between the networks and the operations: modules in `cenet_jax/models` reach
`cenet_jax.ops` only through the names its `__init__` exports, never a formulation module, the
dispatcher or the oneDNN loader (read from the sources, so an unused import counts too)."""
from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import cenet_jax.models
import cenet_jax.ops

OPS = 'cenet_jax.ops'
PUBLIC = frozenset(cenet_jax.ops.__all__)
MODELS = Path(cenet_jax.models.__file__).resolve().parent


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module an ImportFrom names, relative imports resolved against `package`."""
    if not node.level:
        return node.module or ''
    base = package.split('.')[:len(package.split('.')) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def _dotted(node: ast.AST) -> str | None:
    """'a.b.c' for an attribute chain on a plain name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return '.'.join([node.id, *reversed(parts)])


def private_ops_uses(source: str, package: str = 'cenet_jax.models') -> list[str]:
    """Every place `source` (a module of `package`) reaches into cenet_jax.ops beyond PUBLIC."""
    tree = ast.parse(source)
    found: list[str] = []
    prefixes = {}  # local dotted name -> the cenet_jax module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(OPS + '.'):
                    found.append(f'import {a.name}')
                elif a.asname:
                    prefixes[a.asname] = a.name
                else:
                    prefixes[a.name.split('.')[0]] = a.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            for a in node.names:
                full = f'{module}.{a.name}'
                if module.startswith(OPS + '.') or (module == OPS and a.name not in PUBLIC):
                    found.append(f'from {module} import {a.name}')
                elif full == OPS:
                    prefixes[a.asname or a.name] = OPS
    for node in ast.walk(tree):
        dotted = _dotted(node) if isinstance(node, ast.Attribute) else None
        if dotted is None or dotted.split('.')[0] not in prefixes:
            continue
        head, _, rest = dotted.partition('.')
        full = '.'.join(filter(None, [prefixes[head], rest]))
        if full.startswith(OPS + '.') and full.split('.')[2] not in PUBLIC:
            found.append(dotted)
    return sorted(set(found))


@pytest.mark.parametrize('path', sorted(MODELS.glob('*.py')), ids=lambda p: p.name)
def test_models_use_only_the_public_ops_api(path):
    assert private_ops_uses(path.read_text()) == [], f'{path.name} reaches past cenet_jax.ops'


@pytest.mark.parametrize('source', [
    'from cenet_jax.ops import onednn_loader',
    'from cenet_jax.ops import dispatch',
    'from cenet_jax.ops.matmul import conv',
    'import cenet_jax.ops.xla',
    'import cenet_jax.ops.onednn as o',
    'from cenet_jax import ops\nops.onednn_loader.call(k, [], [])',
    'from cenet_jax import ops as o\ny = o.matmul.conv(x, k, s, p, d)',
    'import cenet_jax.ops as o\no._private()',
    'import cenet_jax\ncenet_jax.ops.batch_norm.batch_norm_train(x, s, b, 1e-5)',
    'from ..ops import onednn',
    'from ..ops.xla import max_pool',
    'from .. import ops\nops.dispatch.max_pool(x)',
])
def test_the_check_finds_private_uses(source):
    assert private_ops_uses(source), source


def test_the_check_accepts_public_uses():
    source = ('from cenet_jax import ops\nfrom cenet_jax.ops import conv2d, resolve_conv_impl\n'
              'import cenet_jax.ops as o\nfrom ..ops import max_pool\n'
              'y = ops.conv2d(x, k, s, p, d) + o.max_pool(x, w, s, p)\nops.CONV_IMPLS\n'
              'from cenet_jax.models import layers\nlayers.onednn_loader')
    assert private_ops_uses(source) == []


def test_the_public_api_is_functions_and_constants():
    for name in PUBLIC:
        value = getattr(cenet_jax.ops, name)
        assert not name.startswith('_') and not isinstance(value, types.ModuleType), name
