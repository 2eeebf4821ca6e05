"""Input-pipeline throughput: training images/s at 448 x 448 with all augmentation on, for 0, 1, 2
grain worker processes, and the per-image cost of decode / augment / normalise (to size workers
for a GPU host). Uses DRIVE from ../shared/datasets when present, else synthetic vessels.

    python bench/data.py [--dataset auto|drive|synthetic] [--workers 0,1,2] [--runs 5]

Re-executes itself under the team's timing allocator settings (GLIBC_TUNABLES below) and
reports medians over --runs runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

TUNABLES = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1'
REPO = Path(__file__).resolve().parents[1]
DRIVE = REPO / '..' / 'shared' / 'datasets' / 'DRIVE'

if os.environ.get('GLIBC_TUNABLES') != TUNABLES:  # malloc tunables only apply at process start
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, 'GLIBC_TUNABLES': TUNABLES})

sys.path.insert(0, str(REPO))
import numpy as np  # noqa: E402

from cenet_jax.data import build_source, build_train_iterator, data_config_for  # noqa: E402
from cenet_jax.data.pipeline import train_transform  # noqa: E402
from cenet_jax.data.transforms import augment, normalize, resize_image, resize_mask  # noqa: E402


def bench_config(dataset: str, image_size: int):
    """Data config with every augmentation applied to every sample (the worst case)."""
    if dataset == 'auto':
        dataset = 'drive' if DRIVE.is_dir() else 'synthetic'
    if dataset == 'drive':
        cfg = data_config_for('drive', str(DRIVE.resolve()), val_fraction=0.0)
    else:
        cfg = data_config_for('synthetic_vessels')
        cfg.synthetic.size = (584, 565)  # DRIVE-sized records, generated on the fly
    cfg.image_size = (image_size, image_size)
    cfg.augment.affine_prob = 1.0
    cfg.augment.hsv_prob = 1.0
    return dataset, cfg


def stage_costs(cfg, repeats: int) -> dict[str, float]:
    """Median ms per image of each stage, single-threaded, over all training records."""
    source = build_source(cfg, 'train')
    transform = train_transform(cfg)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {'decode': [], 'resize': [], 'augment': [], 'normalize': []}
    for _ in range(repeats):
        for index in range(len(source)):
            t0 = time.perf_counter()
            record = source[index]
            t1 = time.perf_counter()
            image = resize_image(record['image'], transform.image_hw)
            label = resize_mask(record['label'].astype(np.uint8), transform.image_hw)
            fov = resize_mask(record['fov'].astype(np.uint8), transform.image_hw)
            t2 = time.perf_counter()
            image, label, fov = augment(image, label, fov, rng, transform.augment)
            t3 = time.perf_counter()
            normalize(image, transform.normalization, transform.channel_order)
            t4 = time.perf_counter()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[key].append(value * 1e3)
    return {key: statistics.median(values) for key, values in times.items()}


def pipeline_rate(cfg, workers: int, batch: int, batches: int, runs: int) -> tuple[float, list[float]]:
    """Median training images/s of the full grain pipeline (after a warm-up) over `runs` runs."""
    cfg.num_workers = workers
    rates = []
    for run in range(runs):
        iterator = build_train_iterator(cfg, global_batch_size=batch, seed=run)
        for _ in range(2):  # worker start-up and first fills are not throughput
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batch * batches / (time.perf_counter() - start))
        iterator.close()
    return statistics.median(rates), rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', default='auto', choices=('auto', 'drive', 'synthetic'))
    parser.add_argument('--image_size', type=int, default=448)
    parser.add_argument('--workers', default='0,1,2')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--batches', type=int, default=12, help='timed batches per run')
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--read_threads', type=int, default=2)
    args = parser.parse_args()

    dataset, cfg = bench_config(args.dataset, args.image_size)
    cfg.read_threads = args.read_threads
    why = 'DRIVE not found' if not DRIVE.is_dir() else 'chosen with --dataset synthetic'
    print(f'dataset: {dataset}' + (f' ({DRIVE.resolve()}, 584x565 records)' if dataset == 'drive'
                                   else f' (synthetic vessels generated at 584x565; {why})'))
    print(f'model input {args.image_size}x{args.image_size}, augmentation: flips + scale/shift warp + HSV on '
          f'every sample; {os.cpu_count()} CPU cores; GLIBC_TUNABLES={os.environ["GLIBC_TUNABLES"]}')

    costs = stage_costs(cfg, repeats=args.runs)
    total = sum(costs.values())
    print(f'\nper-image cost, one thread (median of {args.runs} passes over the train split):')
    print('| stage | ms / image |\n|---|---|')
    for stage, ms in costs.items():
        print(f'| {stage} | {ms:.2f} |')
    print(f'| total | {total:.2f} | (= {1e3 / total:.0f} images/s per core)')

    print(f'\ntraining pipeline (batch {args.batch}, {args.batches} timed batches after 2 warm-up, '
          f'read_threads={args.read_threads}, median of {args.runs} runs):')
    print('| workers | images/s | runs |\n|---|---|---|')
    for workers in (int(w) for w in args.workers.split(',')):
        median, rates = pipeline_rate(cfg, workers, args.batch, args.batches, args.runs)
        print(f'| {workers} | {median:.1f} | {", ".join(f"{r:.0f}" for r in rates)} |', flush=True)


if __name__ == '__main__':
    main()
