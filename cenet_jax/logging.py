"""Training logs: console progress (step, epoch, loss, lr, images/s, TFLOP/s and MFU, ETA),
`metrics.jsonl`, TensorBoard event files. Only process 0 writes; other processes get a silent
logger.

Both files are written so that a full disk stops the run with one `DiskFullError` and leaves
no half-written line (`disk.append_line`); TensorBoard events are written synchronously (the
background writer of tensorboardX hangs its caller once a write fails).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax

from cenet_jax import disk

log = logging.getLogger('cenet_jax')
RESUME_NOTE = 'The checkpoints are not touched: the same command resumes from the newest one.'


def format_duration(seconds: float) -> str:
    """'1:02:03' style duration ('?' when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return '?'
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: float, None for NaN/Inf (e.g. throughput before the clock runs)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    return value if math.isfinite(value) else None


class _TensorBoard:
    """Scalars into a TensorBoard event file (`<logdir>/events.out.tfevents.*`), synchronously."""

    def __init__(self, logdir: Path):
        from tensorboardX.event_file_writer import EventsWriter  # lazy: only process 0 writes
        self.logdir = logdir
        try:
            logdir.mkdir(parents=True, exist_ok=True)
            self._writer = EventsWriter(str(logdir / 'events'))
        except OSError as err:
            self._raise(err, 'creating the TensorBoard event file')
            raise

    def _raise(self, err: OSError, what: str) -> None:
        if disk.is_disk_full(err):
            raise disk.disk_full_error(what, self.logdir, None, RESUME_NOTE) from err

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        from tensorboardX.proto import event_pb2
        from tensorboardX.summary import scalar
        try:
            for name, value in scalars.items():
                self._writer.write_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                                         summary=scalar(name, value)))
            self._writer.flush()
        except OSError as err:
            self._raise(err, f'writing step {step} into the TensorBoard log')
            raise

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as err:
            self._raise(err, 'closing the TensorBoard log')
            raise


def throughput_text(images_per_sec: float, flops_per_sec: float | None,
                    mfu: float | None) -> str:
    """'12.3 img/s 0.45 TFLOP/s MFU 31.2%' (the parts that are known)."""
    if not math.isfinite(images_per_sec):
        return 'img/s not yet measured'
    text = f'{images_per_sec:.1f} img/s'
    if flops_per_sec is not None and math.isfinite(flops_per_sec):
        text += f' {flops_per_sec / 1e12:#.3g}'.rstrip('.') + ' TFLOP/s'
    if mfu is not None and math.isfinite(mfu):
        text += f' MFU {100 * mfu:.1f}%'
    return text


class MetricsLogger:
    """Appends one JSON object per logged step to `metrics.jsonl` and mirrors scalars to
    TensorBoard; prints progress lines with throughput (images/s, and TFLOP/s and MFU when the
    FLOPs of a step and the devices' peak are known) and ETA."""

    def __init__(self, workdir: str | Path, total_steps: int, *, enabled: bool | None = None,
                 tensorboard: bool = True, flops_per_step: float | None = None,
                 peak_flops: float | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.total_steps = total_steps
        self.path = Path(workdir) / 'metrics.jsonl'
        self.flops_per_step = flops_per_step
        self.peak_flops = peak_flops
        self._tb = _TensorBoard(Path(workdir) / 'tensorboard') \
            if self.enabled and tensorboard else None
        self._clock: tuple[float, int] | None = None

    def start_clock(self, step: int) -> None:
        """Reset the throughput/ETA clock (after compilation, after validation)."""
        self._clock = (time.perf_counter(), step)

    def steps_per_second(self, step: int) -> float:
        if self._clock is None or step <= self._clock[1]:
            return float('nan')
        t0, s0 = self._clock
        return (step - s0) / max(time.perf_counter() - t0, 1e-9)

    def write(self, step: int, scalars: dict[str, Any], *, console: str | None = None) -> None:
        """Record `scalars` at `step` (jsonl + TensorBoard) and optionally print a line."""
        if not self.enabled:
            return
        record = {'step': int(step), **{k: _plain(v) for k, v in scalars.items()}}
        disk.append_line(self.path, json.dumps(record), what=f'logging step {step}',
                         intact=RESUME_NOTE)
        if self._tb is not None:
            self._tb.add_scalars(step, {k: v for k, v in record.items()
                                        if k != 'step' and isinstance(v, float)})
        if console:
            log.info(console)

    def rates(self, step: int, batch_size: int) -> dict[str, float]:
        """{'images_per_sec', and with the FLOPs of a step 'tflops_per_sec', with the peak too
        'mfu'} since the clock started (NaN before a step was timed)."""
        sps = self.steps_per_second(step)
        rates = {'images_per_sec': sps * batch_size}
        if self.flops_per_step:
            rates['tflops_per_sec'] = sps * self.flops_per_step / 1e12
            if self.peak_flops:
                rates['mfu'] = sps * self.flops_per_step / self.peak_flops
        return rates

    def progress_line(self, step: int, epoch: float, loss: float, lr: float,
                      batch_size: int) -> tuple[str, dict[str, float]]:
        """('step 120/1500 (epoch 3.20) loss 0.4312 lr 3.9e-03 12.3 img/s 0.45 TFLOP/s ETA
        0:12:34', the rates of `rates`)."""
        sps = self.steps_per_second(step)
        eta = (self.total_steps - step) / sps if sps > 0 else float('nan')
        rates = self.rates(step, batch_size)
        tflops = rates.get('tflops_per_sec')
        speed = throughput_text(rates['images_per_sec'],
                                None if tflops is None else tflops * 1e12, rates.get('mfu'))
        line = (f'step {step}/{self.total_steps} (epoch {epoch:.2f}) loss {loss:.4f} '
                f'lr {lr:.2e} {speed} ETA {format_duration(eta)}')
        return line, rates

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a `metrics.jsonl` (for curves and tests)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
