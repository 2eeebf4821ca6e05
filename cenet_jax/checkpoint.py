"""orbax checkpoints of the train state and the data iterator: the last k, plus the best.

Layout: `<workdir>/checkpoints/latest/<step>/` (kept: the last `keep`) and
`<workdir>/checkpoints/best/<step>/` (kept: one), each holding `state` (the TrainState
pytree), `data` (the grain iterator state, one file per host) and `meta` (JSON: step and
the validation metrics at that step). orbax writes into a temporary folder and renames it
when complete, so an interrupted save never replaces a good checkpoint.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _manager(directory: Path, keep: int, async_save: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def _abstract(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) to restore a pytree into the same layout."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
    """The latest-k and best checkpoint managers of one workdir."""

    def __init__(self, workdir: str | Path, *, keep: int = 3, async_save: bool = True):
        root = Path(workdir) / 'checkpoints'
        self.latest = _manager(root / 'latest', keep, async_save)
        self.best = _manager(root / 'best', 1, async_save)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.latest.latest_step()

    def save(self, step: int, state: Any, data_iterator: Any | None, meta: dict[str, Any],
             *, best: bool = False) -> None:
        """Save (asynchronously) into `latest`, or into `best` when `best` is set."""
        items: dict[str, Any] = dict(state=ocp.args.StandardSave(state),
                                     meta=ocp.args.JsonSave(meta))
        if data_iterator is not None:
            items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
        manager = self.best if best else self.latest
        manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, state_template: Any, data_iterator: Any | None = None,
                step: int | None = None, *, best: bool = False) -> tuple[Any, dict[str, Any]]:
        """Restore the state (into the template's shapes and shardings) and, if given, the data
        iterator in place. Returns (state, meta)."""
        manager = self.best if best else self.latest
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(
                f'no {"best" if best else "latest"} checkpoint under {manager.directory}')
        items: dict[str, Any] = dict(state=ocp.args.StandardRestore(_abstract(state_template)),
                                     meta=ocp.args.JsonRestore())
        if data_iterator is not None:
            items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = manager.restore(step, args=ocp.args.Composite(**items))
        return restored['state'], dict(restored['meta'] or {})

    def best_meta(self) -> dict[str, Any] | None:
        """Metadata of the best checkpoint so far (to resume best-tracking), or None."""
        step = self.best.latest_step()
        if step is None:
            return None
        restored = self.best.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored['meta'])

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the managers."""
        self.wait()
        self.latest.close()
        self.best.close()
