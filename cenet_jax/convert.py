"""PyTorch -> Flax weight conversion, and the msgpack weight files train.py and eval.py read.

Two sources are supported: torchvision (or timm) ResNet-18/34/50 ImageNet weights, which
become the CE-Net encoder, and the authors' CE-Net / U-Net checkpoints (github.com/Guzaiwang/
CE-Net, every Table VI variant of its `networks/cenet.py`), which become a complete model.
The expected parameter tree is always built from the Flax model itself (`jax.eval_shape`),
then filled tensor by tensor, so any disagreement between a checkpoint and a model config is
reported key by key. torch is only needed to read `.pth` files, and is imported lazily.

CLI:
    python -m cenet_jax.convert resnet --depth 34 resnet34.pth resnet34.msgpack
    python -m cenet_jax.convert cenet --variant cenet CE-Net_DRIVE.th cenet_drive.msgpack
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization, traverse_util

from cenet_jax import cli
from cenet_jax.errors import CenetError, MissingFileError
from cenet_jax.models.config import VARIANTS, build_model, reference_config
from cenet_jax.models.resnet import ResNetEncoder

Variables = dict[str, Any]
ModulePath = tuple[str, ...]

FILE_FORMAT = 'cenet-jax-variables'
FILE_FORMAT_VERSION = 1
METADATA_KEY = '__metadata__'
TORCH_SUFFIXES = ('.pth', '.pt', '.th', '.pkl', '.bin')

# (collection, Flax leaf name) -> PyTorch tensor name.
TORCH_LEAF_NAMES = {
    ('params', 'kernel'): 'weight',
    ('params', 'scale'): 'weight',
    ('params', 'bias'): 'bias',
    ('batch_stats', 'mean'): 'running_mean',
    ('batch_stats', 'var'): 'running_var',
}
# Keys a checkpoint may carry that no Flax variable corresponds to.
IGNORED_RESNET_PREFIXES = ('fc.',)
IGNORED_SUFFIXES = ('num_batches_tracked',)
# Context blocks of the reference CE-Net: our registry name -> the reference attribute.
REFERENCE_CONTEXT_NAMES = {'dac': 'dblock', 'inception': 'dblock', 'inception_resnet': 'dblock',
                           'rmp': 'spp'}
REFERENCE_HEAD_NAMES = {'final_deconv1': 'finaldeconv1', 'final_conv2': 'finalconv2',
                        'final_conv3': 'finalconv3'}
REFERENCE_STEM_NAMES = {'conv1': 'firstconv', 'bn1': 'firstbn'}
# Reference U-Net double_conv: nn.Sequential(conv, BN, ReLU, conv, BN, ReLU).
UNET_DOUBLE_CONV_INDEX = {'conv1': '0', 'bn1': '1', 'conv2': '3', 'bn2': '4'}
# Sample input for building the parameter tree; parameter shapes do not depend on its size.
SHAPE_PROBE = (1, 64, 64, 3)   # parameter shapes do not depend on the input size


class ConversionError(CenetError, ValueError):
    """A checkpoint does not fit the Flax model: lists every missing, mis-shaped or unknown key."""


@dataclasses.dataclass
class ConversionReport:
    """What a conversion used and what it skipped (printed by the CLI)."""
    converted: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    values: int = 0

    def summary(self) -> str:
        """One human-readable paragraph: counts, and the ignored keys (grouped by suffix)."""
        bookkeeping = [k for k in self.ignored if k.endswith(IGNORED_SUFFIXES)]
        other = [k for k in self.ignored if not k.endswith(IGNORED_SUFFIXES)]
        lines = [f'converted {len(self.converted)} tensors ({self.values:,} values)']
        if other:
            lines.append(f'ignored {len(other)} keys: {", ".join(other)}')
        if bookkeeping:
            lines.append(f'ignored {len(bookkeeping)} BatchNorm num_batches_tracked counters')
        return '\n'.join(lines)


# ----------------------------------------------------------------------------- reading

def to_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a numpy array or a torch tensor (bfloat16 tensors become float32)."""
    if hasattr(value, 'detach'):
        value = value.detach().cpu()
        if str(value.dtype) == 'torch.bfloat16':
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def _unwrap_checkpoint(obj: Any, path: Path) -> Mapping[str, Any]:
    """The state dict inside a loaded torch file (plain, or under 'state_dict' / 'model')."""
    if isinstance(obj, Mapping):
        for key in ('state_dict', 'model', 'net'):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
                return inner
        if all(isinstance(k, str) for k in obj):
            return obj
    raise ConversionError(f'{path}: expected a state dict (tensor names -> tensors), got '
                          f'{type(obj).__name__}. Save with torch.save(model.state_dict(), ...).')


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (.pth/.pt/.th/.bin; needs torch) or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f'weights file not found: {path}')
    if path.suffix == '.safetensors':
        from safetensors.numpy import load_file
        return dict(load_file(str(path)))
    if path.suffix not in TORCH_SUFFIXES:
        raise ConversionError(f'{path}: unknown weights format {path.suffix!r}; expected '
                              f'.safetensors or a torch file ({", ".join(TORCH_SUFFIXES)}).')
    try:
        import torch
    except ImportError as err:
        raise ConversionError(f'{path}: reading torch files needs PyTorch (pip install torch), '
                              'or convert the file to .safetensors first.') from err
    obj = torch.load(str(path), map_location='cpu', weights_only=True)
    state = _unwrap_checkpoint(obj, path)
    tensors = {k: to_numpy(v) for k, v in state.items() if hasattr(v, 'shape')}
    if not tensors:
        raise ConversionError(f'{path}: no tensors found (top-level keys: {sorted(state)[:10]}).')
    return tensors


def strip_data_parallel_prefix(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Numpy values, with the `module.` prefix of nn.DataParallel checkpoints removed."""
    return {k[len('module.'):] if k.startswith('module.') else k: to_numpy(v)
            for k, v in state_dict.items()}


# ----------------------------------------------------------------------------- filling

def expected_variables(init: Callable[..., Variables],
                       probe_shape: Sequence[int] = SHAPE_PROBE) -> Variables:
    """Shapes and dtypes of every variable `init(key, x)` creates, without computing anything."""
    probe = jax.ShapeDtypeStruct(tuple(probe_shape), jnp.float32)
    shapes = jax.eval_shape(init, jax.random.key(0), probe)
    return {c: shapes[c] for c in ('params', 'batch_stats') if c in shapes}


def torch_shape(flax_shape: Sequence[int]) -> tuple[int, ...]:
    """The PyTorch layout of a Flax variable shape (4-D kernels are OIHW / (Cin, Cout, kH, kW))."""
    shape = tuple(int(d) for d in flax_shape)
    return (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape


def _from_torch_layout(value: np.ndarray) -> np.ndarray:
    """Conv kernels OIHW -> HWIO and transposed-conv (Cin, Cout, kH, kW) -> (kH, kW, Cout, Cin)."""
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value


def fill_variables(expected: Variables, state_dict: Mapping[str, Any],
                   torch_module_name: Callable[[ModulePath], str],
                   ignore: Callable[[str], bool], source: str = 'checkpoint',
                   hint: str = '') -> tuple[Variables, ConversionReport]:
    """Fill the `expected` tree from `state_dict`, naming each tensor with `torch_module_name`.

    Every missing, mis-shaped or unused (not ignored) key is collected and reported at once.
    """
    state = strip_data_parallel_prefix(state_dict)
    report = ConversionReport()
    missing, misshaped, twice, out, seen = [], [], [], {}, set()
    for collection, tree in expected.items():
        flat = {}
        for path, leaf in traverse_util.flatten_dict(tree).items():
            key = f'{torch_module_name(path[:-1])}.{TORCH_LEAF_NAMES[collection, path[-1]]}'
            want = torch_shape(leaf.shape)
            if key not in state:
                missing.append(f'{key} {want}')
                continue
            if key in seen:
                twice.append(f'{key} (for {collection}/{"/".join(path)})')
            seen.add(key)
            got = tuple(state[key].shape)
            if got != want:
                misshaped.append(f'{key}: expected {want}, got {got}')
                continue
            flat[path] = _from_torch_layout(state[key]).astype(leaf.dtype)
            report.converted.append(key)
            report.values += int(np.prod(want))
        out[collection] = traverse_util.unflatten_dict(flat)
    unexpected = sorted(k for k in state if k not in seen and not ignore(k))
    report.ignored = sorted(k for k in state if k not in seen and ignore(k))
    if missing or misshaped or unexpected or twice:
        parts = [f'{source} does not match the model:']
        for title, keys in (('missing keys', missing), ('mis-shaped keys', misshaped),
                            ('unexpected keys (not in the model)', unexpected),
                            ('keys two model variables map to (ambiguous names)', twice)):
            if keys:
                parts.append(f'  {len(keys)} {title}:\n    ' + '\n    '.join(keys))
        if hint:
            parts.append(hint)
        raise ConversionError('\n'.join(parts))
    return out, report


def to_torch_state_dict(variables: Mapping[str, Any],
                        torch_module_name: Callable[[ModulePath], str]) -> dict[str, np.ndarray]:
    """The inverse of `fill_variables`: PyTorch-named numpy arrays in PyTorch layout, e.g. to
    run a model trained here in the authors' code (`reference_cenet_name` for CE-Net)."""
    out = {}
    for collection in ('params', 'batch_stats'):
        for path, leaf in traverse_util.flatten_dict(dict(variables.get(collection, {}))).items():
            key = f'{torch_module_name(path[:-1])}.{TORCH_LEAF_NAMES[collection, path[-1]]}'
            value = np.asarray(jax.device_get(leaf))
            out[key] = np.ascontiguousarray(value.transpose(3, 2, 0, 1) if value.ndim == 4
                                            else value)
    return out


def _ignore_bookkeeping(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES)


def _ignore_resnet_extras(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES) or key.startswith(IGNORED_RESNET_PREFIXES)


# ----------------------------------------------------------------------------- name maps

def torchvision_resnet_name(path: ModulePath) -> str:
    """torchvision name of an encoder submodule path, e.g. ('layer2_0', 'downsample_conv')
    -> 'layer2.0.downsample.0'."""
    parts: list[str] = []
    for part in path:
        if part.startswith('layer') and '_' in part:
            parts.extend(part.split('_', 1))
        elif part == 'downsample_conv':
            parts.extend(('downsample', '0'))
        elif part == 'downsample_bn':
            parts.extend(('downsample', '1'))
        else:
            parts.append(part)
    return '.'.join(parts)


def reference_cenet_name(path: ModulePath) -> str:
    """Name in the authors' CE-Net state dict of a Flax CENet submodule path."""
    top, rest = path[0], path[1:]
    if top == 'encoder':
        name = torchvision_resnet_name(rest)
        first, _, tail = name.partition('.')
        if first in REFERENCE_STEM_NAMES:
            return REFERENCE_STEM_NAMES[first] + (f'.{tail}' if tail else '')
        return name.replace('layer', 'encoder', 1)
    if top == 'head':
        return '.'.join((REFERENCE_HEAD_NAMES.get(rest[0], rest[0]),) + rest[1:])
    return '.'.join((REFERENCE_CONTEXT_NAMES.get(top, top),) + rest)


def reference_unet_name(path: ModulePath) -> str:
    """Name in the authors' U-Net state dict of a Flax UNet submodule path."""
    top, rest = path[0], path[1:]
    if top == 'outc':
        return 'outc.conv'
    if top.endswith('_deconv'):  # transposed-conv upsampling (bilinear=False)
        return f'{top[:-len("_deconv")]}.up'
    index = UNET_DOUBLE_CONV_INDEX[rest[0]]
    if top.startswith('down'):
        return f'{top}.max_pool_conv.1.conv.{index}'
    return f'{top}.conv.conv.{index}'


# ----------------------------------------------------------------------------- converters

def _as_model_config(model_config: Mapping[str, Any] | str) -> Mapping[str, Any]:
    return reference_config(model_config) if isinstance(model_config, str) else model_config


def infer_reference_variant(state_dict: Mapping[str, Any]) -> str | None:
    """The Table VI variant a reference checkpoint's key names point to (DAC with and without
    atrous convolution store the same tensors; this returns the atrous one), or None."""
    keys = {k[len('module.'):] if k.startswith('module.') else k for k in state_dict}
    if 'inc.conv.conv.0.weight' in keys:
        return 'unet'
    if 'firstconv.weight' not in keys:
        return None
    pooling = 'spp.conv.weight' in keys
    if 'dblock.conv3x3.weight' in keys:
        return 'backbone_inception'
    if 'dblock.dilate3.weight' in keys and 'dblock.dilate2.weight' not in keys:
        return 'backbone_inception_resnet'
    if 'dblock.dilate2.weight' in keys:
        return 'cenet' if pooling else 'backbone_dac'
    return 'backbone_rmp' if pooling else 'backbone'


def reference_num_classes(state_dict: Mapping[str, Any]) -> int | None:
    """Output channels of a reference CE-Net / U-Net checkpoint (from its last conv), or None."""
    for key in ('finalconv3.weight', 'outc.conv.weight'):
        for prefix in ('', 'module.'):
            if prefix + key in state_dict:
                return int(state_dict[prefix + key].shape[0])
    return None


def convert_reference(state_dict: Mapping[str, Any], model_config: Mapping[str, Any] | str
                      ) -> tuple[Variables, ConversionReport]:
    """`torch_cenet_to_flax` plus a report of the converted and ignored keys."""
    cfg = _as_model_config(model_config)
    model = build_model(cfg)
    expected = expected_variables(lambda key, x: model.init(key, x, train=False))
    unet = cfg['architecture'] == 'unet'
    guess = infer_reference_variant(state_dict)
    hint = (f'The checkpoint looks like variant {guess!r} with num_classes='
            f'{reference_num_classes(state_dict)}; pass the model config that matches it.'
            if guess else '')
    if guess in ('cenet', 'backbone_dac'):
        hint += " (A DAC without atrous convolution, 'dac_no_atrous', stores the same tensors.)"
    if not unet and not cfg.get('dac_shared', True) and 'dac' in tuple(cfg['context']):
        hint += ' The reference code only has the shared DAC (model.dac_shared=True).'
    return fill_variables(expected, state_dict,
                          reference_unet_name if unet else reference_cenet_name,
                          _ignore_bookkeeping, 'reference checkpoint', hint.strip())


def torch_cenet_to_flax(state_dict: Mapping[str, Any],
                        model_config: Mapping[str, Any] | str) -> Variables:
    """Complete Flax variables from an authors' CE-Net (any Table VI variant) or U-Net state dict.

    `model_config` is a model config (or a `VARIANTS` name) that must describe the checkpoint's
    network; keys may carry nn.DataParallel's `module.` prefix; values are arrays or tensors.
    """
    return convert_reference(state_dict, model_config)[0]


def convert_resnet(state_dict: Mapping[str, Any], depth: int = 34
                   ) -> tuple[Variables, ConversionReport]:
    """`torchvision_resnet_to_flax` plus a report of the converted and ignored keys."""
    encoder = ResNetEncoder(depth)
    expected = expected_variables(lambda key, x: encoder.init(key, x, train=False))
    return fill_variables(expected, state_dict, torchvision_resnet_name, _ignore_resnet_extras,
                          f'ResNet-{depth} checkpoint')


def torchvision_resnet_to_flax(state_dict: Mapping[str, Any], depth: int = 34) -> Variables:
    """Encoder variables (the subtree under params['encoder'] / batch_stats['encoder']) from
    torchvision or timm ResNet-18/34/50 weights; `fc.*` and BN counters are ignored."""
    return convert_resnet(state_dict, depth)[0]


# ----------------------------------------------------------------------------- merging

def check_same_structure(expected: Mapping[str, Any], got: Mapping[str, Any], what: str) -> None:
    """Raise ConversionError listing every path whose presence or shape differs."""
    def shapes(tree: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        flat = traverse_util.flatten_dict(dict(tree))
        return {'/'.join(path): tuple(np.shape(v)) for path, v in flat.items()}

    want, have = shapes(expected), shapes(got)
    problems = [f'missing {k} {s}' for k, s in want.items() if k not in have]
    problems += [f'{k}: expected {s}, got {have[k]}' for k, s in want.items()
                 if k in have and have[k] != s]
    problems += [f'unexpected {k} {s}' for k, s in have.items() if k not in want]
    if problems:
        raise ConversionError(f'{what} does not fit the model ({len(problems)} problems):\n  '
                              + '\n  '.join(problems))


def _cast_like(expected: Any, got: Any) -> Any:
    return jax.tree.map(lambda e, g: jnp.asarray(g, dtype=e.dtype), expected, got)


def merge_pretrained_encoder(variables: Mapping[str, Any], encoder_variables: Mapping[str, Any]
                             ) -> Variables:
    """A copy of `variables` whose encoder subtree is `encoder_variables` (shapes checked,
    dtypes kept from `variables`)."""
    merged = {c: dict(tree) for c, tree in variables.items()}
    for collection in ('params', 'batch_stats'):
        target = variables.get(collection, {}).get('encoder')
        source = encoder_variables.get(collection)
        if target is None or source is None:
            raise ConversionError(f'{collection}/encoder is missing from the '
                                  f'{"model" if target is None else "encoder"} variables.')
        check_same_structure(target, source, f'pretrained encoder {collection}')
        merged[collection]['encoder'] = _cast_like(target, source)
    return merged


# ----------------------------------------------------------------------------- files

def _to_numpy_tree(tree: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def save_variables(path: str | os.PathLike, variables: Mapping[str, Any],
                   metadata: Mapping[str, Any] | None = None) -> Path:
    """Write {'params', 'batch_stats'} as Flax msgpack with JSON metadata embedded (atomically:
    a temporary file in the same folder, then os.replace)."""
    path = Path(path)
    meta = {'format': FILE_FORMAT, 'version': FILE_FORMAT_VERSION, **dict(metadata or {})}
    payload = {c: _to_numpy_tree(variables[c]) for c in ('params', 'batch_stats') if c in variables}
    payload[METADATA_KEY] = json.dumps(meta, sort_keys=True, default=_json_default)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        tmp.write_bytes(serialization.msgpack_serialize(payload))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def _read_payload(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f'weights file not found: {path}')
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on bad input
        raise ConversionError(f'{path}: not a cenet-jax weights file (msgpack): {err}. Convert '
                              'PyTorch weights with `python -m cenet_jax.convert`.') from err
    if not isinstance(payload, dict) or 'params' not in payload:
        raise ConversionError(f'{path}: not a cenet-jax weights file (no "params" entry).')
    return payload


def _split_payload(payload: Mapping[str, Any]) -> tuple[Variables, dict[str, Any]]:
    variables = {c: payload[c] for c in ('params', 'batch_stats') if c in payload}
    raw = payload.get(METADATA_KEY)
    return variables, (json.loads(raw) if isinstance(raw, str) else {})


def load_variables(path: str | os.PathLike) -> Variables:
    """The {'params', 'batch_stats'} numpy trees stored by `save_variables`."""
    return _split_payload(_read_payload(path))[0]


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored by `save_variables` (source, kind, model config, ...)."""
    return _split_payload(_read_payload(path))[1]


def restore_pretrained(variables: Mapping[str, Any], path: str | os.PathLike) -> Variables:
    """`variables` with a weights file applied: an encoder file (metadata kind 'encoder')
    replaces the encoder subtree; any other file must match the whole tree and replaces it."""
    loaded, metadata = _split_payload(_read_payload(path))
    if metadata.get('kind') == 'encoder':
        return merge_pretrained_encoder(variables, loaded)
    for collection in ('params', 'batch_stats'):
        check_same_structure(variables.get(collection, {}), loaded.get(collection, {}),
                             f'{path} ({collection})')
    return {c: _cast_like(variables[c], loaded[c]) for c in variables}


# ----------------------------------------------------------------------------- CLI

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m cenet_jax.convert',
        description='Convert PyTorch weights to cenet-jax .msgpack files.')
    parser.add_argument('--traceback', action='store_true', help=cli.TRACEBACK_HELP)
    sub = parser.add_subparsers(dest='source', required=True)
    resnet = sub.add_parser('resnet', help='torchvision/timm ImageNet ResNet -> CE-Net encoder')
    resnet.add_argument('--depth', type=int, default=34, choices=(18, 34, 50))
    cenet = sub.add_parser(
        'cenet', help="the authors' CE-Net / U-Net checkpoint -> complete model",
        description='Reference classes: CE_Net_ and CE_Net_OCT = cenet; '
                    'CE_Net_backbone_DAC_without_atrous = dac_no_atrous; '
                    'CE_Net_backbone_DAC_with_inception = backbone_inception_resnet; '
                    'CE_Net_backbone_inception_blocks = backbone_inception; UNet = unet.')
    cenet.add_argument('--variant', required=True, choices=sorted(VARIANTS))
    cenet.add_argument('--num-classes', type=int, default=None,
                       help='output channels (default: read from the checkpoint)')
    for p in (resnet, cenet):
        p.add_argument('input', help='.pth/.pt/.th (needs torch) or .safetensors')
        p.add_argument('output', help='.msgpack file to write')
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on a bad checkpoint or argument)."""
    args = _parse_args(argv)
    return cli.report_errors(lambda: _convert(args), show_traceback=args.traceback)


def _convert(args: argparse.Namespace) -> int:
    """Convert and save as the parsed arguments say; returns exit status 0."""
    state = load_state_dict(args.input)
    if args.source == 'resnet':
        variables, report = convert_resnet(state, args.depth)
        meta = {'kind': 'encoder', 'source': str(args.input),
                'converted_from': f'torchvision resnet{args.depth}', 'depth': args.depth}
    else:
        cfg = reference_config(args.variant)
        num_classes = args.num_classes or reference_num_classes(state) or 1
        cfg.num_classes = num_classes
        variables, report = convert_reference(state, cfg)
        meta = {'kind': 'model', 'source': str(args.input),
                'converted_from': f'reference CE-Net ({args.variant})',
                'variant': args.variant, 'model_config': cfg.to_dict()}
    save_variables(args.output, variables, meta)
    print(f'{args.input} -> {args.output}\n{report.summary()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
