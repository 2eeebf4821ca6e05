"""grain input pipelines: the infinite, checkpointable training iterator and evaluation records.

Training: source -> seeded global shuffle (reshuffled every epoch) -> repeat forever ->
augment (grain `random_map`: the rng comes from the seed and the element's global position) ->
this host's slice [process_index::process_count] -> batches of global_batch // process_count
-> worker processes. Shuffle and augmentation are computed on the global stream before the
host slice, so all hosts together see exactly the global batches a single host would, and the
batches do not depend on the number of workers or threads. The iterator is a grain
`DatasetIterator`: `get_state()` / `set_state()`, or orbax with
`ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator))`, resume it exactly.

Evaluation: every record of the split once, in a fixed order, at original size, plus
'model_image' (the resized, normalised model input; resizing predictions back is inference's job).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import grain
import ml_collections
import numpy as np
from absl import flags

from cenet_jax.data import config as data_config
from cenet_jax.data.records import Record
from cenet_jax.data.sources import build_source
from cenet_jax.data.transforms import TrainTransform, model_image, resize_image, resize_mask


class ModelSizeRecords:
    """The train source with each record's image, label and FOV resized to the model size once
    and kept (`data.cache_decoded`): with patch training the per-epoch resize of the whole
    image cost more CPU than the rest of the transform, on the cores the model trains on
    (docs/performance.md). The random part of the transform is unchanged, so are the batches."""

    def __init__(self, source: Any, image_hw: tuple[int, int]):
        self.source, self.image_hw = source, tuple(image_hw)
        self.info = getattr(source, 'info', None)
        self._cache: dict[int, Record] = {}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Record:
        if index not in self._cache:
            record = self.source[index]
            self._cache[index] = {
                **record, 'image': resize_image(record['image'], self.image_hw),
                'label': resize_mask(record['label'].astype(np.uint8), self.image_hw),
                'fov': resize_mask(record['fov'].astype(np.uint8), self.image_hw)}
        return self._cache[index]


def train_transform(data_cfg: ml_collections.ConfigDict) -> TrainTransform:
    """The training-time record -> example transform of a data config."""
    return TrainTransform(image_hw=data_config.image_hw(data_cfg), normalization=str(data_cfg.normalization),
                          channel_order=str(data_cfg.channel_order), augment=data_config.augment_spec(data_cfg),
                          crop_hw=data_config.crop_hw(data_cfg))


def per_host_batch_size(global_batch_size: int, process_count: int) -> int:
    """global_batch_size // process_count, checked to divide evenly and be at least 1."""
    if global_batch_size <= 0 or global_batch_size % process_count:
        raise ValueError(f'global batch size {global_batch_size} must be a positive multiple of the '
                         f'process count {process_count}')
    return global_batch_size // process_count


def _allow_grain_workers_without_absl_app() -> None:
    """grain's worker processes read absl flags; outside an absl app (tests, notebooks, bench)
    nothing parsed them, so mark them parsed with their defaults. No-op under `app.run`."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def build_train_dataset(data_cfg: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                        process_index: int = 0, process_count: int = 1,
                        source: Any | None = None) -> grain.IterDataset:
    """The training pipeline as a grain IterDataset (see the module docstring); infinite.

    `source`: the already built (and validated) train source, so it is not validated twice.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f'process_index {process_index} must be in [0, {process_count})')
    batch_size = per_host_batch_size(global_batch_size, process_count)
    source = build_source(data_cfg, 'train') if source is None else source
    if bool(data_cfg.get('cache_decoded', False)):
        source = ModelSizeRecords(source, data_config.image_hw(data_cfg))
    dataset = (grain.MapDataset.source(source)
               .seed(seed)
               .shuffle()
               .repeat()
               .random_map(train_transform(data_cfg)))
    dataset = dataset[process_index::process_count].batch(batch_size, drop_remainder=True)
    threads = max(1, int(data_cfg.read_threads))
    prefetch = max(1, int(data_cfg.prefetch))
    iterable = dataset.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                         prefetch_buffer_size=max(threads, prefetch)))
    if int(data_cfg.num_workers) > 0:
        _allow_grain_workers_without_absl_app()
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(data_cfg.num_workers),
                                                                     per_worker_buffer_size=prefetch))
    return iterable


def build_train_iterator(data_cfg: ml_collections.ConfigDict, *, global_batch_size: int, seed: int,
                         process_index: int = 0, process_count: int = 1,
                         source: Any | None = None) -> grain.DatasetIterator:
    """Infinite, checkpointable iterator of this host's training batches: {'image': float32
    (B, H, W, 3), 'label': int32 (B, H, W), 'fov': float32 (B, H, W)}, B = global // process_count."""
    return iter(build_train_dataset(data_cfg, global_batch_size=global_batch_size, seed=seed,
                                    process_index=process_index, process_count=process_count,
                                    source=source))


def model_input(record: Record, data_cfg: ml_collections.ConfigDict) -> np.ndarray:
    """float32 (H_model, W_model, 3) normalised input for predicting on an (original-size) record."""
    return model_image(record['image'], data_config.image_hw(data_cfg), str(data_cfg.normalization),
                       str(data_cfg.channel_order))


class _WithModelImage:
    """grain map: a record plus its 'model_image' (picklable, plain values)."""

    def __init__(self, image_hw: tuple[int, int], normalization: str, channel_order: str):
        self.image_hw, self.normalization, self.channel_order = image_hw, normalization, channel_order

    def __call__(self, record: Record) -> Record:
        return {**record, 'model_image': model_image(record['image'], self.image_hw, self.normalization,
                                                     self.channel_order)}


class EvalRecords(Sequence):
    """Every record of a split once, in a fixed order, each with its 'model_image'; indexable, and
    iterated with a few decoding threads ahead. `info` (`SplitInfo`) says where the records of
    the whole split (all hosts) come from."""

    def __init__(self, dataset: grain.MapDataset, read_threads: int, info: Any = None):
        self._dataset = dataset
        self._read_threads = max(1, read_threads)
        self.info = info

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> Record:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._dataset[index % len(self)]

    def __iter__(self) -> Iterator[Record]:
        options = grain.ReadOptions(num_threads=self._read_threads, prefetch_buffer_size=2 * self._read_threads)
        return iter(self._dataset.to_iter_dataset(options))


def build_eval_records(data_cfg: ml_collections.ConfigDict, split: str, *, process_index: int = 0,
                       process_count: int = 1) -> EvalRecords:
    """Evaluation records of `split` (no augmentation, nothing dropped), optionally this host's
    share [process_index::process_count]."""
    source = build_source(data_cfg, split)
    prepare = _WithModelImage(data_config.image_hw(data_cfg), str(data_cfg.normalization),
                              str(data_cfg.channel_order))
    dataset = grain.MapDataset.source(source).map(prepare)[process_index::process_count]
    return EvalRecords(dataset, int(data_cfg.read_threads), source.info)


def num_train_examples(data_cfg: ml_collections.ConfigDict) -> int:
    """Number of training records (after validation), for converting epochs to steps."""
    return len(build_source(data_cfg, 'train'))
