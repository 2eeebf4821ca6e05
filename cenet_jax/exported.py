"""A deployable model: the inference function (weights baked in, TTA optional) serialized with
`jax.export` (StableHLO) for a symbolic batch size, plus a JSON of what it expects.

The artefact `model.jax` maps float32 (batch, H, W, 3) model inputs (the image resized to H x W,
in `channel_order`, normalised as `pixel * scale + offset` per channel) to float32 probabilities
(batch, H, W, K): sigmoid for K = 1 (foreground = p > threshold), softmax otherwise (argmax).
`model.json` beside it says H, W, channel order, normalisation, classes, threshold and the TTA
baked in (the views run, and those dropped because the run's training never applied them). Loading
and running it (`load_exported`) needs jax and numpy only, not this package's training code.
The model is built with the XLA convolutions (`model.conv_impl='xla'`), portable to GPU/TPU.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cenet_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cenet_jax.errors import ConfigError, MissingFileError
from cenet_jax.evaluation import TTAPlan, predict_probs, tta_plan
from cenet_jax.models import build_model

FORMAT = 'cenet-jax exported model v1'
DEFAULT_PLATFORMS = ('cpu', 'cuda', 'tpu')


def metadata_path(model_path: str | Path) -> Path:
    """`model.jax` -> `model.json`, the description written beside it."""
    return Path(model_path).with_suffix('.json')


def portable_model_config(model_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of the model config with the XLA convolution formulation (same parameters)."""
    cfg = ml_collections.ConfigDict(model_cfg.to_dict())
    with cfg.unlocked():
        cfg.conv_impl = 'xla'
    return cfg


def normalization_affine(normalization: str, channel_order: str) -> tuple[list[float], list[float]]:
    """(scale, offset) per input channel such that model input = pixel * scale + offset, for
    uint8 pixels already in `channel_order` (data.transforms.normalize as an affine map)."""
    if normalization == 'reference':
        return [3.2 / 255.0] * 3, [-1.6] * 3
    mean, std = IMAGENET_MEAN.astype(np.float64), IMAGENET_STD.astype(np.float64)
    if channel_order == 'bgr':
        mean, std = mean[::-1], std[::-1]
    return list(1.0 / (255.0 * std)), list(-mean / std)


def inference_function(model: Any, variables: Any, *, tta: TTAPlan
                       ) -> Callable[[jax.Array], jax.Array]:
    """images (N, H, W, 3) -> probabilities (N, H, W, K) over the plan's TTA views, the
    variables closed over (baked in)."""
    def probs(images: jax.Array) -> jax.Array:
        return predict_probs(lambda x, v: model.apply(v, x, train=False), images, variables,
                             tta=tta)
    return probs


def export_model(config: ml_collections.ConfigDict, variables: Any, *, tta: str = 'none',
                 platforms: Sequence[str] = DEFAULT_PLATFORMS, source: str = ''
                 ) -> tuple[bytes, dict[str, Any]]:
    """(serialized jax.export artefact, its metadata) for the run's model and `variables`; the
    TTA `tta` less the views the run's training never applied (`evaluation.tta_plan`)."""
    height, width = (int(s) for s in config.data.image_size)
    model = build_model(portable_model_config(config.model))
    host = jax.tree.map(np.asarray, jax.device_get(variables))
    plan = tta_plan(config, tta)
    fn = inference_function(model, host, tta=plan)
    batch, = jax.export.symbolic_shape('batch')
    spec = jax.ShapeDtypeStruct((batch, height, width, 3), jnp.float32)
    exported = jax.export.export(jax.jit(fn), platforms=tuple(platforms))(spec)
    outputs = int(exported.out_avals[0].shape[-1])
    normalization, channel_order = str(config.data.normalization), str(config.data.channel_order)
    scale, offset = normalization_affine(normalization, channel_order)
    meta = {
        'format': FORMAT,
        'input': {'shape': ['batch', height, width, 3], 'dtype': 'float32',
                  'image_size': [height, width], 'channel_order': channel_order,
                  'normalization': normalization, 'scale': scale, 'offset': offset,
                  'high_bit_depth': str(config.data.high_bit_depth)},
        'output': {'shape': ['batch', height, width, outputs], 'dtype': 'float32',
                   'kind': 'sigmoid probabilities' if outputs == 1 else 'softmax probabilities'},
        'num_classes': int(config.data.num_classes),
        'threshold': float(config.eval.threshold),
        **plan.settings(),
        'architecture': str(config.model.architecture), 'source': source,
        'platforms': list(platforms), 'jax_version': jax.__version__,
    }
    return bytes(exported.serialize()), meta


def save_exported(artefact: bytes, meta: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write `out` (the artefact) and the JSON beside it; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(artefact)
    meta_path = metadata_path(out)
    meta_path.write_text(json.dumps({**meta, 'file': out.name}, indent=1) + '\n')
    return out, meta_path


def load_exported(path: str | Path) -> tuple[Callable[[Any], jax.Array], dict[str, Any]]:
    """(probabilities function, metadata) of an exported model: jax and numpy only."""
    path, meta_path = Path(path), metadata_path(path)
    for needed in (path, meta_path):
        if not needed.is_file():
            raise MissingFileError(f'{needed} not found: `python -m cenet_jax.export ... --out '
                                   f'{path}` writes the model and its description {meta_path.name}')
    try:
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
        meta = json.loads(meta_path.read_text())
    except Exception as err:  # flatbuffer / JSON errors of many types: name the file
        raise ConfigError(f'{path}: not a model written by python -m cenet_jax.export '
                          f'({type(err).__name__}: {str(err)[:200]})') from err
    return exported.call, meta
