"""Each metric against the paper's, with its sign (ours minus paper; positive: ours higher), per
run and for the mean over seeds, instead of one 'paper level' verdict: a run can match the
paper's AUC and accuracy and still trail its sensitivity, and the report shows each.
"""
from __future__ import annotations

from typing import Any, Sequence

import seed_stats

Row = dict[str, Any]


def paper_means(values: dict[str, Any]) -> dict[str, float]:
    """The paper's value of each metric (the mean of a (mean, std) pair)."""
    return {m: float(v[0] if isinstance(v, (tuple, list)) else v) for m, v in values.items() if v is not None}


def _gap(ours: dict[str, Any], paper: float) -> str:
    """'+0.0011 ± 0.0004': the mean over seeds minus the paper, ± the std over seeds."""
    return f'{ours["mean"] - paper:+.4f}' + ('' if ours['std'] is None else f' ± {ours["std"]:.4f}')


def markdown(rows: Sequence[Row], method: str, paper: dict[str, Any], metrics: Sequence[str],
             names: dict[str, str], seed_keys: Sequence[tuple[str, seed_stats.Key]] = ()) -> list[str]:
    """Markdown table of ours minus the paper's `method`, per run and scoring (TTA, threshold),
    then per label run with several seeds: the mean over seeds minus the paper, ± the std over
    seeds, for each (title, key) of `seed_keys`."""
    values = paper_means(paper)
    metrics = [m for m in metrics if m in values]
    if not metrics:
        return []
    lines = [f'Against the paper\'s {method}, metric by metric (ours minus paper; positive: ours higher):', '',
             '| run | seed | scored | ' + ' | '.join(f'{names[m]} (paper {values[m]:.4f})' for m in metrics) + ' |',
             '|' + '---|' * (len(metrics) + 3)]
    for row in rows:
        if not row.get('workdir'):
            continue
        for key, scored in row['evals'].items():
            cells = [f'{scored["scores"][m]["mean"] - values[m]:+.4f}' if m in scored['scores'] else 'n/a'
                     for m in metrics]
            lines.append(f'| {row["label"]} | {row["seed"]} | {key} | ' + ' | '.join(cells) + ' |')
    if seed_stats.has_seed_repeats(rows):
        for title, key in seed_keys:
            for entry in seed_stats.seed_summary(rows, key, metrics):
                if len(entry['seeds']) < 2:
                    continue
                cells = [_gap(entry['metrics'][m], values[m]) if m in entry['metrics'] else 'n/a' for m in metrics]
                seeds = ','.join(map(str, entry['seeds']))
                lines.append(f'| {entry["label"]}: mean ± std over seeds | {seeds} | {title} | '
                             + ' | '.join(cells) + ' |')
    return lines
