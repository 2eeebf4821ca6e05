"""Seeded synthetic datasets generated on the fly: retinal vessels, optic disc, OCT layers.

Each record is a pure function of (seed, split, kind, index), so any worker can produce any
record and a resumed run sees the same data. They are the built-in default for the demo and
the tests: they look like the real images (orange-red fundus inside a black field of view, dark
branching vessels, a bright optic disc; grey speckled OCT B-scans with ten smooth boundaries)
and a CE-Net learns them in a few hundred steps at 64-128 px. NumPy plus PIL's C drawing and
blur only; a 128 x 128 record takes a few milliseconds.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cenet_jax.data.errors import DataError
from cenet_jax.data.labels import boundaries_to_class_map
from cenet_jax.data.records import Record, make_record

SPLIT_CODES = {'train': 0, 'val': 1, 'test': 2}
OCT_NUM_CLASSES = 11
# Mean reflectivity of the 11 OCT classes: vitreous, RNFL, GCL, IPL, INL, OPL, ONL, IS, OS/ellipsoid,
# RPE, choroid (scaled by depth below the last boundary).
_OCT_INTENSITY = np.array([0.04, 0.78, 0.42, 0.60, 0.26, 0.56, 0.18, 0.38, 0.88, 0.97, 0.5], np.float32)
# Thickness of the 9 layers between the 10 boundaries, as fractions of the image height.
_OCT_THICKNESS = np.array([0.035, 0.04, 0.035, 0.03, 0.028, 0.07, 0.02, 0.02, 0.028], np.float32)


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a cells x cells Gaussian grid, bilinearly upsampled."""
    grid = rng.standard_normal((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, 'F').resize((width, height), Image.Resampling.BILINEAR))


def _blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """Separable 5-tap Gaussian blur (sigma <= ~1 px) of a float (H, W) array, edges replicated."""
    taps = np.exp(-np.arange(-2, 3, dtype=np.float32) ** 2 / (2 * sigma ** 2))
    taps /= taps.sum()
    out = np.asarray(array, np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(2, 2) if a == axis else (0, 0) for a in (0, 1)], mode='edge')
        length = out.shape[axis]
        out = sum(weight * np.take(padded, np.arange(k, k + length), axis=axis) for k, weight in enumerate(taps))
    return out


@dataclasses.dataclass
class _Fundus:
    """A fundus canvas being painted: float RGB in [0, 255], FOV circle, and its geometry."""
    rgb: np.ndarray
    fov: np.ndarray
    center: tuple[float, float]
    radius: float


def _fundus_background(rng: np.random.Generator, height: int, width: int) -> _Fundus:
    """Orange-red retina with vignetting and blotchy texture inside a circular field of view."""
    size = min(height, width)
    cy = height / 2 + rng.uniform(-0.02, 0.02) * size
    cx = width / 2 + rng.uniform(-0.02, 0.02) * size
    radius = 0.47 * size * rng.uniform(0.95, 1.05)
    yy, xx = np.ogrid[:height, :width]
    dist2 = ((yy - cy) ** 2 + (xx - cx) ** 2).astype(np.float32) / radius ** 2
    fov = dist2 <= 1.0
    colour = np.array([rng.uniform(175, 235), rng.uniform(65, 105), rng.uniform(20, 45)], np.float32)
    shading = 1.0 - 0.38 * dist2 + 0.07 * _smooth_field(rng, height, width, 6)
    rgb = shading[:, :, None] * colour
    return _Fundus(rgb=rgb, fov=fov, center=(cy, cx), radius=radius)


def _ellipse_radius(height: int, width: int, center: tuple[float, float], axes: tuple[float, float],
                    angle: float) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse) of every pixel; angle in radians."""
    yy, xx = np.ogrid[:height, :width]
    dy, dx = (yy - center[0]).astype(np.float32), (xx - center[1]).astype(np.float32)
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return np.sqrt((u / axes[1]) ** 2 + (v / axes[0]) ** 2)


def _add_bright_disc(rgb: np.ndarray, radius_map: np.ndarray, strength: float) -> None:
    """Blend a yellow-white optic disc (soft edge, brighter cup) into `rgb` in place."""
    edge = np.clip((1.0 - radius_map) / 0.18 + 0.5, 0.0, 1.0)
    cup = np.clip((0.45 - radius_map) / 0.15 + 0.5, 0.0, 1.0)
    disc_colour = np.array([255.0, 214.0, 150.0], np.float32)
    cup_colour = np.array([255.0, 240.0, 215.0], np.float32)
    rgb += (strength * edge)[:, :, None] * (disc_colour - rgb)
    rgb += (0.6 * cup)[:, :, None] * (cup_colour - rgb)


def _add_macula(rgb: np.ndarray, center: tuple[float, float], sigma: float) -> None:
    """Darken a Gaussian spot (the macula / fovea) in place."""
    height, width = rgb.shape[:2]
    yy, xx = np.ogrid[:height, :width]
    spot = np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    rgb *= (1.0 - 0.35 * spot)[:, :, None]


def _draw_vessel_tree(rng: np.random.Generator, mask: ImageDraw.ImageDraw, darkness: ImageDraw.ImageDraw,
                      start: tuple[float, float], trunks: list[tuple[float, float]], size: int,
                      fov_center: tuple[float, float], fov_radius: float) -> None:
    """Grow branching, curving vessels from `start` (x, y), one per (angle, curvature) trunk.

    Vessels wander, thin as they go and at each branch, and stop at the FOV edge. Drawn as a
    hard mask (the label) and as darkness (the contrast) images.
    """
    step = max(1.0, 0.022 * size)
    min_width = max(0.5, 0.002 * size)  # vessels end when thinner (1-px lines at small sizes)
    stack = [(start[0], start[1], angle, 0.017 * size * rng.uniform(0.8, 1.2), rng.uniform(0.55, 0.85),
              curvature, 0) for angle, curvature in trunks]
    while stack:
        x, y, angle, width, contrast, curvature, depth = stack.pop()
        for _ in range(int(3.0 * size / step)):
            angle += curvature + rng.normal(0.0, 0.1)
            nx, ny = x + step * math.cos(angle), y + step * math.sin(angle)
            if (nx - fov_center[1]) ** 2 + (ny - fov_center[0]) ** 2 > (1.03 * fov_radius) ** 2:
                break
            line_width = max(1, int(round(width)))
            value = int(255 * contrast)
            mask.line([(x, y), (nx, ny)], fill=255, width=line_width)
            darkness.line([(x, y), (nx, ny)], fill=value, width=line_width)
            if line_width >= 3:  # round joints for thick vessels
                half = (line_width - 1) / 2
                mask.ellipse([nx - half, ny - half, nx + half, ny + half], fill=255)
                darkness.ellipse([nx - half, ny - half, nx + half, ny + half], fill=value)
            x, y = nx, ny
            width *= 0.988
            if width < min_width:
                break
            if depth < 6 and width > 1.6 * min_width and rng.random() < 0.11:
                side = rng.choice([-1.0, 1.0])
                child_width = width * rng.uniform(0.55, 0.75)
                stack.append((x, y, angle + side * rng.uniform(0.4, 1.0), child_width, contrast * 0.9,
                              side * rng.uniform(0.0, 0.03), depth + 1))
                width *= 0.9


def _render_vessels(rng: np.random.Generator, fundus: _Fundus, disc_center: tuple[float, float],
                    trunks: list[tuple[float, float]]) -> np.ndarray:
    """Draw a vessel tree from the disc onto `fundus.rgb` (in place); returns the vessel mask."""
    height, width = fundus.fov.shape
    mask_image = Image.new('L', (width, height), 0)
    dark_image = Image.new('L', (width, height), 0)
    _draw_vessel_tree(rng, ImageDraw.Draw(mask_image), ImageDraw.Draw(dark_image),
                      (disc_center[1], disc_center[0]), trunks, min(height, width), fundus.center,
                      fundus.radius)
    edge_blur = 0.6 * min(height, width) / 448  # soft vessel walls at full size, crisp 1-px vessels when small
    if edge_blur >= 0.25:
        dark_image = dark_image.filter(ImageFilter.GaussianBlur(edge_blur))
    darkness = np.asarray(dark_image, np.float32) / 255.0
    attenuation = np.array([0.42, 0.72, 0.62], np.float32)
    fundus.rgb *= 1.0 - darkness[:, :, None] * attenuation
    return np.asarray(mask_image) > 0


def _finish_fundus(rng: np.random.Generator, fundus: _Fundus) -> np.ndarray:
    """Add sensor noise, black out everything outside the FOV and quantise to uint8."""
    noise = rng.standard_normal(fundus.rgb.shape, dtype=np.float32) * 3.5
    rgb = np.where(fundus.fov[:, :, None], fundus.rgb + noise, 4.0 + noise * 0.5)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _trunks(rng: np.random.Generator, temporal: float) -> list[tuple[float, float]]:
    """(angle, curvature) of the main vessels leaving the disc: an upper and a lower arcade that
    bend toward the macula (`temporal` = +1 right, -1 left) and two or three nasal branches."""
    toward = 0.0 if temporal > 0 else math.pi
    upper, lower = toward - temporal * rng.uniform(1.1, 1.4), toward + temporal * rng.uniform(1.1, 1.4)
    bend = rng.uniform(0.015, 0.03)
    trunks = [(upper, temporal * bend), (lower, -temporal * bend)]
    trunks += [(math.pi - toward + rng.uniform(-0.9, 0.9), rng.uniform(-0.02, 0.02))
               for _ in range(int(rng.integers(2, 4)))]
    return trunks


def synthetic_vessels(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A DRIVE-like fundus image: (image uint8 (H, W, 3), vessel label {0, 1}, FOV bool)."""
    fundus = _fundus_background(rng, height, width)
    side = rng.choice([-1.0, 1.0])  # disc on the right (-> macula on the left) or the reverse
    cy, cx = fundus.center
    disc_center = (cy + rng.uniform(-0.1, 0.1) * fundus.radius, cx + side * rng.uniform(0.5, 0.62) * fundus.radius)
    disc_radius = 0.075 * min(height, width) * rng.uniform(0.85, 1.15)
    _add_macula(fundus.rgb, (cy + rng.uniform(-0.05, 0.05) * fundus.radius, cx - side * 0.08 * fundus.radius),
                0.13 * fundus.radius)
    _add_bright_disc(fundus.rgb, _ellipse_radius(height, width, disc_center, (disc_radius * 1.1, disc_radius), 0.0),
                     rng.uniform(0.55, 0.8))
    temporal = -side
    vessels = _render_vessels(rng, fundus, disc_center, _trunks(rng, temporal))
    label = (vessels & fundus.fov).astype(np.int32)
    return _finish_fundus(rng, fundus), label, fundus.fov


def synthetic_disc(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fundus image with a bright elliptical optic disc (the label), vessels and bright
    exudate-like distractors: (image uint8 (H, W, 3), disc label {0, 1}, FOV bool)."""
    fundus = _fundus_background(rng, height, width)
    cy, cx = fundus.center
    reach = 0.55 * fundus.radius
    disc_center = (cy + rng.uniform(-reach, reach), cx + rng.uniform(-reach, reach))
    size = min(height, width)
    axes = (0.11 * size * rng.uniform(0.75, 1.25), 0.1 * size * rng.uniform(0.75, 1.25))
    radius_map = _ellipse_radius(height, width, disc_center, axes, rng.uniform(0, math.pi))
    for _ in range(int(rng.integers(0, 5))):  # small bright lesions that are not the disc
        spot = (cy + rng.uniform(-0.7, 0.7) * fundus.radius, cx + rng.uniform(-0.7, 0.7) * fundus.radius)
        spot_radius = 0.015 * size * rng.uniform(0.6, 1.4)
        spot_map = _ellipse_radius(height, width, spot, (spot_radius, spot_radius), 0.0)
        fundus.rgb += (0.5 * np.clip(1.0 - spot_map, 0, 1))[:, :, None] * (np.array([240, 220, 120], np.float32)
                                                                          - fundus.rgb)
    _add_bright_disc(fundus.rgb, radius_map, rng.uniform(0.5, 0.85))
    temporal = 1.0 if disc_center[1] < cx else -1.0
    _render_vessels(rng, fundus, disc_center, _trunks(rng, temporal))
    label = ((radius_map <= 1.0) & fundus.fov).astype(np.int32)
    return _finish_fundus(rng, fundus), label, fundus.fov


def _smooth_curve(rng: np.random.Generator, width: int, amplitude: float) -> np.ndarray:
    """(W,) smooth random curve: three sinusoids of 0.3-2.5 cycles across the width."""
    x = np.linspace(0.0, 2 * math.pi, width, dtype=np.float32)
    curve = np.zeros(width, np.float32)
    for _ in range(3):
        curve += rng.uniform(-1, 1) * np.sin(rng.uniform(0.3, 2.5) * x + rng.uniform(0, 2 * math.pi))
    return amplitude * curve / 3.0


def oct_boundaries(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(10, W) float32 rows of ten smooth, ordered retinal boundaries with a foveal pit."""
    x = np.arange(width, dtype=np.float32)
    pit = np.exp(-((x - width * rng.uniform(0.35, 0.65)) ** 2) / (2 * (width * rng.uniform(0.06, 0.1)) ** 2))
    centered = (x - width / 2) / width
    bottom = height * (rng.uniform(0.62, 0.72) + rng.uniform(-0.08, 0.08) * centered
                       + rng.uniform(-0.25, 0.25) * centered ** 2) + _smooth_curve(rng, width, 0.015 * height)
    thickness = _OCT_THICKNESS[:, None] * height * (1.0 + _smooth_curve(rng, width, 0.15)[None, :]
                                                    + 0.1 * rng.standard_normal((len(_OCT_THICKNESS), 1)))
    thickness[:5] *= 1.0 - 0.8 * pit  # inner layers thin out at the fovea
    thickness[5] *= 1.0 + 0.35 * pit  # the outer nuclear layer thickens
    thickness = np.maximum(thickness, 0.012 * height)
    rows = np.empty((len(_OCT_THICKNESS) + 1, width), np.float32)
    rows[-1] = bottom
    for layer in range(len(_OCT_THICKNESS) - 1, -1, -1):
        rows[layer] = rows[layer + 1] - thickness[layer]
    return rows


def synthetic_oct(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An OCT B-scan with speckle: (image uint8 (H, W, 3) grey, 11-class layer map, boundaries (10, W))."""
    boundaries = oct_boundaries(rng, height, width)
    classes = boundaries_to_class_map(boundaries, height)
    mean = _OCT_INTENSITY[classes] * rng.uniform(0.8, 1.1)
    depth_below = np.maximum(0.0, np.arange(height, dtype=np.float32)[:, None] - boundaries[-1][None, :])
    mean = np.where(classes == OCT_NUM_CLASSES - 1, mean * np.exp(-depth_below / (0.09 * height)), mean)
    mean = _blur(mean, 0.6) * (1.0 + 0.1 * _smooth_field(rng, height, width, 4))
    speckle = rng.gamma(4.0, 1.0 / 4.0, size=(height, width)).astype(np.float32)
    signal = _blur(mean * speckle, 0.5) + 0.04 * rng.standard_normal((height, width), dtype=np.float32)
    grey = np.clip(signal * 230.0 + 8.0, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2), classes, boundaries


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], tuple]] = {
    'synthetic_vessels': synthetic_vessels,
    'synthetic_disc': synthetic_disc,
    'synthetic_oct': synthetic_oct,
}
KIND_CODES = {kind: code for code, kind in enumerate(GENERATORS)}


class SyntheticSource:
    """grain RandomAccessDataSource of synthetic records; record i depends only on (seed, split, i)."""

    def __init__(self, kind: str, split: str, num_records: int, image_hw: tuple[int, int], seed: int,
                 num_classes: int):
        if kind not in GENERATORS:
            raise DataError(f'unknown synthetic dataset {kind!r}; choose one of {sorted(GENERATORS)}')
        expected_classes = OCT_NUM_CLASSES if kind == 'synthetic_oct' else 2
        if num_classes != expected_classes:
            raise DataError(f'{kind} has {expected_classes} classes; set --config.data.num_classes={expected_classes}')
        if num_records <= 0:
            raise DataError(f'{kind} {split} split is empty: set --config.data.synthetic.num_{split} > 0')
        height, width = image_hw
        if min(height, width) < 16:
            raise DataError(f'synthetic images must be at least 16 x 16 pixels, got {height} x {width}')
        self.kind, self.split, self.seed = kind, split, seed
        self.image_hw = (int(height), int(width))
        self._length = int(num_records)
        self.info: Any = None   # the SplitInfo build_source attaches (where the records come from)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Record:
        if not 0 <= index < self._length:
            raise IndexError(f'{self!r}: index {index} out of range')
        rng = np.random.default_rng([self.seed, SPLIT_CODES[self.split], KIND_CODES[self.kind], int(index)])
        image, label, extra = GENERATORS[self.kind](rng, *self.image_hw)
        record_id = f'{self.kind}/{self.split}/{int(index):05d}'
        if self.kind == 'synthetic_oct':
            return make_record(image, label, None, record_id, boundaries=extra)
        return make_record(image, label, extra, record_id)

    def __iter__(self):
        return (self[index] for index in range(self._length))

    def __repr__(self) -> str:
        return (f'SyntheticSource(kind={self.kind!r}, split={self.split!r}, num_records={self._length}, '
                f'image_hw={self.image_hw}, seed={self.seed})')
