"""Batched, sharded prediction of whole records: model-size input, TTA in one jitted call,
probabilities resized back to each record's original size. Shared by training-time
validation and eval.py."""
from __future__ import annotations

import functools
from typing import Any, Iterable

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from cenet_jax.inference import predict_probs, resize_probs
from cenet_jax.parallel import batch_sharding, replicated


def _predict(variables: Any, images: jax.Array, *, model: nn.Module, tta: str,
             non_square: str) -> jax.Array:
    def apply_fn(x: jax.Array, variables: Any) -> jax.Array:
        return model.apply(variables, x, train=False)
    return predict_probs(apply_fn, images, variables, tta=tta, non_square=non_square)


class BatchPredictor:
    """Predicts probabilities (N, H, W, K) for batches of model-size images, the batch sharded
    over the mesh's data axis (padded to a multiple of the device count); compiled once per
    input shape."""

    def __init__(self, model: nn.Module, mesh: Mesh, *, tta: str = 'none',
                 non_square: str = 'flips', batch_size: int = 8):
        self.mesh = mesh
        n_dev = mesh.devices.size
        self.batch_size = max(n_dev, -(-batch_size // n_dev) * n_dev)
        fn = functools.partial(_predict, model=model, tta=tta, non_square=non_square)
        self._fn = jax.jit(fn, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                           out_shardings=replicated(mesh))

    def __call__(self, variables: Any, images: np.ndarray) -> np.ndarray:
        """Probabilities for a host batch `images` (n, H, W, C) of any n (same on every host)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = np.asarray(images[start:start + self.batch_size], np.float32)
            n = len(chunk)
            if n < self.batch_size:  # pad with copies so every call has the same shape
                pad = np.repeat(chunk[-1:], self.batch_size - n, axis=0)
                chunk = np.concatenate([chunk, pad])
            out.append(np.asarray(self._fn(variables, self._shard(chunk)))[:n])
        return np.concatenate(out) if out else np.zeros((0,), np.float32)

    def _shard(self, chunk: np.ndarray) -> jax.Array:
        # Every host holds the whole chunk; each contributes the rows of its own devices.
        per_host = len(chunk) // jax.process_count()
        rows = chunk[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        return jax.make_array_from_process_local_data(batch_sharding(self.mesh), rows)


def predict_records(predictor: BatchPredictor, variables: Any,
                    records: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], np.ndarray]]:
    """(record, probabilities at the record's original size) in record order; records carry
    their normalised model-size input as 'model_image' (see `data.pipeline.build_eval_records`)."""
    for group in iterate_in_groups(records, predictor.batch_size):
        probs = predictor(variables, np.stack([r['model_image'] for r in group]))
        for record, p in zip(group, probs):
            h, w = record['label'].shape[:2] if 'label' in record else record['image'].shape[:2]
            yield record, np.asarray(resize_probs(p, (h, w)))


def iterate_in_groups(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Lists of up to `size` consecutive items (keeps memory flat for large prediction sets)."""
    group: list[Any] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def as_record_stream(pairs: Iterable[tuple[dict[str, Any], np.ndarray]]
                     ) -> tuple[Iterable[dict[str, Any]], Any]:
    """Split (record, probabilities) pairs into a record stream and the `predict_probs_fn` that
    `evaluation.evaluate_records` asks for each record in turn: every record is decoded and
    predicted once, and only the records in flight are held in memory."""
    pending: dict[str, np.ndarray] = {}

    def records() -> Iterable[dict[str, Any]]:
        for record, probs in pairs:
            pending[record['id']] = probs
            yield record

    return records(), lambda record: pending.pop(record['id'])
