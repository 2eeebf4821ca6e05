"""Test-time augmentation: the views of a batch, their inverses, and which views an input shape
allows; apart from prediction so that validation, eval.py and the exported model share them.

TTA follows the paper and the authors' ``test_cenet.py``: the views are
{identity, rot90} x {none, vertical flip, horizontal flip, both} (rot90 = ``np.rot90``,
counter-clockwise in the H, W plane, applied before the flip). rot90 needs square inputs: for
H != W, 'd8' falls back per ``non_square``: 'flips' (the 4 flips only), 'pad' (reflect-pad to a
square, 8 views, crop back) or 'error'. `resolve_tta` returns the mode actually used.
"""
from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

TTAMode = Literal['d8', 'flips', 'none']
NonSquare = Literal['flips', 'pad', 'error']
TTA_MODES = ('d8', 'flips', 'none')
NON_SQUARE_MODES = ('flips', 'pad', 'error')

_FLIPS = ((), (1,), (2,), (1, 2))  # none, vertical (rows), horizontal (columns), both
_VIEWS = {
    'd8': tuple((rotate, flip) for rotate in (False, True) for flip in _FLIPS),
    'flips': tuple((False, flip) for flip in _FLIPS),
    'none': ((False, ()),),
}


TTA_VIEW_COUNTS = {'d8': 8, 'd8_pad': 8, 'flips': 4, 'none': 1}   # by the mode actually run


def _to_view(x: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    x = jnp.rot90(x, 1, axes=(1, 2)) if rotate else x
    return jnp.flip(x, flip) if flip else x


def _from_view(y: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    y = jnp.flip(y, flip) if flip else y
    return jnp.rot90(y, -1, axes=(1, 2)) if rotate else y


def tta_views(x: jax.Array, mode: TTAMode) -> jax.Array:
    """(V, N, H, W, C): the V views of an NHWC batch for 'd8' (8), 'flips' (4) or 'none' (1)."""
    return jnp.stack([_to_view(x, rotate, flip) for rotate, flip in _VIEWS[mode]])


def undo_tta_views(y: jax.Array, mode: TTAMode) -> jax.Array:
    """Inverse of `tta_views` on per-view outputs (V, N, H, W, K): every view back in place."""
    return jnp.stack([_from_view(y[i], rotate, flip) for i, (rotate, flip) in enumerate(_VIEWS[mode])])


def dihedral_views(x: jax.Array) -> jax.Array:
    """(8, N, H, W, C): the paper's 8 dihedral views of a square NHWC batch."""
    return tta_views(x, 'd8')


def undo_dihedral(y: jax.Array) -> jax.Array:
    """(8, N, H, W, K): each of the 8 view outputs mapped back to the original orientation."""
    return undo_tta_views(y, 'd8')


def resolve_tta(tta: str, height: int, width: int, non_square: str = 'flips') -> str:
    """The TTA actually run for H x W inputs: 'd8', 'd8_pad', 'flips' or 'none'."""
    if tta not in TTA_MODES:
        raise ValueError(f'tta must be one of {TTA_MODES}, got {tta!r}')
    if non_square not in NON_SQUARE_MODES:
        raise ValueError(f'non_square must be one of {NON_SQUARE_MODES}, got {non_square!r}')
    if tta != 'd8' or height == width:
        return tta
    if non_square == 'error':
        raise ValueError(f"tta='d8' rotates by 90 degrees and needs square inputs, got {height}x{width}; "
                         "set non_square='flips' or 'pad', or resize to a square first")
    return 'flips' if non_square == 'flips' else 'd8_pad'
