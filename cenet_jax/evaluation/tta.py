"""Test-time augmentation: the views of a batch, their inverses, and which views run: those the
input shape allows and training applied; apart from prediction so that validation, eval.py and
the exported model share them.

TTA follows the paper and the authors' ``test_cenet.py``: the views are
{identity, rot90} x {none, vertical flip, horizontal flip, both} (rot90 = ``np.rot90``,
counter-clockwise in the H, W plane, applied before the flip). ``eval.tta`` names a set of them:
'd8' (all 8), 'flips' (the 4 without rot90) or 'none' (identity).

A view is a transform of the input; the model only ever saw the transforms its training
augmentation applied (`data.transforms.dihedral`: ``data.augment.hflip`` / ``vflip`` /
``transpose``, transpose on square training inputs only, nothing with ``augment.enabled``
off). `resolve_tta` drops every view training never applied (an OCT run, trained with
horizontal flips only, runs identity + hflip for 'flips' or 'd8': upside-down B-scans are not
images it knows) and says why; ``eval.tta_unseen='keep'`` runs them anyway, with a warning.
rot90 needs square inputs: when rot90 views remain for H != W, ``non_square`` says what happens:
'flips' (drop them), 'pad' (reflect-pad to a square, crop back) or 'error'. The result is a
`TTAPlan`: the views that run, by name, and the ones dropped with the reason.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any, Literal, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cenet_jax.data.config import crop_hw, image_hw
from cenet_jax.errors import ConfigError

log = logging.getLogger('cenet_jax')

TTAMode = Literal['d8', 'flips', 'none']
NonSquare = Literal['flips', 'pad', 'error']
TTA_MODES = ('d8', 'flips', 'none')
NON_SQUARE_MODES = ('flips', 'pad', 'error')
UNSEEN_MODES = ('drop', 'keep')   # eval.tta_unseen: views training never applied

# Every view by name: (rot90 first, flipped axes of an NHWC batch: 1 = rows, 2 = columns),
# in the reference code's order.
VIEWS: dict[str, tuple[bool, tuple[int, ...]]] = {
    'identity': (False, ()), 'vflip': (False, (1,)), 'hflip': (False, (2,)),
    'vflip+hflip': (False, (1, 2)), 'rot90': (True, ()), 'rot90+vflip': (True, (1,)),
    'rot90+hflip': (True, (2,)), 'rot90+vflip+hflip': (True, (1, 2)),
}
MODE_VIEWS: dict[str, tuple[str, ...]] = {
    'd8': tuple(VIEWS), 'flips': tuple(name for name, (rot, _) in VIEWS.items() if not rot),
    'none': ('identity',),
}
AUGMENT_FLIPS = ('hflip', 'vflip', 'transpose')   # data.augment fields of the dihedral flips


def _to_view(x: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    x = jnp.rot90(x, 1, axes=(1, 2)) if rotate else x
    return jnp.flip(x, flip) if flip else x


def _from_view(y: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    y = jnp.flip(y, flip) if flip else y
    return jnp.rot90(y, -1, axes=(1, 2)) if rotate else y


def _view_names(views: str | Sequence[str]) -> tuple[str, ...]:
    """A mode name ('d8' | 'flips' | 'none') or view names -> view names, checked."""
    names = MODE_VIEWS[views] if isinstance(views, str) and views in MODE_VIEWS else (
        (views,) if isinstance(views, str) else tuple(views))
    unknown = [name for name in names if name not in VIEWS]
    if unknown or not names:
        raise ValueError(f'TTA views must be a mode {TTA_MODES} or names from {tuple(VIEWS)}, '
                         f'got {views!r}')
    return names


def tta_views(x: jax.Array, views: str | Sequence[str]) -> jax.Array:
    """(V, N, H, W, C): the views of an NHWC batch, for a mode ('d8': 8, 'flips': 4, 'none': 1)
    or a sequence of view names."""
    return jnp.stack([_to_view(x, *VIEWS[name]) for name in _view_names(views)])


def undo_tta_views(y: jax.Array, views: str | Sequence[str]) -> jax.Array:
    """Inverse of `tta_views` on per-view outputs (V, N, H, W, K): every view back in place."""
    return jnp.stack([_from_view(y[i], *VIEWS[name]) for i, name in enumerate(_view_names(views))])


def dihedral_views(x: jax.Array) -> jax.Array:
    """(8, N, H, W, C): the paper's 8 dihedral views of a square NHWC batch."""
    return tta_views(x, 'd8')


def undo_dihedral(y: jax.Array) -> jax.Array:
    """(8, N, H, W, K): each of the 8 view outputs mapped back to the original orientation."""
    return undo_tta_views(y, 'd8')


def _probe_view(name: str) -> bytes:
    """A view applied to a 3 x 3 array of distinct values: its fingerprint as a D8 element."""
    rotate, flip = VIEWS[name]
    probe = np.arange(9).reshape(1, 3, 3)
    probe = np.rot90(probe, 1, axes=(1, 2)) if rotate else probe
    return np.flip(probe, flip).tobytes() if flip else probe.tobytes()


_BY_FINGERPRINT = {_probe_view(name): name for name in VIEWS}


def applied_views(flips: Sequence[str]) -> frozenset[str]:
    """The views (D8 elements) that training's dihedral flips can produce with `flips` on (names
    from AUGMENT_FLIPS), in `data.transforms.dihedral`'s order: hflip, then vflip, then
    transpose, each with probability 1/2."""
    out = set()
    for hflip, vflip, swap in itertools.product(*[(False, True) if f in flips else (False,)
                                                  for f in AUGMENT_FLIPS]):
        probe = np.arange(9).reshape(3, 3)
        probe = probe[:, ::-1] if hflip else probe
        probe = probe[::-1] if vflip else probe
        probe = probe.swapaxes(0, 1) if swap else probe
        out.add(_BY_FINGERPRINT[np.ascontiguousarray(probe)[None].tobytes()])
    return frozenset(out)


def unseen_views(*, enabled: bool, hflip: bool, vflip: bool, transpose: bool,
                 train_hw: tuple[int, int]) -> dict[str, str]:
    """{view: why the model never saw it} for every view training's augmentation (data.augment,
    on `train_hw` training inputs) never applied; the reason names the settings to blame."""
    if not enabled:
        return {name: 'training applied no augmentation (data.augment.enabled=False)'
                for name in VIEWS if name != 'identity'}
    height, width = train_hw
    why_not = {
        'hflip': 'training never flipped horizontally (data.augment.hflip=False)',
        'vflip': 'training never flipped vertically (data.augment.vflip=False)',
        'transpose': 'training never transposed (data.augment.transpose=False)' if not transpose
        else (f'training never transposed (its {height}x{width} inputs are not square; '
              'data.augment.transpose applies to square inputs only)'),
    }
    on = [f for f, value in zip(AUGMENT_FLIPS, (hflip, vflip, transpose and height == width))
          if value]
    off = [f for f in AUGMENT_FLIPS if f not in on]
    seen = applied_views(on)
    reasons: dict[str, str] = {}
    for name in VIEWS:
        if name in seen:
            continue
        # the fewest settings that, switched on, would have shown this view
        missing = next(extra for size in range(1, len(off) + 1)
                       for extra in itertools.combinations(off, size)
                       if name in applied_views(on + list(extra)))
        reasons[name] = ' and '.join(why_not[f] for f in missing)
    return reasons


@dataclasses.dataclass(frozen=True)
class TTAPlan:
    """The TTA that runs: `requested` (an eval.tta name), the `views` by name, reflect-padding to
    a square (`pad`), the views dropped because training never applied them ((view, why)
    pairs), those kept although unseen (eval.tta_unseen='keep'), and a note when non-square
    inputs removed the rot90 views."""
    requested: str
    views: tuple[str, ...]
    pad: bool = False
    dropped: tuple[tuple[str, str], ...] = ()
    unseen_kept: tuple[tuple[str, str], ...] = ()
    shape_note: str = ''

    @property
    def label(self) -> str:
        """What ran, in one word where it has one ('d8', 'd8_pad', 'flips', 'none'), else the
        views' names joined by ',' (e.g. 'identity,hflip')."""
        for mode, names in MODE_VIEWS.items():
            if self.views == names:
                return mode + ('_pad' if self.pad else '')
        return ','.join(self.views) + (' (padded to square)' if self.pad else '')

    def dropped_line(self) -> str:
        """'TTA: dropped vflip, vflip+hflip: training never flipped vertically (...)' ('' when
        nothing was dropped); views with the same reason together."""
        return _grouped('TTA: dropped', self.dropped)

    def lines(self) -> list[str]:
        """The log's lines: what runs, what was dropped and why, unseen views kept."""
        out = [f'TTA {self.requested} runs {len(self.views)} view(s): {", ".join(self.views)}'
               + (' (reflect-padded to a square)' if self.pad else '')
               + (f'; {self.shape_note}' if self.shape_note else '')]
        out += [line for line in (self.dropped_line(), _grouped(
            'TTA: running although training never applied them (eval.tta_unseen=keep):',
            self.unseen_kept)) if line]
        return out

    def settings(self) -> dict[str, Any]:
        """JSON-ready description for metrics.json and model.json."""
        return {'tta': self.requested, 'tta_run': self.label, 'tta_views': len(self.views),
                'tta_view_names': list(self.views), 'tta_padded': self.pad,
                'tta_dropped': {name: why for name, why in self.dropped},
                'tta_unseen_kept': {name: why for name, why in self.unseen_kept},
                'tta_shape_note': self.shape_note}


def _grouped(head: str, pairs: Sequence[tuple[str, str]]) -> str:
    groups: dict[str, list[str]] = {}
    for name, why in pairs:
        groups.setdefault(why, []).append(name)
    return '; '.join(f'{head} {", ".join(names)}: {why}' for why, names in groups.items())


def resolve_tta(tta: str, height: int, width: int, non_square: str = 'flips', *,
                unseen: Mapping[str, str] | None = None, unseen_mode: str = 'drop') -> TTAPlan:
    """The TTA that runs for H x W inputs: the views of mode `tta` less those in `unseen`
    ({view: why training never applied it}, `unseen_views`; None = training unknown, every view
    counts as seen) unless `unseen_mode` is 'keep', then less the rot90 views on non-square
    inputs per `non_square` ('flips' drops them, 'pad' pads, 'error' raises ValueError)."""
    if tta not in TTA_MODES:
        raise ValueError(f'tta must be one of {TTA_MODES}, got {tta!r}')
    if non_square not in NON_SQUARE_MODES:
        raise ValueError(f'non_square must be one of {NON_SQUARE_MODES}, got {non_square!r}')
    if unseen_mode not in UNSEEN_MODES:
        raise ValueError(f'eval.tta_unseen must be one of {UNSEEN_MODES}, got {unseen_mode!r}')
    unseen = dict(unseen or {})
    requested = MODE_VIEWS[tta]
    unseen_pairs = tuple((name, unseen[name]) for name in requested if name in unseen)
    keep = unseen_mode == 'keep'
    views = requested if keep else tuple(name for name in requested if name not in unseen)
    rotated = [name for name in views if VIEWS[name][0]]
    pad, note = False, ''
    if rotated and height != width:
        if non_square == 'error':
            raise ValueError(f'tta={tta!r} runs rot90 views, which need square inputs, got '
                             f"{height}x{width}; set non_square='flips' or 'pad', or resize to a "
                             'square first')
        if non_square == 'pad':
            pad = True
        else:
            views = tuple(name for name in views if not VIEWS[name][0])
            note = (f'rot90 views need square inputs, these are {height}x{width} '
                    "(eval.non_square='flips')")
    return TTAPlan(requested=tta, views=views, pad=pad,
                   dropped=() if keep else unseen_pairs,
                   unseen_kept=tuple(p for p in unseen_pairs if p[0] in views) if keep else (),
                   shape_note=note)


def tta_plan(config: Any, tta: str | None = None) -> TTAPlan:
    """The TTA plan of a run's config (its `config.json` at evaluation): `tta` (default
    eval.tta) at data.image_size, eval.non_square, and the views training's augmentation
    (data.augment, on data.crop_size patches when set) never applied dropped unless
    eval.tta_unseen='keep'; the plan's lines are logged (a warning for kept unseen views)."""
    data, aug = config.data, config.data.augment
    height, width = image_hw(data)
    unseen = unseen_views(enabled=bool(aug.enabled), hflip=bool(aug.hflip), vflip=bool(aug.vflip),
                          transpose=bool(aug.transpose), train_hw=crop_hw(data) or (height, width))
    mode = str(config.eval.get('tta_unseen', 'drop'))
    tta = str(tta or config.eval.tta)
    try:
        plan = resolve_tta(tta, height, width, str(config.eval.non_square), unseen=unseen,
                           unseen_mode=mode)
    except ValueError as err:
        raise ConfigError(f'config.eval: {err}') from err
    for line in plan.lines():
        (log.warning if line.startswith('TTA: running although') else log.info)('%s', line)
    return plan
