"""Training logs: console progress (step, epoch, loss, lr, images/s, ETA), `metrics.jsonl`,
TensorBoard event files. Only process 0 writes; other processes get a silent logger."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax

log = logging.getLogger('cenet_jax')


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


class MetricsLogger:
    """Appends one JSON object per logged step to `metrics.jsonl` and mirrors scalars to
    TensorBoard; prints progress lines with throughput and ETA."""

    def __init__(self, workdir: str | Path, total_steps: int, *, enabled: bool | None = None,
                 tensorboard: bool = True):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.total_steps = total_steps
        self.path = Path(workdir) / 'metrics.jsonl'
        self._tb = None
        if self.enabled and tensorboard:
            from tensorboardX import SummaryWriter  # lazy: only the writing process needs it
            self._tb = SummaryWriter(str(Path(workdir) / 'tensorboard'))
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
        with self.path.open('a') as f:
            f.write(json.dumps(record) + '\n')
        if self._tb is not None:
            for k, v in record.items():
                if k != 'step' and isinstance(v, float):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if console:
            log.info(console)

    def progress_line(self, step: int, epoch: float, loss: float, lr: float,
                      batch_size: int) -> tuple[str, float]:
        """('step 120/1500 (epoch 3.20) loss 0.4312 lr 3.9e-03 12.3 img/s ETA 0:12:34', img/s)."""
        sps = self.steps_per_second(step)
        eta = (self.total_steps - step) / sps if sps > 0 else float('nan')
        ips = sps * batch_size
        speed = f'{ips:.1f} img/s' if math.isfinite(ips) else 'img/s not yet measured'
        line = (f'step {step}/{self.total_steps} (epoch {epoch:.2f}) loss {loss:.4f} '
                f'lr {lr:.2e} {speed} ETA {format_duration(eta)}')
        return line, ips

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a `metrics.jsonl` (for curves and tests)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
