"""How well the field of view derived from a fundus image (`cenet_jax.data.fov.derive_fov`, what the
cross-dataset tables use for sets without FOV masks) agrees with the FOV masks DRIVE ships: IoU
and Dice per image and per split, written as a report beside the results tables.

  python experiments/fov_agreement.py --data ../shared/datasets/DRIVE   (-> docs/results/fov_drive.{json,md})

Nothing is trained; the images are read by the project's DRIVE reader at their own size.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cenet_jax.data import build_source, data_config_for  # noqa: E402  (after the path set-up)
from cenet_jax.data.fov import derive_fov  # noqa: E402

import provenance  # noqa: E402  (experiments/ is not a package)
from runner_common import format_value  # noqa: E402


def agreement(derived: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """IoU and Dice of two boolean masks of one image."""
    both, either = np.logical_and(derived, mask).sum(), np.logical_or(derived, mask).sum()
    return {'iou': float(both / either), 'dice': float(2 * both / (derived.sum() + mask.sum()))}


def split_agreement(data: str, split: str) -> list[dict[str, Any]]:
    """Per image of a DRIVE split: its id and the agreement of the derived FOV with the shipped mask."""
    rows = []
    for record in build_source(data_config_for('drive', data, val_fraction=0.0), split):
        rows.append({'id': str(record['id']), **agreement(derive_fov(record['image']), record['fov'] != 0)})
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample std and lowest value of IoU and Dice over the images, and the lowest image."""
    out: dict[str, Any] = {'images': len(rows)}
    for metric in ('iou', 'dice'):
        values = [r[metric] for r in rows]
        out[metric] = {'mean': statistics.fmean(values), 'std': statistics.stdev(values), 'min': min(values),
                       'lowest': min(rows, key=lambda r: r[metric])['id']}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The report: provenance, then one row per split."""
    lines = ['### The derived FOV against DRIVE\'s FOV masks', '',
             f'- command: `{result["command"]}`',
             f'- git commit: {provenance.commit_words(result["git_commit"], result.get("git_diff", ""))}; '
             f'finished {result["finished"]}; {result["seconds"]:.0f} s',
             '- derived: `cenet_jax.data.fov.derive_fov` on each image at its own size; against: the '
             '`mask/` files DRIVE ships', '',
             '| split | images | IoU, mean ± sample std | IoU, lowest (image) | Dice, mean ± sample std | '
             'Dice, lowest |',
             '|---|---|---|---|---|---|']
    for split, s in result['splits'].items():
        lines.append(f'| {split} | {s["images"]} | {format_value(s["iou"]["mean"], s["iou"]["std"])} | '
                     f'{s["iou"]["min"]:.4f} ({s["iou"]["lowest"]}) | '
                     f'{format_value(s["dice"]["mean"], s["dice"]["std"])} | {s["dice"]["min"]:.4f} |')
    return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', required=True, help='the DRIVE folder (training/ and test/)')
    parser.add_argument('--out', default='docs/results', help='where fov_drive.json and .md go')
    args = parser.parse_args(argv)
    start, out = time.perf_counter(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_image = {split: split_agreement(args.data, split) for split in ('test', 'train')}
    result = {'command': shlex.join(['python', 'experiments/fov_agreement.py',
                                     *(sys.argv[1:] if argv is None else argv)]),
              'git_commit': provenance.git_commit(), 'git_diff': provenance.save_diff(provenance.git_diff(), out),
              'finished': provenance.now(), 'hardware': provenance.hardware(),
              'splits': {split: summary(rows) for split, rows in per_image.items()}, 'per_image': per_image}
    result['seconds'] = time.perf_counter() - start
    (out / 'fov_drive.json').write_text(json.dumps(result, indent=1) + '\n')
    text = markdown(result)
    (out / 'fov_drive.md').write_text(text)
    print(text, flush=True)
    return result


if __name__ == '__main__':
    main()
