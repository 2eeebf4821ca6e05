"""Optic disc and cup labels from multi-expert soft maps (Drishti-GS1), and the experts' CDRs.

Drishti-GS1 stores, per image, a disc and a cup soft map whose 8-bit value is the share of the
4 experts who marked the pixel (0, 64, 128, 191, 255). The ground truth at agreement level `a`
is the set of pixels marked by at least `a` experts. The default, 3 of 4 (the majority: soft
value > 0.5), is the level commonly used to score Drishti-GS1 (README.md, "Datasets").
The label is three classes, background (0), neuroretinal rim (1) and cup (2): disc = rim + cup.
A cup pixel outside the disc (the two maps come from separate markings) counts as disc too,
so the cup always lies inside the disc, in the labels as in the predictions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cenet_jax.data.errors import DataError

NUM_EXPERTS = 4
BACKGROUND, RIM, CUP = 0, 1, 2
DISC_CUP_CLASSES = 3


def experts_marking(soft: np.ndarray, where: str, experts: int = NUM_EXPERTS) -> np.ndarray:
    """(H, W) int count of experts who marked each pixel, from an 8-bit soft map."""
    soft = np.asarray(soft)
    if soft.ndim != 2 or soft.dtype != np.uint8:
        raise DataError(f'{where}: a soft map must be an 8-bit one-channel image, got {soft.dtype} {soft.shape}')
    return np.rint(soft.astype(np.float32) * (experts / 255.0)).astype(np.int32)


def check_agreement(level: int, experts: int = NUM_EXPERTS) -> int:
    """`level` if it is a valid number of agreeing experts (1..experts), else a DataError."""
    if not 1 <= int(level) <= experts:
        raise DataError(f'data.expert_agreement must be 1..{experts} (how many of the {experts} experts '
                        f'must mark a pixel), got {level}')
    return int(level)


def check_disc_cup_classes(num_classes: int, where: str) -> None:
    """A DataError unless `num_classes` is the 3 of disc-and-cup labels (background, rim, cup)."""
    if num_classes != DISC_CUP_CLASSES:
        raise DataError(f'{where}: disc-and-cup labels have {DISC_CUP_CLASSES} classes (background, rim, cup), '
                        f'but data.num_classes is {num_classes}; set --config.data.num_classes=3')


def disc_cup_class_map(disc_soft: np.ndarray, cup_soft: np.ndarray, level: int, *, disc_where: str,
                       cup_where: str) -> np.ndarray:
    """(H, W) int32 map 0 background / 1 rim / 2 cup: pixels marked by >= `level` experts."""
    if np.shape(disc_soft) != np.shape(cup_soft):
        raise DataError(f'cup soft map {cup_where} is {np.shape(cup_soft)} but disc soft map {disc_where} is '
                        f'{np.shape(disc_soft)}; expected the same size')
    level = check_agreement(level)
    cup = experts_marking(cup_soft, cup_where) >= level
    disc = (experts_marking(disc_soft, disc_where) >= level) | cup
    classes = disc.astype(np.int32)
    classes[cup] = CUP
    return classes


def read_cdr_values(path: str | Path) -> np.ndarray:
    """The experts' cup-to-disc ratios of one image: whitespace- or comma-separated numbers in (0, 1]."""
    try:
        text = Path(path).read_text(encoding='utf-8', errors='replace')
    except OSError as error:
        raise DataError(f'cannot read the CDR values {path}: {error}') from error
    try:
        values = np.array([float(v) for v in text.replace(',', ' ').split()], np.float32)
    except ValueError as error:
        raise DataError(f'{path}: expected the experts\' cup-to-disc ratios as numbers separated by spaces, '
                        f'got {text.strip()[:80]!r}') from error
    if values.size == 0 or not np.all((values > 0) & (values <= 1)):
        shown = [round(float(v), 4) for v in values]   # as written, without float32's trailing digits
        raise DataError(f'{path}: expected one cup-to-disc ratio in (0, 1] per expert, got {shown}')
    return values
