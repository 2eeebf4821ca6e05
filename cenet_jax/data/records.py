"""The record contract and turning one `Entry` (file paths) into a record.

A record is one image at its original size (or its optic-disc crop):
  {'image': uint8 (H, W, 3), 'label': int32 (H, W) in [0, num_classes), 'fov': bool (H, W),
   'fov_source': 'given' (a mask file, OCT boundary columns, the synthetic generator) |
   'derived' (from the image, data.fov='auto') | 'none' (all true: the whole image),
   'id': str, and for OCT 'boundaries': float32 (num_classes - 1, W); for disc-and-cup sets
   'cdr_experts': float32 (experts,) the experts' cup-to-disc ratios; when the disc crop is on,
   'crop_box': int32 (top, left, bottom, right) of the crop in the full image and 'full_label':
   uint8 (H_full, W_full), the whole image's label, against which predictions are scored}.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cenet_jax.data.decode import read_array, read_image, read_label
from cenet_jax.data.disc_crop import DISC_LOCATORS, disc_crop_box
from cenet_jax.data.errors import DataError
from cenet_jax.data.fov import FOV_MODES, derive_fov
from cenet_jax.data.labels import LabelSpec, boundaries_to_class_map, to_class_map, valid_boundary_columns
from cenet_jax.data.layouts import Entry
from cenet_jax.data.soft_labels import (check_agreement, check_disc_cup_classes, disc_cup_class_map,
                                        read_cdr_values)

Record = dict[str, Any]
FOV_THRESHOLD = 128  # FOV mask pixels >= this (in 8-bit luminance) are inside the field of view


@dataclasses.dataclass(frozen=True)
class DecodeSpec:
    """Everything needed to decode an entry; plain values so sources pickle into grain workers."""
    label: LabelSpec = LabelSpec()
    high_bit_depth: str = 'range'
    disc_crop_size: int = 0
    disc_crop_sigma: float = 50.0
    mat_key: str = ''
    fov: str = 'file'   # FOV_MODES: mask files | mask files, else derived from the image | no masks
    expert_agreement: int = 3   # soft-map labels: a pixel is marked when this many experts marked it
    disc_locator: str = 'brightest'   # DISC_LOCATORS: how the disc crop finds the disc

    def __post_init__(self):
        if self.fov not in FOV_MODES:
            raise DataError(f'data.fov must be one of {FOV_MODES}, got {self.fov!r}')
        if self.disc_locator not in DISC_LOCATORS:
            raise DataError(f'data.disc_locator must be one of {DISC_LOCATORS}, got {self.disc_locator!r}')
        check_agreement(self.expert_agreement)


def make_record(image: np.ndarray, label: np.ndarray, fov: np.ndarray | None, record_id: str,
                boundaries: np.ndarray | None = None, fov_source: str = '') -> Record:
    """Assemble a record, checking the contract's dtypes and shapes (fov None = all True;
    `fov_source` '' = 'given' when a FOV is passed, else 'none')."""
    height, width = image.shape[:2]
    if image.dtype != np.uint8 or image.shape != (height, width, 3):
        raise DataError(f'{record_id}: image must be uint8 (H, W, 3), got {image.dtype} {image.shape}')
    if label.shape != (height, width):
        raise DataError(f'{record_id}: label shape {label.shape} differs from image {(height, width)}')
    record = {'image': image, 'label': label.astype(np.int32, copy=False),
              'fov': np.ones((height, width), bool) if fov is None else fov.astype(bool, copy=False),
              'fov_source': fov_source or ('none' if fov is None else 'given'), 'id': record_id}
    if boundaries is not None:
        record['boundaries'] = boundaries.astype(np.float32, copy=False)
    return record


def _check_same_size(what: str, path: str, shape: tuple[int, ...], image_path: str,
                     image_hw: tuple[int, int]) -> None:
    if tuple(shape[:2]) != image_hw:
        raise DataError(f'{what} {path} is {shape[0]}x{shape[1]} (HxW) but its image {image_path} is '
                        f'{image_hw[0]}x{image_hw[1]}; expected the same size')


def read_boundaries(path: str, num_boundaries: int, width: int, mat_key: str = '') -> np.ndarray:
    """(num_boundaries, W) float32 boundary rows from .npy/.mat (a (W, num_boundaries) array is
    transposed); any other shape is an error naming the file."""
    array = np.asarray(read_array(path, mat_key), np.float32)
    if array.shape == (width, num_boundaries) and width != num_boundaries:
        array = array.T
    if array.shape != (num_boundaries, width):
        raise DataError(f'boundaries {path}: shape {array.shape}, expected ({num_boundaries}, {width}) = '
                        f'(num_classes - 1 boundaries, image width)')
    return array


def decode_entry(entry: Entry, spec: DecodeSpec) -> Record:
    """Read an entry's files and apply label conventions, FOV (`spec.fov`) and the optional
    optic-disc crop."""
    image = read_image(entry.image, entry.frame, spec.high_bit_depth)
    hw = image.shape[:2]
    boundaries = None
    fov = None
    if entry.boundaries:
        boundaries = read_boundaries(entry.boundaries, spec.label.num_classes - 1, hw[1], spec.mat_key)
        label = boundaries_to_class_map(boundaries, hw[0])
        fov = np.broadcast_to(valid_boundary_columns(boundaries)[None, :], hw)
    elif entry.cup:
        label = _disc_cup_label(entry, spec, hw)
    else:
        raw = read_label(entry.label, entry.frame, palette_as_index=not spec.label.binary, mat_key=spec.mat_key)
        _check_same_size('label', entry.label, raw.shape, entry.image, hw)
        where = entry.label if entry.frame < 0 else f'{entry.label} page {entry.frame}'
        label = to_class_map(raw, spec.label, where)
    fov_source = ''
    if entry.fov and spec.fov != 'none':
        fov_raw = read_label(entry.fov)
        _check_same_size('FOV mask', entry.fov, fov_raw.shape, entry.image, hw)
        fov = fov_raw >= FOV_THRESHOLD if fov_raw.dtype == np.uint8 else fov_raw > 0
    elif fov is None and spec.fov == 'auto':
        fov, fov_source = derive_fov(image), 'derived'
    record = make_record(image, label, fov, entry.id, boundaries, fov_source)
    if entry.cdr:
        record['cdr_experts'] = read_cdr_values(entry.cdr)
    if spec.disc_crop_size > 0:
        record = crop_record(record, disc_crop_box(image, spec.disc_crop_size, spec.disc_crop_sigma, spec.disc_locator))
    return record


def _disc_cup_label(entry: Entry, spec: DecodeSpec, image_hw: tuple[int, int]) -> np.ndarray:
    """Background / rim / cup map of an entry with disc (`label`) and cup (`cup`) soft maps."""
    check_disc_cup_classes(spec.label.num_classes, entry.label)
    disc, cup = read_label(entry.label), read_label(entry.cup)
    _check_same_size('disc soft map', entry.label, disc.shape, entry.image, image_hw)
    _check_same_size('cup soft map', entry.cup, cup.shape, entry.image, image_hw)
    return disc_cup_class_map(disc, cup, spec.expert_agreement, disc_where=entry.label, cup_where=entry.cup)


def crop_record(record: Record, box: tuple[int, int, int, int]) -> Record:
    """The record cut to `box` = (top, left, bottom, right); boundaries are shifted to match, and
    the whole image's label is kept as 'full_label' (predictions are scored on the whole image)."""
    top, left, bottom, right = box
    cropped = {key: np.ascontiguousarray(record[key][top:bottom, left:right]) for key in ('image', 'label', 'fov')}
    cropped['id'], cropped['fov_source'] = record['id'], record['fov_source']
    cropped['full_label'] = record['label'].astype(np.uint8)
    if 'cdr_experts' in record:
        cropped['cdr_experts'] = record['cdr_experts']
    if 'boundaries' in record:
        cropped['boundaries'] = record['boundaries'][:, left:right] - top
    cropped['crop_box'] = np.array(box, np.int32)
    return cropped
