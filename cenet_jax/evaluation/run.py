"""What eval.py does: load a trained or converted model, score a split with the task's metrics
(tables, metrics.json, per-image CSV, PNG figures with the TTA uncertainty, the browsable
index.html), or predict masks for a folder of images."""
from __future__ import annotations

import functools
import io
import json
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn
from PIL import Image

from cenet_jax import convert, parallel
from cenet_jax.checkpoint import Checkpoints, weights_template
from cenet_jax.data import pipeline
from cenet_jax.data.decode import read_image
from cenet_jax.data.disc_crop import describe_disc_crop
from cenet_jax.data.errors import DataError
from cenet_jax.data.transforms import model_image, normalize
from cenet_jax.errors import ConfigError
from cenet_jax.disk import write_atomic
from cenet_jax.evaluation.html_report import write_html_report
from cenet_jax.evaluation.predict import (BatchPredictor, as_record_stream, predict_full_image,
                                          predict_records)
from cenet_jax.evaluation.reports import format_table, write_metrics_json, write_per_image_csv
from cenet_jax.evaluation.scoring import evaluate_records
from cenet_jax.evaluation.tta import TTAPlan, tta_plan
from cenet_jax.figures import save_training_curves
from cenet_jax.logging import read_metrics
from cenet_jax.exported import load_exported
from cenet_jax.losses import predict_classes
from cenet_jax.models import build_model

log = logging.getLogger('cenet_jax')
DISC_TASKS = ('disc', 'disc_cup')   # tasks whose reports say how the optic disc was cropped
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.gif', '.bmp', '.npy')


def abstract_variables(model: nn.Module, mesh) -> dict[str, Any]:
    """{'params', 'batch_stats'} shapes and dtypes of the model, replicated on the mesh (no
    computation: the restore target of inference)."""
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                            jnp.zeros(convert.SHAPE_PROBE, jnp.float32))
    sharding = parallel.replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        {'params': shapes['params'], 'batch_stats': shapes.get('batch_stats', {})})


def use_ema_weights(config: ml_collections.ConfigDict, ema: bool | None) -> bool:
    """Whether to evaluate the EMA weights: by default when the run kept them
    (`config.ema_decay` > 0); asking for them from a run without EMA is a ConfigError."""
    kept = float(config.get('ema_decay', 0.0)) > 0
    if ema and not kept:
        raise ConfigError('--ema: this run kept no EMA of the weights (config.ema_decay is 0); '
                          'omit --ema or evaluate a run trained with --config.ema_decay')
    return kept if ema is None else bool(ema)


def load_variables_for_eval(config: ml_collections.ConfigDict, mesh, *, workdir: str | Path | None,
                            checkpoint: str = 'best', weights: str | None = None,
                            ema: bool | None = None) -> tuple[nn.Module, Any, str]:
    """(model, variables on the mesh, where they came from): from a converted weights file, or
    the weights alone (no optimizer state) of the workdir's best / latest / numbered checkpoint,
    skipping damaged ones with a warning; the EMA weights when `use_ema_weights` says so."""
    model = build_model(config.model)
    abstract = abstract_variables(model, mesh)
    if weights:
        if convert.read_metadata(weights).get('kind') == 'encoder':
            raise convert.ConversionError(
                f'{weights} holds only encoder weights (an ImageNet ResNet); evaluation needs a '
                'whole trained network: a workdir checkpoint or a converted CE-Net file.')
        host = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract)
        return model, parallel.replicate(convert.restore_pretrained(host, weights), mesh), weights
    if workdir is None:
        raise ConfigError('pass --workdir (a training run) or --weights (a converted file)')
    if checkpoint not in ('best', 'latest') and not checkpoint.isdigit():
        raise ConfigError(f"--checkpoint must be 'best', 'latest' or a step number, got {checkpoint!r}")
    ckpt = Checkpoints(workdir, async_save=False, read_only=True)
    try:
        step = jax.ShapeDtypeStruct((), jnp.int32, sharding=parallel.replicated(mesh))
        template = weights_template(step, abstract['params'], abstract['batch_stats'],
                                    ema=use_ema_weights(config, ema))
        variables, source = ckpt.restore_weights(template, checkpoint)
    finally:
        ckpt.close()
    return model, variables, source


def _sliding_probs(predictor: BatchPredictor, variables: Any, record: dict[str, Any],
                   data_cfg: ml_collections.ConfigDict, overlap: float) -> np.ndarray:
    image = normalize(record['image'], str(data_cfg.normalization), str(data_cfg.channel_order))
    return np.asarray(predict_full_image(
        lambda windows: predictor(variables, np.asarray(windows)), image,
        model_size=tuple(data_cfg.image_size), mode='sliding', overlap=overlap))


def record_probabilities(predictor: BatchPredictor, variables: Any, records,
                         config: ml_collections.ConfigDict):
    """(record, probabilities at the record's size) for every record, by `config.eval.mode`."""
    if config.eval.mode == 'resize':
        yield from predict_records(predictor, variables, records)
    elif config.eval.mode == 'sliding':
        for record in records:
            yield record, _sliding_probs(predictor, variables, record, config.data,
                                         float(config.eval.window_overlap))
    else:
        raise ValueError(f"config.eval.mode must be 'resize' or 'sliding', got {config.eval.mode!r}")


def provenance_lines(info: Any) -> list[str]:
    """What was scored, for the log and the report: dataset, split source and size, FOV."""
    return info.lines() if info is not None else []


def keeps_uncertainty(config: ml_collections.ConfigDict, num_views: int) -> bool:
    """Whether eval.py keeps the TTA uncertainty: `config.eval.uncertainty` (default on), with
    more than one view, predicting whole images resized (`eval.mode='resize'`)."""
    wanted = bool(config.eval.get('uncertainty', True))
    if wanted and config.eval.mode != 'resize':
        log.info('TTA uncertainty is kept with eval.mode=resize only (this is %r)', config.eval.mode)
    return wanted and num_views > 1 and config.eval.mode == 'resize'


def write_training_curves(workdir: str | Path | None, out_dir: Path) -> str | None:
    """`<out_dir>/curves.png` from the run's metrics.jsonl (its name, or None without one)."""
    if workdir is None or not (Path(workdir) / 'metrics.jsonl').is_file():
        return None
    return 'curves.png' if save_training_curves(out_dir / 'curves.png',
                                                read_metrics(Path(workdir) / 'metrics.jsonl')) \
        else None


def tta_lines(plan: TTAPlan, config: ml_collections.ConfigDict) -> list[str]:
    """The report's TTA lines: requested and run (with the model input size), then the views
    dropped (or kept although unseen) and why."""
    height, width = (int(s) for s in config.data.image_size)
    return [f'TTA requested {plan.requested}, run as {plan.label} ({len(plan.views)} view(s): '
            f'{", ".join(plan.views)}; model input {height}x{width})', *plan.lines()[1:]]


def evaluate_split(config: ml_collections.ConfigDict, model: nn.Module, variables: Any, mesh,
                   out_dir: str | Path, *, split: str, tta: str, source: str = '',
                   workdir: str | Path | None = None) -> str:
    """Score `split` ('train' | 'val' | 'test' | 'all'); write metrics.json, per_image.csv,
    figures/ (with the TTA uncertainty panel; `eval.save_uncertainty`: its maps in
    uncertainty/<id>.npy) and the browsable index.html (with the run's training curves when
    `workdir` is given) under `out_dir`; return the paper-style table (also written as
    table.txt), which starts with what was scored (dataset, the split's images, the FOV).
    Every file is written whole; a full disk stops with a DiskFullError naming the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = tta_plan(config, tta)
    records = pipeline.build_eval_records(config.data, split)
    provenance = provenance_lines(records.info)
    if config.eval.task in DISC_TASKS:
        crop = int(config.data.disc_crop_size)
        if config.eval.task == 'disc_cup' or crop > 0:   # overlap on the whole image: no FOV enters
            provenance = [line for line in provenance if not line.startswith('FOV:')]
            provenance.append('FOV: not used (the disc and cup overlap scores count every pixel of the image)')
        provenance.append('disc crop: ' + describe_disc_crop(crop, str(config.data.get('disc_locator', 'brightest'))))
    for line in provenance:
        log.info('%s', line)
    uncertainty = keeps_uncertainty(config, len(plan.views))
    predictor = BatchPredictor(model, mesh, tta=plan, non_square=config.eval.non_square,
                               batch_size=config.eval.batch_size, uncertainty=uncertainty)
    stream, probs_of = as_record_stream(record_probabilities(predictor, variables, records, config))
    paper_key = config.eval.paper_key or None
    primary = jax.process_index() == 0
    figures = primary and config.eval.figures
    result = evaluate_records(
        stream, probs_of, task=config.eval.task, paper_key=paper_key,
        threshold=float(config.eval.threshold),
        cell_thresholds=tuple(float(t) for t in config.eval.get('cell_thresholds', ())),
        figure_dir=out_dir / 'figures' if figures else None,
        uncertainty_dir=out_dir / 'uncertainty' if primary and uncertainty
        and config.eval.get('save_uncertainty', False) else None,
        extra_settings={'split': split, **plan.settings(), 'mode': config.eval.mode,
                        'source': source, 'provenance': provenance,
                        **(records.info.as_dict() if records.info is not None else {})})
    table = format_table(result) + '\n' + '\n'.join(tta_lines(plan, config))
    if primary:
        write_metrics_json(result, out_dir / 'metrics.json')
        write_per_image_csv(result, out_dir / 'per_image.csv')
        write_atomic(out_dir / 'table.txt', table + '\n')
        page = write_html_report(
            out_dir, result, title=f'{config.data.name} {split}: {config.eval.task}, TTA {plan.label}',
            config=json.loads(config.to_json_best_effort()),
            curves=write_training_curves(workdir, out_dir),
            figures_dir='figures' if figures else None, source=source)
        log.info('report page: %s', page)
    return table


def list_images(input_dir: str | Path) -> list[Path]:
    """Image files of a folder (sorted); a clear error for a missing or empty folder."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise DataError(f'--input {folder}: not a folder')
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f'--input {folder}: no images ({", ".join(IMAGE_SUFFIXES)}) found')
    return files


def folder_records(files: list[Path], image_hw: tuple[int, int], normalization: str,
                   channel_order: str, high_bit_depth: str):
    """Prediction records ('id', 'image', 'model_image') of image files, read one at a time."""
    for path in files:
        try:
            image = read_image(path, high_bit_depth=high_bit_depth)
        except DataError:
            raise
        except Exception as err:  # PIL's many error types: name the file
            raise DataError(f'{path}: cannot read this image ({err})') from err
        yield {'id': path.stem, 'image': image,
               'model_image': model_image(image, image_hw, normalization, channel_order)}


def write_masks(pairs, output_dir: str | Path, threshold: float) -> list[Path]:
    """Save a mask PNG (binary: 0/255; multi-class: class index) per (record, probabilities)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for record, probs in pairs:
        classes = np.asarray(predict_classes(probs, threshold=threshold))
        mask = (classes * 255).astype(np.uint8) if probs.shape[-1] == 1 else classes.astype(np.uint8)
        path = out / f'{record["id"]}.png'
        if jax.process_index() == 0:
            buffer = io.BytesIO()
            Image.fromarray(mask).save(buffer, format='PNG')
            write_atomic(path, buffer.getvalue())
        written.append(path)
    return written


def predict_folder(config: ml_collections.ConfigDict, model: nn.Module, variables: Any, mesh,
                   input_dir: str | Path, output_dir: str | Path, *, tta: str) -> list[Path]:
    """Predict a mask PNG (binary: 0/255; multi-class: class index) for every image of a folder."""
    files = list_images(input_dir)
    predictor = BatchPredictor(model, mesh, tta=tta_plan(config, tta),
                               non_square=config.eval.non_square, batch_size=config.eval.batch_size)
    records = folder_records(files, tuple(config.data.image_size), str(config.data.normalization),
                             str(config.data.channel_order), str(config.data.high_bit_depth))
    return write_masks(record_probabilities(predictor, variables, records, config), output_dir,
                       float(config.eval.threshold))


class ExportedPredictor:
    """`predict_records`' predictor for an exported model: any batch size, no variables."""

    def __init__(self, fn: Any, batch_size: int = 8):
        self.fn, self.batch_size = fn, batch_size

    def __call__(self, variables: Any, images: np.ndarray) -> np.ndarray:
        del variables   # baked into the exported function
        return np.asarray(self.fn(np.asarray(images, np.float32)))


def predict_folder_exported(exported: str | Path, input_dir: str | Path,
                            output_dir: str | Path) -> tuple[list[Path], dict[str, Any]]:
    """(mask PNGs written, the model's metadata) for a folder, with an exported model
    (`python -m cenet_jax.export`); sizes, normalisation and threshold from its JSON."""
    fn, meta = load_exported(exported)
    files = list_images(input_dir)
    spec = meta['input']
    records = folder_records(files, tuple(spec['image_size']), spec['normalization'],
                             spec['channel_order'], spec.get('high_bit_depth', 'range'))
    pairs = predict_records(ExportedPredictor(fn), None, records)
    return write_masks(pairs, output_dir, float(meta['threshold'])), meta


def default_output_dir(workdir: str | Path | None, weights: str | None, split: str, tta: str) -> Path:
    """`<workdir>/eval/<split>_tta-<mode>`, or next to the weights file."""
    base = Path(workdir) if workdir else Path(weights).with_suffix('')
    return base / 'eval' / f'{split}_tta-{tta}'

