"""One result from several: `merge_results` of results of the same task and settings, their bytes
form, and `gather_result` across hosts, so that a multi-host evaluation scores as one host would.

Several hosts: each evaluates its records; `gather_result` (or `merge_results` on
results brought together otherwise) gives exactly the single-host result.
"""
from __future__ import annotations

import io
import json
from typing import Sequence

import jax
import numpy as np

from cenet_jax.evaluation.scoring import EvalResult, PooledState
from cenet_jax.metrics import ConfusionCounts, ScoreHistogram, ScoreSet


def merge_results(results: Sequence[EvalResult]) -> EvalResult:
    """One result from several (e.g. per-host) results of the same task and settings."""
    if not results:
        raise ValueError('merge_results needs at least one result')
    first = results[0]
    for other in results[1:]:
        if (other.task, other.paper_key, dict(other.settings)) != (first.task, first.paper_key,
                                                                   dict(first.settings)):
            raise ValueError(f'cannot merge results of different tasks or settings: '
                             f'{first.task}/{dict(first.settings)} vs {other.task}/{dict(other.settings)}')
    state, rows = first.state, list(first.rows)
    for other in results[1:]:
        state, rows = state.merge(other.state), rows + list(other.rows)
    return EvalResult(first.task, first.paper_key, tuple(rows), state, first.settings)


def result_to_bytes(result: EvalResult) -> bytes:
    """A self-contained binary form of a result (npz), e.g. to send to another host."""
    arrays: dict[str, np.ndarray] = {
        'meta': np.frombuffer(json.dumps({
            'task': result.task, 'paper_key': result.paper_key, 'settings': dict(result.settings),
            'rows': list(result.rows)}).encode(), np.uint8),
        'counts': result.state.counts.to_array(),
    }
    if result.state.scores is not None:
        arrays['scores'], arrays['score_labels'] = result.state.scores.arrays()
    if result.state.histogram is not None:
        arrays['hist_pos'], arrays['hist_neg'] = result.state.histogram.positives, result.state.histogram.negatives
    if result.state.boundary_sums is not None:
        arrays['boundary_sums'], arrays['boundary_counts'] = (result.state.boundary_sums,
                                                              result.state.boundary_counts)
    if result.state.uncertainty is not None:
        arrays['unc_pos'], arrays['unc_neg'] = (result.state.uncertainty.positives,
                                                result.state.uncertainty.negatives)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def result_from_bytes(data: bytes) -> EvalResult:
    """Inverse of `result_to_bytes`."""
    with np.load(io.BytesIO(data)) as arrays:
        meta = json.loads(arrays['meta'].tobytes().decode())
        state = PooledState(
            counts=ConfusionCounts.from_array(arrays['counts']),
            scores=ScoreSet.from_arrays(arrays['scores'], arrays['score_labels'])
            if 'scores' in arrays else None,
            histogram=ScoreHistogram(arrays['hist_pos'], arrays['hist_neg']) if 'hist_pos' in arrays else None,
            boundary_sums=arrays['boundary_sums'] if 'boundary_sums' in arrays else None,
            boundary_counts=arrays['boundary_counts'] if 'boundary_counts' in arrays else None,
            uncertainty=ScoreHistogram(arrays['unc_pos'], arrays['unc_neg'])
            if 'unc_pos' in arrays else None)
    return EvalResult(meta['task'], meta['paper_key'], tuple(meta['rows']), state, meta['settings'])


def gather_host_arrays(local: np.ndarray) -> list[np.ndarray]:
    """Every host's 1-D array (lengths may differ), in process order; [local] on one host."""
    local = np.asarray(local).reshape(-1)
    if jax.process_count() == 1:
        return [local]
    from jax.experimental import multihost_utils
    lengths = np.asarray(multihost_utils.process_allgather(np.int64(local.size)))
    padded = np.zeros(int(lengths.max()), local.dtype)
    padded[:local.size] = local
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [gathered[i, :n] for i, n in enumerate(lengths.tolist())]


def gather_result(result: EvalResult) -> EvalResult:
    """The merge of every host's result (each host evaluated its own records), on every host."""
    if jax.process_count() == 1:
        return result
    parts = gather_host_arrays(np.frombuffer(result_to_bytes(result), np.uint8))
    return merge_results([result_from_bytes(part.tobytes()) for part in parts])
