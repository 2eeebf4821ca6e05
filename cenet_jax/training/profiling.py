"""`config.profile_steps=(A, B)`: a `jax.profiler` trace of training steps A to B (1-based, as
the log counts them) written into `<workdir>/profile/`.

The trace lands in `<workdir>/profile/plugins/profile/<time>/`: `<host>.xplane.pb` for
TensorBoard's profile plugin (`pip install tensorboard tensorboard-plugin-profile`, then
`tensorboard --logdir <workdir>/profile`, tab PROFILE) and `perfetto_trace.json.gz` for Perfetto
(open https://ui.perfetto.dev and drop the file in; the trace never leaves the browser).
Steps after A..B are untouched; compilation is in the trace only if A is the first step.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import jax

from cenet_jax.errors import ConfigError

log = logging.getLogger('cenet_jax')
PROFILE_DIR = 'profile'


def parse_profile_steps(value: Sequence[Any] | None, total_steps: int) -> tuple[int, int] | None:
    """(A, B) from `config.profile_steps` (() or None: no trace); ConfigError unless
    1 <= A <= B <= total_steps."""
    if value is None or len(value) == 0:
        return None
    try:
        first, last = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f'config.profile_steps must be two step numbers (A, B), e.g. '
                          f'--config.profile_steps="(10, 12)"; got {tuple(value)!r}') from None
    if not 1 <= first <= last <= total_steps:
        raise ConfigError(f'config.profile_steps={(first, last)} must satisfy 1 <= A <= B <= '
                          f'{total_steps} (the number of training steps)')
    return first, last


class StepProfiler:
    """Starts a trace before step A and stops it after step B (waiting for B's results)."""

    def __init__(self, steps: tuple[int, int] | None, workdir: str | Path, *,
                 enabled: bool = True):
        self.steps = steps if enabled else None
        self.directory = Path(workdir) / PROFILE_DIR
        self.active = False

    def before_step(self, step: int) -> None:
        """Call with the number the step about to run will have (1-based)."""
        if self.steps is not None and step == self.steps[0] and not self.active:
            self.directory.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.directory), create_perfetto_trace=True)
            self.active = True
            log.info('profiling steps %d to %d into %s', *self.steps, self.directory)

    def after_step(self, step: int, outputs: Any) -> bool:
        """Call after the step numbered `step` was dispatched, with its outputs; True when the
        trace was stopped (writing it takes time the throughput clock should not count)."""
        if self.active and step >= self.steps[1]:
            jax.block_until_ready(outputs)
            self.stop()
            return True
        return False

    def stop(self) -> None:
        """End the trace (if one runs) and say where it is and how to open it."""
        if not self.active:
            return
        jax.profiler.stop_trace()
        self.active = False
        traces = sorted(self.directory.glob('plugins/profile/*/perfetto_trace.json.gz'))
        log.info('wrote the profile of steps %d to %d: open it with `tensorboard --logdir %s` '
                 '(profile plugin) or load %s into https://ui.perfetto.dev', *self.steps,
                 self.directory, traces[-1] if traces else self.directory)
