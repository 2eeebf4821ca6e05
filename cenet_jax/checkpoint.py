"""orbax checkpoints of the train state and the data iterator: the last k, plus the best.

Layout: `<workdir>/checkpoints/latest/<step>/` (kept: the last `keep`) and
`<workdir>/checkpoints/best/<step>/` (kept: one), each holding `state` (the TrainState
pytree), `data` (the grain iterator state, one file per host) and `meta` (JSON: step and
the validation metrics at that step). orbax writes into a temporary folder and renames it
when complete, so an interrupted save never replaces a good checkpoint.

A checkpoint counts as good when it restores and passes `check_restored` (the step matches,
every floating-point leaf is finite). Resuming walks back from the newest to the newest good
one; newer damaged ones are moved, never deleted, into `checkpoints/damaged/` before training
continues, so a later save of the same step cannot overwrite them. Inference restores the
weights alone (params and batch_stats, or their EMA; not the optimizer state).

A full disk: before a save, the free space is checked against the size of the newest
checkpoint on disk; a save that still runs out of space (orbax writes in the background) is
reported when it is waited for. Either way the half-written `<step>.orbax-checkpoint-tmp*`
folder is removed, the older checkpoints stay as they were, and one `DiskFullError` names the
folder, the bytes needed and free (cenet_jax/disk.py); orbax's own log of the failure is
silenced (`_QuietDiskFull`), so the run prints that one error.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from cenet_jax import disk, parallel
from cenet_jax.errors import CheckpointError, DiskFullError

log = logging.getLogger('cenet_jax')

DAMAGED_DIR = 'damaged'
WEIGHT_FIELDS = ('step', 'params', 'batch_stats')
TMP_MARKER = '.orbax-checkpoint-tmp'


class _QuietDiskFull(logging.Filter):
    """Drops orbax's error log records (with their tracebacks) about a full disk: `Checkpoints`
    turns that failure into one DiskFullError."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        error = record.exc_info[1] if record.exc_info else None
        return not (disk.is_disk_full(error) or disk.is_disk_full(Exception(record.getMessage())))


_QUIET = _QuietDiskFull()


def _quiet_closed_event_loop() -> None:
    """After a failed save or restore, TensorStore completes the writes and reads still pending
    by calling back into orbax's asyncio loop, which is closed by then; each callback prints a
    "RuntimeError: Event loop is closed" traceback (as an unraisable exception) that says
    nothing about the failure, which is reported once. Those tracebacks alone are dropped."""
    previous = sys.unraisablehook
    if getattr(previous, 'cenet_jax_quiet', False):
        return

    def hook(unraisable):
        if unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == 'Event loop is closed':
            return
        previous(unraisable)

    hook.cenet_jax_quiet = True
    sys.unraisablehook = hook


def _manager(directory: Path, keep: int, async_save: bool, read_only: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                           enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def _abstract(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) to restore a pytree into the same layout."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def weights_template(step: Any, params: Any, batch_stats: Any, *, ema: bool = False
                     ) -> dict[str, Any]:
    """The restore target of inference: step, params and batch_stats (no optimizer state), as
    shape/dtype/sharding structs; with `ema`, the EMA copy of params and batch_stats instead."""
    weights = {'params': params, 'batch_stats': batch_stats}
    return _abstract({'step': step, **({'ema': weights} if ema else weights)})


def _all_finite(tree: Any) -> bool:
    for leaf in jax.tree.leaves(tree):
        dtype = getattr(leaf, 'dtype', None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):   # skips PRNG keys
            continue
        local = leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf
        if not np.isfinite(np.asarray(local)).all():
            return False
    return True


def check_restored(tree: Any, meta: dict[str, Any], step: int) -> None:
    """Raise CheckpointError unless the restored step equals `step` and every float is finite."""
    restored_step = tree['step'] if isinstance(tree, dict) else tree.step
    if int(np.asarray(jax.device_get(restored_step))) != step or int(meta.get('step', step)) != step:
        raise CheckpointError(f'holds step {int(restored_step)} (meta: {meta.get("step")}), '
                              f'expected {step}')
    if not _all_finite(tree):
        raise CheckpointError('holds NaN or Inf values')


def _tree_bytes(tree: Any) -> int:
    """Bytes of the arrays of a pytree (global shapes), as orbax writes them before compression."""
    return sum(int(np.prod(getattr(leaf, 'shape', ()))) * np.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree) if hasattr(leaf, 'dtype')
               and not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key))


def _steps_text(steps: Iterable[int]) -> str:
    steps = sorted(steps)
    return ('step ' if len(steps) == 1 else 'steps ') + ', '.join(map(str, steps)) if steps else 'none'


def _reason(err: BaseException) -> str:
    """First line of an orbax / TensorStore error, short enough for a log line."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    text = text.split(' See full TensorStore details')[0]
    return f'{type(err).__name__}: {text[:300]}'


class Checkpoints:
    """The latest-k and best checkpoint managers of one workdir (`read_only`: no folders are
    created; for inference, which never saves)."""

    def __init__(self, workdir: str | Path, *, keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        self.root = Path(workdir) / 'checkpoints'
        logging.getLogger('absl').addFilter(_QUIET)   # orbax logs through absl
        _quiet_closed_event_loop()
        # orbax's manager creation is a collective; hosts that start at different times meet first
        parallel.wait_for_every_process(f'opening {self.root}')
        self.latest = _manager(self.root / 'latest', keep, async_save, read_only)
        self.best = _manager(self.root / 'best', 1, async_save, read_only)
        self._async_save = async_save
        self._in_flight: dict[str, tuple[int, int]] = {}   # kind -> (step, array bytes)
        self._failed = False

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.latest.latest_step()

    def save(self, step: int, state: Any, data_iterator: Any | None, meta: dict[str, Any],
             *, best: bool = False) -> None:
        """Save (asynchronously) into `latest`, or into `best` when `best` is set; a step that
        is already on disk is kept, never overwritten (a replay after a resume). Raises
        DiskFullError (nothing half-written left) when the disk cannot hold it."""
        manager = self.best if best else self.latest
        self._wait_for(manager)   # an earlier save that failed is reported first, naming its step
        if step in manager.all_steps():
            log.warning('%s/%d already exists; keeping it (not overwritten)', manager.directory,
                        step)
            return
        expected = self._expected_bytes()
        if expected is not None and disk.free_bytes(manager.directory) < expected:
            raise self._disk_full(manager, step, expected, ' (the size of the newest checkpoint)')
        items: dict[str, Any] = dict(state=ocp.args.StandardSave(state),
                                     meta=ocp.args.JsonSave(meta))
        if data_iterator is not None:
            items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
        self._in_flight[self._kind(manager)] = (step, _tree_bytes(state))
        try:
            manager.save(step, args=ocp.args.Composite(**items), force=True)
        except Exception as err:
            self._raise_if_disk_full(manager, err)
            raise
        if not self._async_save:
            self._in_flight.pop(self._kind(manager), None)

    def check(self) -> None:
        """Raise DiskFullError now if a background save has already failed for lack of space
        (cheap; the loop calls it between steps)."""
        for manager in (self.latest, self.best):
            try:
                manager.check_for_errors()
            except Exception as err:
                self._raise_if_disk_full(manager, err)
                raise

    @staticmethod
    def _kind(manager: ocp.CheckpointManager) -> str:
        return Path(manager.directory).name

    def _complete_steps(self, manager: ocp.CheckpointManager) -> list[int]:
        """Steps whose folders are on disk, complete (not in flight, not half-written)."""
        directory = Path(manager.directory)
        busy = self._in_flight.get(self._kind(manager), (None,))[0]
        return sorted(int(p.name) for p in directory.iterdir()
                      if p.is_dir() and p.name.isdigit() and int(p.name) != busy) \
            if directory.is_dir() else []

    def _expected_bytes(self) -> int | None:
        """Size on disk of the newest complete checkpoint (latest, else best): what the next one
        needs; None before the first."""
        for manager in (self.latest, self.best):
            steps = self._complete_steps(manager)
            if steps:
                return disk.folder_bytes(Path(manager.directory) / str(steps[-1]))
        return None

    def _wait_for(self, manager: ocp.CheckpointManager) -> None:
        """Wait for the manager's save in flight; a full disk becomes a DiskFullError."""
        try:
            manager.wait_until_finished()
        except Exception as err:
            self._raise_if_disk_full(manager, err)
            raise
        self._in_flight.pop(self._kind(manager), None)

    def _raise_if_disk_full(self, manager: ocp.CheckpointManager, err: BaseException) -> None:
        """If `err` is a full disk: remove the half-written step folders, raise DiskFullError."""
        if not disk.is_disk_full(err):
            return
        step, array_bytes = self._in_flight.get(self._kind(manager), (None, None))
        expected = self._expected_bytes()
        raise self._disk_full(manager, step, expected if expected is not None else array_bytes,
                              ' (the size of the newest checkpoint)' if expected is not None
                              else ' (its arrays before compression)') from err

    def _remove_partial(self) -> list[str]:
        """Let the saves in flight end (they fail too on a full disk; quietly) and remove every
        half-written `<step>.orbax-checkpoint-tmp*` folder; returns their paths."""
        removed = []
        for manager in (self.latest, self.best):
            try:
                manager.wait_until_finished()
            except Exception:   # the failure being reported, or the same one in the other manager
                pass
            if jax.process_index() == 0:
                for partial in sorted(Path(manager.directory).glob(f'*{TMP_MARKER}*')):
                    shutil.rmtree(partial, ignore_errors=True)
                    removed.append(f'{self._kind(manager)}/{partial.name}')
        self._in_flight.clear()
        return removed

    def _disk_full(self, manager: ocp.CheckpointManager, step: int | None, needed: int | None,
                   needed_note: str) -> DiskFullError:
        """The error of a save that does not fit, after removing what it half-wrote; it says
        which checkpoints are intact and where a rerun resumes."""
        self._failed = True
        removed = self._remove_partial()
        latest, best = self._complete_steps(self.latest), self._complete_steps(self.best)
        directory = Path(manager.directory)
        what = (f'saving the best checkpoint (step {step})' if manager is self.best
                else f'saving checkpoint step {step}')
        intact = (f'The checkpoints already saved are intact (latest: {_steps_text(latest)}; '
                  f'best: {_steps_text(best)})')
        if removed:
            verb = 'was' if len(removed) == 1 else 'were'
            intact += f' and the half-written {", ".join(removed)} {verb} removed'
        intact += '.'
        advice = ('Free some space and rerun the same command: it resumes from '
                  + (f'step {latest[-1]}.' if latest else 'the start (no checkpoint yet).'))
        return disk.disk_full_error(what, directory, needed, intact,
                                    needed_note=needed_note, advice=advice)

    def _restore_checked(self, manager: ocp.CheckpointManager, step: int, state: Any,
                         data_iterator: Any | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore one step (`state` is an orbax restore args item) and check it."""
        items: dict[str, Any] = dict(state=state, meta=ocp.args.JsonRestore())
        if data_iterator is not None:
            items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = manager.restore(step, args=ocp.args.Composite(**items))
        meta = dict(restored['meta'] or {})
        check_restored(restored['state'], meta, step)
        return restored['state'], meta

    def restore(self, state_template: Any, data_iterator: Any | None = None,
                step: int | None = None, *, best: bool = False) -> tuple[Any, dict[str, Any]]:
        """Restore one step (default: the newest) into the template's shapes and shardings, and,
        if given, the data iterator in place. Returns (state, meta)."""
        manager = self.best if best else self.latest
        step = manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(
                f'no {"best" if best else "latest"} checkpoint under {manager.directory}')
        return self._restore_checked(manager, step,
                                     ocp.args.StandardRestore(_abstract(state_template)),
                                     data_iterator)

    def _walk(self, candidates: Iterable[tuple[ocp.CheckpointManager, int]],
              restore_one: Callable[[ocp.CheckpointManager, int], Any]
              ) -> tuple[tuple[ocp.CheckpointManager, int, Any] | None, list[tuple[Path, str]]]:
        """The first candidate that restores and checks out, and the damaged ones before it."""
        damaged: list[tuple[Path, str]] = []
        for manager, step in candidates:
            path = Path(manager.directory) / str(step)
            try:
                return (manager, step, restore_one(manager, step)), damaged
            except Exception as err:  # orbax / TensorStore raise many unrelated types
                damaged.append((path, _reason(err)))
                log.warning('checkpoint %s cannot be used (%s); trying an older one', path,
                            _reason(err))
        return None, damaged

    def _none_restores(self, damaged: list[tuple[Path, str]], hint: str) -> CheckpointError:
        listed = '\n'.join(f'  {p}: {why}' for p, why in damaged)
        return CheckpointError(f'no checkpoint tried under {self.root} can be restored (all are '
                               f'kept on disk):\n{listed}\n{hint}')

    def restore_newest(self, state_template: Any, data_iterator: Any | None = None
                       ) -> tuple[Any, dict[str, Any]] | None:
        """Resume: the newest good `latest` checkpoint (state, meta), newer damaged ones moved
        into checkpoints/damaged/ with a warning; None when there is no checkpoint at all."""
        steps = sorted(self.latest.all_steps(), reverse=True)
        if not steps:
            return None
        args = ocp.args.StandardRestore(_abstract(state_template))
        found, damaged = self._walk(
            ((self.latest, s) for s in steps),
            lambda manager, step: self._restore_checked(manager, step, args, data_iterator))
        if found is None:
            raise self._none_restores(damaged, 'Start over in a new --workdir (or move the '
                                               'damaged folders away).')
        for path, _ in damaged:
            self.move_aside(self.latest, int(path.name))
        return found[2]

    def restore_weights(self, template: dict[str, Any], checkpoint: str = 'best'
                        ) -> tuple[dict[str, Any], str]:
        """({'params', 'batch_stats'}, 'where from') of 'best' (falling back to the newest good
        latest one), 'latest' or a step number; damaged ones are skipped with a warning. A
        template from `weights_template(..., ema=True)` restores the EMA weights."""
        best = [(self.best, s) for s in sorted(self.best.all_steps(), reverse=True)]
        latest = [(self.latest, s) for s in sorted(self.latest.all_steps(), reverse=True)]
        if not best and not latest:
            raise CheckpointError(f'no checkpoints in {self.root}: train first (python train.py '
                                  f'--config ... --workdir {self.root.parent}) or pass --weights FILE')
        if checkpoint == 'best':
            if not best:
                log.warning('no best checkpoint in %s (no validation ran); using the latest',
                            self.root)
            candidates = best + latest
        elif checkpoint == 'latest':
            candidates = latest
        else:
            step = int(checkpoint)
            candidates = [(m, s) for m, s in latest + best if s == step][:1]
            if not candidates:
                raise CheckpointError(
                    f'no checkpoint at step {step} in {self.root}; available: latest '
                    f'{sorted(s for _, s in latest)}, best {sorted(s for _, s in best)}')
        args = ocp.args.PyTreeRestore(
            item=template, restore_args=ocp.checkpoint_utils.construct_restore_args(template),
            partial_restore=True)
        found, damaged = self._walk(
            candidates, lambda manager, step: self._restore_checked(manager, step, args)[0])
        if found is None:
            raise self._none_restores(damaged, f'Choose another --checkpoint (latest: '
                                      f'{sorted(s for _, s in latest)}, best: '
                                      f'{sorted(s for _, s in best)}) or pass --weights FILE.')
        manager, step, tree = found
        if damaged:
            log.warning('using %s/%d instead of the damaged %s (kept on disk)', manager.directory,
                        step, ', '.join(str(p) for p, _ in damaged))
        weights = tree.get('ema', tree)
        return ({'params': weights['params'], 'batch_stats': weights['batch_stats']},
                f'{manager.directory} step {step}' + (' (EMA weights)' if 'ema' in tree else ''))

    def best_meta(self, template: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Metadata of the best checkpoint so far (to resume best-tracking), or None. With a
        weights `template` its weights are checked too; a damaged best is moved aside."""
        step = self.best.latest_step()
        if step is None:
            return None
        if template is None:
            args = ocp.args.Composite(meta=ocp.args.JsonRestore())
            return dict(self.best.restore(step, args=args)['meta'])
        state = ocp.args.PyTreeRestore(
            item=template, restore_args=ocp.checkpoint_utils.construct_restore_args(template),
            partial_restore=True)
        found, damaged = self._walk(
            [(self.best, step)], lambda m, s: self._restore_checked(m, s, state)[1])
        if found is None:
            self.move_aside(self.best, step)
            return None
        return found[2]

    def move_aside(self, manager: ocp.CheckpointManager, step: int) -> Path:
        """Move a damaged step folder into checkpoints/damaged/ (kept, never deleted)."""
        source = Path(manager.directory) / str(step)
        kind = Path(manager.directory).name
        target = self.root / DAMAGED_DIR / f'{kind}-{step}-{time.strftime("%Y%m%d-%H%M%S")}'
        if jax.process_index() == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            log.warning('moved the damaged checkpoint %s to %s (kept for inspection; delete it '
                        'when no longer needed)', source, target)
        parallel.wait_for_every_process(f'moved {source} aside')   # every host sees it gone
        manager.reload()
        return target

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk (DiskFullError if one did not fit)."""
        self._wait_for(self.latest)
        self._wait_for(self.best)

    def close(self) -> None:
        """Finish pending saves and release the managers. After a save failed (already raised),
        the managers are released without raising that failure again."""
        try:
            if not self._failed:
                self.wait()
        finally:
            for manager in (self.latest, self.best):
                try:
                    manager.close()
                except Exception:
                    if not self._failed:
                        raise
            if self._failed:
                self._remove_partial()
