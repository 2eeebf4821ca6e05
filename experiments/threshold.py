"""The accuracy threshold of a vessel model, chosen on images it may look at (never the test split).

  python experiments/threshold.py --workdir runs/results/W --split train [--tta d8]

Predicts every image of `--split` ('train': the images the model trained on; 'val': a held-out
part of them, for runs trained with data.val_fraction > 0; a run without validation images
stops with an error, the test split is never used in its place) with the run's last checkpoint,
counts the correctly classified pixels inside the FOV for every threshold of THRESHOLDS
(p > t is vessel, as in eval.py), and picks the threshold with the highest per-image mean
accuracy, the number the DRIVE table reports (ties: the one nearest 0.5). Writes
<workdir>/eval/threshold_<split>_<tta>.json (the whole curve, the choice, the accuracy at 0.5)
and prints the choice; experiments/results.py then scores the test split at it with eval.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

THRESHOLDS = np.round(np.arange(0.05, 0.9501, 0.01), 2)   # 0.05, 0.06, ..., 0.95


def correct_counts(prob: np.ndarray, label: np.ndarray, fov: np.ndarray | None,
                   thresholds: np.ndarray = THRESHOLDS) -> tuple[np.ndarray, int]:
    """(correctly classified pixels at each threshold (T,), pixels scored) of one image.

    `prob`: foreground probability (H, W); `label`: (H, W), nonzero = vessel; `fov`: (H, W),
    nonzero = scored (None: every pixel). A pixel is predicted vessel at t when prob > t.
    """
    prob, label = np.asarray(prob, np.float32), np.asarray(label) != 0
    if prob.shape != label.shape:
        raise ValueError(f'probabilities {prob.shape} and label {label.shape} differ in shape')
    inside = np.ones(label.shape, bool) if fov is None else np.asarray(fov) != 0
    thresholds = np.asarray(thresholds, np.float32)
    # below[i] = how many thresholds lie strictly below the pixel's probability; the pixel is
    # predicted vessel at threshold j exactly when j < below[i].
    below = np.searchsorted(thresholds, prob[inside], side='left')
    vessel = label[inside]
    size = len(thresholds) + 1
    pos = np.bincount(below[vessel], minlength=size)
    neg = np.bincount(below[~vessel], minlength=size)
    true_pos = np.cumsum(pos[::-1])[::-1][1:]   # vessels with below > j
    true_neg = np.cumsum(neg)[:-1]              # background with below <= j
    return (true_pos + true_neg).astype(np.int64), int(inside.sum())


@dataclasses.dataclass(frozen=True)
class AccuracyCurve:
    """Per-image correct-pixel counts at every threshold of a split."""
    thresholds: np.ndarray        # (T,)
    correct: np.ndarray           # (images, T)
    pixels: np.ndarray            # (images,)

    @property
    def mean_accuracy(self) -> np.ndarray:
        """Per-image mean accuracy at each threshold (T,)."""
        return (self.correct / self.pixels[:, None]).mean(axis=0)

    @property
    def pooled_accuracy(self) -> np.ndarray:
        """Accuracy over all scored pixels at each threshold (T,)."""
        return self.correct.sum(axis=0) / self.pixels.sum()

    def best(self) -> float:
        """The threshold of the highest per-image mean accuracy (ties: nearest 0.5)."""
        acc = self.mean_accuracy
        ties = np.flatnonzero(acc == acc.max())
        return float(self.thresholds[ties[np.argmin(np.abs(self.thresholds[ties] - 0.5))]])

    def accuracy_at(self, threshold: float) -> float:
        """Per-image mean accuracy at one threshold of the curve."""
        index = int(np.argmin(np.abs(self.thresholds - threshold)))
        if abs(float(self.thresholds[index]) - threshold) > 1e-6:
            raise ValueError(f'threshold {threshold} is not on the curve')
        return float(self.mean_accuracy[index])


def accuracy_curve(images: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                   thresholds: np.ndarray = THRESHOLDS) -> AccuracyCurve:
    """The curve of (probability, label, fov) triples; at least one image."""
    counted = [correct_counts(p, y, f, thresholds) for p, y, f in images]
    if not counted:
        raise ValueError('no images to choose a threshold on')
    return AccuracyCurve(np.asarray(thresholds), np.stack([c for c, _ in counted]),
                         np.asarray([n for _, n in counted], np.int64))


def curve_summary(curve: AccuracyCurve, **about: Any) -> dict[str, Any]:
    """The JSON written beside the run: the choice, the accuracy at it and at 0.5, the curve."""
    chosen = curve.best()
    return {**about, 'num_images': int(len(curve.pixels)), 'chosen_threshold': chosen,
            'mean_acc_at_chosen': curve.accuracy_at(chosen), 'mean_acc_at_0.5': curve.accuracy_at(0.5),
            'thresholds': [float(t) for t in curve.thresholds],
            'mean_acc': [float(a) for a in curve.mean_accuracy],
            'pooled_acc': [float(a) for a in curve.pooled_accuracy]}


def predict_split(workdir: str, split: str, tta: str, checkpoint: str = 'latest'
                  ) -> tuple[str, list[str], list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """(checkpoint used, image ids, (foreground probability, label, fov) per image) of `split`."""
    from cenet_jax import parallel, run_config
    from cenet_jax.data import pipeline
    from cenet_jax.evaluation.predict import BatchPredictor
    from cenet_jax.evaluation.run import load_variables_for_eval, record_probabilities
    from cenet_jax.evaluation.tasks import TASKS
    from cenet_jax.evaluation.tta import tta_plan

    config = run_config.resolve_inference_config(workdir, None, None, {})
    if TASKS[config.eval.task].kind != 'binary':
        raise SystemExit(f'error: an accuracy threshold needs a binary task, this run is {config.eval.task!r}')
    records = pipeline.build_eval_records(config.data, split)   # first: a split without images stops here
    mesh = parallel.make_mesh()
    model, variables, source = load_variables_for_eval(config, mesh, workdir=workdir, checkpoint=checkpoint)
    predictor = BatchPredictor(model, mesh, tta=tta_plan(config, tta), non_square=config.eval.non_square,
                               batch_size=config.eval.batch_size)
    ids, triples = [], []
    for record, probs in record_probabilities(predictor, variables, records, config):
        ids.append(str(record['id']))
        foreground = probs[..., 0] if probs.shape[-1] == 1 else probs[..., 1]
        triples.append((foreground, np.asarray(record['label']) == 1, record.get('fov')))
    return source, ids, triples


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workdir', required=True)
    parser.add_argument('--split', required=True, choices=('train', 'val'),
                        help='images to choose on (never the test split)')
    parser.add_argument('--tta', default='d8', choices=('d8', 'flips', 'none'))
    parser.add_argument('--checkpoint', default='latest')
    parser.add_argument('--out', default=None, help='default: <workdir>/eval/threshold_<split>_<tta>.json')
    args = parser.parse_args(argv)
    from cenet_jax.data.errors import NoValidationSplit
    try:
        source, ids, triples = predict_split(args.workdir, args.split, args.tta, args.checkpoint)
    except NoValidationSplit as error:
        raise NoValidationSplit(f'{error}; to choose a threshold for this run, --split=train chooses on '
                                'the images it trained on') from error
    summary = curve_summary(accuracy_curve(triples), workdir=args.workdir, checkpoint=source,
                            split=args.split, tta=args.tta, images=ids)
    out = Path(args.out or Path(args.workdir) / 'eval' / f'threshold_{args.split}_{args.tta}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + '\n')
    print(f'threshold chosen on {len(ids)} {args.split} images ({args.tta}): {summary["chosen_threshold"]:.2f} '
          f'(per-image mean Acc {summary["mean_acc_at_chosen"]:.4f}; at 0.5: {summary["mean_acc_at_0.5"]:.4f}) '
          f'-> {out}', flush=True)
    return summary


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from cenet_jax import cli
    status = cli.report_errors(main)   # bad input (a split with no images): one `error:` line, status 2
    sys.exit(status if isinstance(status, int) else 0)
