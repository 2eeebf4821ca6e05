"""Statistics over seeds of a results table (experiments/results.py): mean ± std per variant, and
the paired per-seed comparison of a reference variant against each other one.

Runs with the same seed see the same training batches in the same order with the same
augmentation (config.seed drives the shuffle and the augmentation stream of the data pipeline,
whatever the model; tests/test_experiments.py checks it), so the difference of two variants
at one seed removes the data's share of the seed noise; what remains is initialisation and
the model. For each other variant: the per-seed differences (reference - other), their mean,
sample std, a 95 % Student-t interval of the mean, and in how many seeds the reference wins.
Std is the sample std (n - 1) over seeds, the project's one convention (undefined, None, for
a single seed). A score is looked up by its evals key, or by a function of the row giving the
key (a threshold chosen per run has a key of its own in each run).
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Collection, Sequence, Union

from runner_common import minutes_cell

Row = dict[str, Any]
Key = Union[str, Callable[[Row], str]]   # an evals key, or the row's own key (e.g. its chosen threshold)


def groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows by label (a label names a variant at one budget; the seed is its own column), in
    first-seen order; rows without a workdir (computed rows such as a mean) are left out."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        if row.get('workdir'):
            out.setdefault(row['label'], []).append(row)
    return out


def has_seed_repeats(rows: Sequence[Row]) -> bool:
    """Whether some label was run with more than one seed (then the statistics apply)."""
    return any(len({r['seed'] for r in group}) > 1 for group in groups(rows).values())


def _score(row: Row, key: Key, metric: str) -> float | None:
    scored = row['evals'].get(key(row) if callable(key) else key, {}).get('scores', {}).get(metric)
    return None if scored is None else float(scored['mean'])


def _spread(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{'mean', 'std' (sample; None for one value), 'values'} of scores over seeds (non-empty)."""
    return {'mean': statistics.fmean(values), 'std': _spread(values), 'values': list(values)}


def _mean_std(m: dict[str, Any]) -> str:
    return f'{m["mean"]:.4f}' + (' (1 seed)' if m['std'] is None else f' ± {m["std"]:.4f}')


def seed_summary(rows: Sequence[Row], key: Key, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per label: seeds, mean and sample std over seeds of each metric's per-image mean, and the
    mean training minutes."""
    summary = []
    for label, group in groups(rows).items():
        entry: dict[str, Any] = {'label': label, 'seeds': [r['seed'] for r in group],
                                 'steps': group[0]['config'].get('steps'), 'metrics': {}}
        for metric in metrics:
            values = [v for v in (_score(r, key, metric) for r in group) if v is not None]
            if values:
                entry['metrics'][metric] = mean_std(values)
        minutes = [r['train_seconds'] / 60 for r in group if r.get('train_seconds') is not None]
        entry['train_minutes'] = statistics.fmean(minutes) if minutes else None
        entry['train_minutes_estimated'] = any(r.get('train_seconds_estimated') for r in group)
        summary.append(entry)
    return summary


def t_quantile_975(dof: int) -> float:
    """The two-sided 95 % quantile of Student's t with `dof` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf(0.975, dof))


def paired(rows: Sequence[Row], reference: str, key: Key, metric: str,
           lower_is_better: bool = False) -> list[dict[str, Any]]:
    """Reference - other at each seed both ran, per other label (labels sharing no seed with
    the reference are left out); `wins`: the seeds where the reference is ahead (a positive
    difference, or a negative one when `lower_is_better`)."""
    by_label = groups(rows)
    if reference not in by_label:
        return []
    ref = {r['seed']: _score(r, key, metric) for r in by_label[reference]}
    out = []
    for label, group in by_label.items():
        if label == reference:
            continue
        diffs = {r['seed']: ref[r['seed']] - _score(r, key, metric) for r in group
                 if r['seed'] in ref and ref[r['seed']] is not None and _score(r, key, metric) is not None}
        if not diffs:
            continue
        values = list(diffs.values())
        mean, std = statistics.fmean(values), _spread(values)
        half = t_quantile_975(len(values) - 1) * std / math.sqrt(len(values)) if len(values) > 1 else None
        out.append({'other': label, 'metric': metric, 'per_seed': diffs, 'mean': mean, 'std': std,
                    'ci95': None if half is None else (mean - half, mean + half),
                    'wins': sum((v < 0) if lower_is_better else (v > 0) for v in values), 'n': len(values)})
    return out


def markdown(rows: Sequence[Row], key: Key, metrics: Sequence[str], names: dict[str, str],
             reference: str, title: str = '', lower_is_better: Collection[str] = (),
             not_compared: Collection[str] = ()) -> list[str]:
    """The two tables (mean ± std over seeds; the paired differences, when there is more than one
    label) as markdown lines; `title` names the scoring (default: the key). Metrics in
    `lower_is_better` count a negative difference as the reference ahead; `not_compared` (columns
    that describe the data, not the model) stay out of the paired table."""
    summary = seed_summary(rows, key, metrics)
    title = title or str(key)
    lines = [f'#### Mean ± std over seeds ({title})', '',
             '| variant | steps | seeds | ' + ' | '.join(names[m] for m in metrics) + ' | train (min, mean) |',
             '|' + '---|' * (len(metrics) + 4)]
    for entry in summary:
        cells = [entry['label'], str(entry['steps']), ','.join(map(str, entry['seeds']))]
        for metric in metrics:
            m = entry['metrics'].get(metric)
            cells.append('n/a' if m is None else _mean_std(m))
        cells.append(minutes_cell(entry['train_minutes'], entry.get('train_minutes_estimated', False)))
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Std: sample std (n - 1) over seeds of each run\'s per-image mean.']
    if len(summary) < 2:
        return lines
    lines += ['', f'#### Paired per seed: {reference} minus each variant ({title}; same seed = same batches '
              'and augmentation)', '',
              '| metric | other | per seed (seed: difference) | mean ± std | 95 % t-interval | '
              f'{reference} ahead |', '|---|---|---|---|---|---|']
    for metric in (m for m in metrics if m not in not_compared):
        for entry in paired(rows, reference, key, metric, metric in lower_is_better):
            per_seed = ', '.join(f'{s}: {d:+.4f}' for s, d in entry['per_seed'].items())
            ci = 'n/a' if entry['ci95'] is None else f'[{entry["ci95"][0]:+.4f}, {entry["ci95"][1]:+.4f}]'
            spread = '' if entry['std'] is None else f' ± {entry["std"]:.4f}'
            lines.append(f'| {names[metric]} | {entry["other"]} | {per_seed} | {entry["mean"]:+.4f}{spread} | '
                         f'{ci} | {entry["wins"]} of {entry["n"]} |')
    lower = [names[m] for m in metrics if m in lower_is_better and m not in not_compared]
    if lower:
        lines += ['', f'{", ".join(lower)}: lower is better, so a negative difference is {reference} ahead.']
    return lines
