"""The training loop: init or resume, jitted sharded steps, logging, validation, checkpoints.

`train_and_evaluate(config, workdir)` is everything `train.py` does. Restarting it on the
same workdir resumes from the newest checkpoint that restores (state and data iterator), so an
interrupted run continues bit-identically on CPU; the config is first checked against the
run's config.json (cenet_jax/run_config.py).
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import linen as nn

from cenet_jax import convert, figures, parallel, run_config
from cenet_jax.checkpoint import Checkpoints, weights_template
from cenet_jax.data import pipeline
from cenet_jax.data.config import LABELLED_INSIDE_FOV_ONLY
from cenet_jax.data.errors import NoValidationSplit
from cenet_jax.data.sources import build_source
from cenet_jax.errors import CenetError, ConfigError
from cenet_jax.evaluation import (BatchPredictor, as_record_stream, evaluate_records,
                                  figure_file_name, predict_records, tta_plan)
from cenet_jax.logging import MetricsLogger, read_metrics
from cenet_jax.losses import predict_classes, segmentation_loss
from cenet_jax.models import build_model
from cenet_jax.ops import describe_conv_impl
from cenet_jax.training.accumulate import check_grad_accum
from cenet_jax.training.ema import check_ema_decay
from cenet_jax.training.flops import peak_flops_per_device, train_step_flops
from cenet_jax.training.param_groups import parse_rules, summarize_groups
from cenet_jax.training.profiling import StepProfiler, parse_profile_steps
from cenet_jax.training.state import TrainState, create_train_state, learning_rate_schedule, make_optimizer
from cenet_jax.training.step import train_step

log = logging.getLogger('cenet_jax')


class NonFiniteLossError(CenetError, FloatingPointError):
    """The training loss or the gradient norm became NaN or Inf."""


def check_num_classes(config: ml_collections.ConfigDict) -> None:
    """ConfigError unless the model's output channels fit the label classes: a binary task
    (data.num_classes 2) takes 1 (sigmoid) or 2 (softmax) channels, K > 2 classes take K.
    A config file sets both; a command line that changes one alone would otherwise train an
    extra, never-labelled channel (or lose a class) without a word."""
    classes, channels = int(config.data.num_classes), int(config.model.num_classes)
    allowed = (1, 2) if classes == 2 else (classes,)
    if channels not in allowed:
        raise ConfigError(
            f'config.model.num_classes={channels} does not fit config.data.num_classes={classes}: '
            f'the model needs {" or ".join(map(str, allowed))} output channels'
            f'{" (binary: 1 = sigmoid, 2 = softmax)" if classes == 2 else ""}; set '
            f'--config.model.num_classes={allowed[0]} with --config.data.num_classes={classes}.')


def total_train_steps(config: ml_collections.ConfigDict, num_examples: int) -> tuple[int, int]:
    """(total steps, steps per epoch): num_train_steps if > 0, else epochs x (examples // batch)."""
    steps_per_epoch = max(num_examples // config.batch_size, 1)
    if config.num_train_steps > 0:
        return int(config.num_train_steps), steps_per_epoch
    return int(config.num_epochs) * steps_per_epoch, steps_per_epoch


def make_loss_fn(loss_cfg: ml_collections.ConfigDict):
    """loss_fn(logits, labels, mask) from the loss config (read here, once)."""
    weights = tuple(float(w) for w in loss_cfg.class_weights) or None
    return functools.partial(segmentation_loss, kind=loss_cfg.kind, class_weights=weights,
                             denominator=loss_cfg.denominator, smooth=float(loss_cfg.smooth),
                             reduction=loss_cfg.reduction)


LOSS_MASKS = ('auto', 'none', 'fov')


def loss_mask(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """(the pixels that carry loss, 'none' or 'fov', and why) from `config.loss.mask`: 'auto'
    is 'fov' on datasets labelled only inside their FOV (OCT: columns with every boundary),
    else 'none' (DRIVE and the others train on the whole image, as the paper)."""
    mask = str(config.loss.get('mask', 'auto'))
    if mask not in LOSS_MASKS:
        raise ConfigError(f'config.loss.mask must be one of {LOSS_MASKS}, got {mask!r}')
    if mask != 'auto':
        return mask, f'loss.mask={mask!r}'
    name = str(config.data.name)
    if name in LABELLED_INSIDE_FOV_ONLY:
        return 'fov', (f"loss.mask='auto': {name!r} is labelled only inside its FOV "
                       '(columns with every boundary)')
    return 'none', f"loss.mask='auto': {name!r} is labelled on the whole image"


def make_step(config: ml_collections.ConfigDict, model: nn.Module, tx, *,
              grad_accum_steps: int | None = None):
    """`train_step` with the model, optimizer, loss (and its pixel mask) and EMA settings of
    `config` bound."""
    return functools.partial(
        train_step, model=model, tx=tx, loss_fn=make_loss_fn(config.loss),
        use_mask=loss_mask(config)[0] == 'fov',
        grad_accum_steps=int(config.grad_accum_steps if grad_accum_steps is None
                             else grad_accum_steps),
        ema_decay=float(config.ema_decay), ema_warmup=bool(config.ema_warmup))


def step_flops(config: ml_collections.ConfigDict, tx, state: TrainState,
               batch: dict[str, Any]) -> float | None:
    """FLOPs of one training step on this batch shape (training/flops.py: the XLA form of the
    step, lowered once per process and config; gradient accumulation counted as one pass)."""
    shapes = {k: (tuple(v.shape), str(v.dtype)) for k, v in batch.items()}
    key = json.dumps([run_config.as_json(config.model), run_config.as_json(config.loss),
                      run_config.as_json(config.optim), float(config.ema_decay),
                      bool(config.ema_warmup), sorted(shapes.items())], default=str)
    return train_step_flops(lambda model: make_step(config, model, tx, grad_accum_steps=1),
                            config.model, state, batch, cache_key=key)


def peak_flops(config: ml_collections.ConfigDict, mesh) -> float | None:
    """Peak FLOP/s of the mesh's devices together (for MFU); None on CPU or unknown devices."""
    per_device = peak_flops_per_device(mesh.devices.flat[0],
                                       float(config.get('peak_tflops', 0.0) or 0.0))
    return None if per_device is None else per_device * mesh.devices.size


@contextlib.contextmanager
def _stopping(profiler: StepProfiler):
    """Ends a running profiler trace however the loop ends."""
    try:
        yield
    finally:
        profiler.stop()


def initial_state(model: nn.Module, config: ml_collections.ConfigDict, tx, mesh) -> TrainState:
    """Random (or pretrained) variables and fresh optimizer state, replicated on the mesh."""
    init_rng, state_rng = jax.random.split(jax.random.key(config.seed))
    dummy = jnp.zeros((1, 64, 64, 3), jnp.float32)  # parameter shapes do not depend on H, W
    init = jax.jit(functools.partial(model.init, train=False),
                   out_shardings=parallel.replicated(mesh))
    variables = init(init_rng, dummy)
    if config.model.pretrained:
        host = jax.device_get(variables)
        variables = parallel.replicate(convert.restore_pretrained(host, config.model.pretrained),
                                      mesh)
        log.info('initialised from %s', config.model.pretrained)
    make = jax.jit(functools.partial(create_train_state, tx=tx, ema=float(config.ema_decay) > 0),
                   out_shardings=parallel.replicated(mesh))
    return make(variables, rng=state_rng)


def report_param_groups(params: Any, optim_cfg: ml_collections.ConfigDict,
                        workdir: Path | None) -> None:
    """Log each parameter group (rule, parameter count, modules) and write every parameter's
    group to `<workdir>/param_groups.json`; ConfigError for a rule that matches nothing."""
    rules = parse_rules(optim_cfg.get('param_groups', ()) or ())
    if not rules:
        return
    groups = summarize_groups(params, rules)
    for g in groups:
        modules = sorted({'.'.join(p.split('.')[:2]) for p in g.paths})
        log.info('parameter group %r: %s parameters in %d arrays (%s)', g.rule,
                 f'{g.num_params:,}', len(g.paths), ', '.join(modules))
    if workdir is not None:
        (workdir / 'param_groups.json').write_text(json.dumps(
            [{'rule': g.rule, 'num_params': g.num_params, 'params': list(g.paths)}
             for g in groups], indent=1) + '\n')


class _Preemption:
    """Turns SIGTERM into a flag the loop checks between steps (then: save and exit)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, nothing to restore
            self._previous = None
        return self

    def _handle(self, signum, frame):
        log.warning('SIGTERM received: saving a checkpoint, then exiting.')
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _drain(pending: list[tuple[int, dict[str, Any]]], ckpt: Checkpoints) -> dict[str, float]:
    """Fetch pending step metrics; stop with a clear error at the first non-finite loss."""
    if not pending:
        return {}
    host = jax.device_get([m for _, m in pending])
    for (step, _), m in zip(pending, host):
        if not bool(m['finite']):
            ckpt.wait()
            last = ckpt.latest_step()
            where = (f'the last good checkpoint (step {last}) is kept in '
                     f'{ckpt.latest.directory}' if last is not None else 'no checkpoint was saved')
            raise NonFiniteLossError(
                f'training loss became {float(m["loss"])} (gradient norm {float(m["grad_norm"])}) '
                f'at step {step}; training stopped and '
                f'{where}. Try a lower --config.optim.lr or check the input data.')
    pending.clear()
    return {k: float(np.mean([m[k] for m in host])) for k in ('loss', 'grad_norm')}


def validate(state: TrainState, predictor: BatchPredictor, records: Any,
             config: ml_collections.ConfigDict, workdir: Path, step: int) -> dict[str, float]:
    """Task metrics (per-image means) on the validation records, predicted with the EMA weights
    when the state keeps them; a few predictions as PNG."""
    samples: list[tuple[dict[str, Any], np.ndarray]] = []

    def keep_samples(pairs):
        for pair in pairs:
            if len(samples) < config.num_sample_images:
                samples.append(pair)
            yield pair

    stream, probs_of = as_record_stream(keep_samples(
        predict_records(predictor, state.eval_variables, records)))
    result = evaluate_records(stream, probs_of, task=config.eval.task,
                              threshold=config.eval.threshold)
    summary = {f'val_{k}': s.mean for k, s in result.aggregate.items() if math.isfinite(s.mean)}
    if jax.process_index() == 0 and samples:
        out = workdir / 'samples'
        out.mkdir(exist_ok=True)
        for r, p in samples:
            pred = np.asarray(predict_classes(p, threshold=config.eval.threshold))
            figures.save_prediction_figure(out / f'step{step:07d}_{figure_file_name(r["id"])}',
                                           r['image'], r['label'], pred, probs=p, fov=r.get('fov'))
    return summary


def validation_records(config: ml_collections.ConfigDict) -> Any:
    """The validation records (their source logged), or None: validation off
    (`eval_every_steps` <= 0), or no validation images (data.val_fraction 0 and no val list,
    the CPU recipes' setting: logged, and training goes on without validation; the test
    split is never used in its place)."""
    if config.eval_every_steps <= 0:
        return None
    try:
        records = pipeline.build_eval_records(config.data, 'val')
    except NoValidationSplit as error:
        log.warning('validation off (config.eval_every_steps=%d asks for it): %s', config.eval_every_steps, error)
        return None
    log.info('%s', records.info.line)
    return records


def save_curves(workdir: Path) -> None:
    """`curves.png`: training loss and validation metrics against steps."""
    figures.save_training_curves(workdir / 'curves.png', read_metrics(workdir / 'metrics.jsonl'))


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value > best if mode == 'max' else value < best


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       stop_at_step: int | None = None) -> TrainState:
    """Train (resuming if the workdir has checkpoints); returns the final state.

    `stop_at_step` ends this run early (with a checkpoint) without changing the schedule, as a
    pre-emption would: for time-limited jobs and for testing resumption.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    primary = jax.process_index() == 0
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    check_grad_accum(int(config.grad_accum_steps), config.batch_size, mesh.devices.size)
    check_ema_decay(float(config.ema_decay))
    check_num_classes(config)
    if config.best_mode not in ('max', 'min'):
        raise ConfigError(f"config.best_mode must be 'max' or 'min', got {config.best_mode!r}")
    ckpt = Checkpoints(workdir, keep=config.keep_checkpoints, async_save=config.async_checkpoints)
    try:
        if ckpt.latest.all_steps() or ckpt.best.all_steps():   # before any work
            run_config.check_resume_config(config, workdir, write=primary)
        return _train(config, workdir, ckpt, mesh, stop_at_step)
    finally:
        ckpt.close()   # pending saves reach the disk, on errors too (a failed one: removed)


def _train(config: ml_collections.ConfigDict, workdir: Path, ckpt: Checkpoints, mesh,
           stop_at_step: int | None) -> TrainState:
    """train_and_evaluate after the workdir and config checks."""
    primary = jax.process_index() == 0
    train_source = build_source(config.data, 'train')  # validated once, here
    num_examples = len(train_source)
    log.info('%s', train_source.info.line)   # where the training images come from
    total_steps, steps_per_epoch = total_train_steps(config, num_examples)
    model = build_model(config.model)
    log.info('convolutions: %s; compute dtype %s', describe_conv_impl(getattr(model, 'conv_impl', '')),
             config.model.dtype)
    mask, why = loss_mask(config)
    log.info('loss %s over %s (%s)', config.loss.kind,
             'the FOV pixels only' if mask == 'fov' else 'every pixel', why)
    tx = make_optimizer(config.optim, total_steps)
    schedule = learning_rate_schedule(config.optim, total_steps)
    state = initial_state(model, config, tx, mesh)
    train_iter = pipeline.build_train_iterator(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        source=train_source)

    report_param_groups(state.params, config.optim, workdir if primary else None)
    resumed = ckpt.restore_newest(state, train_iter)
    if resumed is not None:
        state = resumed[0]
        log.info('resumed from step %d in %s', int(state.step), ckpt.latest.directory)
    elif primary:
        run_config.write_run_config(config, workdir)
    best_meta = ckpt.best_meta(weights_template(state.step, state.params, state.batch_stats))
    best_value = None if best_meta is None else best_meta.get(config.best_metric)

    state_sharding = parallel.replicated(mesh)
    jitted_step = jax.jit(
        make_step(config, model, tx), in_shardings=(state_sharding, parallel.batch_sharding(mesh)),
        out_shardings=(state_sharding, parallel.replicated(mesh)), donate_argnums=0)
    step_fn = parallel.on_mesh(jitted_step, mesh)

    val_records = validation_records(config)
    predictor = None
    if val_records is not None:
        predictor = BatchPredictor(model, mesh, tta=tta_plan(config, config.eval.val_tta),
                                   non_square=config.eval.non_square,
                                   batch_size=config.eval.batch_size)

    logger = MetricsLogger(workdir, total_steps, enabled=primary,
                           peak_flops=peak_flops(config, mesh))
    profiler = StepProfiler(parse_profile_steps(config.get('profile_steps', ()), total_steps),
                            workdir)
    step = int(state.step)
    log.info('training %s for %d steps (%d per epoch, %d examples), global batch %d over %d '
             'device(s) on %d host(s)', config.model.architecture, total_steps, steps_per_epoch,
             num_examples, config.batch_size, mesh.devices.size, jax.process_count())
    if state.ema is not None:
        log.info('keeping an EMA of the weights (decay %s%s); validation uses it',
                 config.ema_decay, ', with warmup' if config.ema_warmup else '')
    pending: list[tuple[int, dict[str, Any]]] = []
    first_step_done = False
    with _Preemption() as preemption, _stopping(profiler):
        while step < total_steps:
            batch = parallel.global_batch(next(train_iter), mesh)
            if not first_step_done:   # hosts start the step's collectives together
                parallel.compile_on_every_process(jitted_step, mesh, state, batch, what='the train step')
            profiler.before_step(step + 1)
            state, metrics = step_fn(state, batch)
            step += 1
            pending.append((step, metrics))
            if profiler.after_step(step, metrics):
                logger.start_clock(step)   # writing the trace is not training time
            if not first_step_done:  # keep compilation out of the throughput/ETA clock
                jax.block_until_ready(metrics)
                logger.flops_per_step = step_flops(config, tx, state, batch)
                logger.start_clock(step)
                first_step_done = True
            last = step == total_steps
            if step % config.log_every_steps == 0 or last:
                means = _drain(pending, ckpt)
                ckpt.check()   # a background save that ran out of disk stops the run now
                lr = float(schedule(step - 1))
                line, rates = logger.progress_line(step, step / steps_per_epoch, means['loss'],
                                                   lr, config.batch_size)
                logger.write(step, {'train_loss': means['loss'], 'grad_norm': means['grad_norm'],
                                    'lr': lr, 'epoch': step / steps_per_epoch, **rates},
                             console=line)
            if predictor is not None and (step % config.eval_every_steps == 0 or last):
                _drain(pending, ckpt)
                t0 = time.perf_counter()
                summary = validate(state, predictor, val_records, config, workdir, step)
                logger.write(step, summary, console='validation at step %d: %s (%.1fs)' % (
                    step, ', '.join(f'{k}={v:.4f}' for k, v in summary.items()),
                    time.perf_counter() - t0))
                if primary:
                    save_curves(workdir)
                key = f'val_{config.best_metric}'
                if key not in summary:
                    raise ConfigError(f'config.best_metric={config.best_metric!r} is not a validation '
                                   f'metric; choose one of {sorted(k[4:] for k in summary)}')
                if _is_better(summary[key], best_value, config.best_mode):
                    best_value = summary[key]
                    ckpt.save(step, state, None, {'step': step, **summary,
                                                  config.best_metric: best_value}, best=True)
                logger.start_clock(step)
            stop = preemption.requested or step == stop_at_step
            if step % config.checkpoint_every_steps == 0 or last or stop:
                _drain(pending, ckpt)
                ckpt.save(step, state, train_iter, {'step': step})
            if stop:
                log.warning('stopped at step %d (%s); rerun the same command to resume', step,
                            'SIGTERM' if preemption.requested else 'stop_at_step')
                break
    _drain(pending, ckpt)
    ckpt.wait()
    logger.close()
    if primary and (workdir / 'metrics.jsonl').exists():
        save_curves(workdir)
    return state
