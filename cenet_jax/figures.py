"""PNG figures drawn with PIL only: prediction panels and training curves.

`save_prediction_figure` writes ``image | ground truth | prediction | errors [| probability]``
side by side, ``PANEL_GAP`` pixels apart, under a caption strip whose text scales with the
panel (`caption_height`): a (W x H) input gives a PNG of ``n * W + (n - 1) * PANEL_GAP`` by
``H + caption_height(W)``.
Binary maps are white on black; the error panel shows true positives white, false
positives red, false negatives blue, true negatives black, and pixels outside the field
of view dark grey. Given a field of view (FOV) that is not the whole image, the image panel
shows its outline in yellow (its caption says so, and whether the FOV was derived from the
image). Class maps with more than two classes use `PALETTE` (class 0 black) and the error
panel shows correct pixels in their class colour at half brightness and wrong ones red.

`save_curve_png` draws curves (axes, ticks, legend); `save_training_curves` the training loss
and validation metrics of a run's metrics.jsonl records (training loop, eval.py's report).

Given a TTA uncertainty map (the per-pixel std of the views' probabilities), the prediction
figure adds an ``uncertainty`` panel: black (all views agree) through red and yellow to white
(std 0.5, the most two-valued views can disagree), on the `UNCERTAINTY_SCALE`.

Every PNG is written whole or not at all (`cenet_jax.disk.write_atomic`: a full disk is one
DiskFullError naming the folder and the bytes needed and free).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cenet_jax import disk

PANEL_GAP = 4
MIN_CAPTION_FONT, MAX_CAPTION_FONT = 11, 64   # pixels
CAPTION_FONT_FRACTION = 0.045                 # caption text height as a fraction of the panel width
TP_COLOUR, FP_COLOUR, FN_COLOUR, TN_COLOUR = (255, 255, 255), (230, 30, 30), (40, 90, 255), (0, 0, 0)
OUTSIDE_FOV_COLOUR = (48, 48, 48)
FOV_OUTLINE_COLOUR = (255, 220, 0)
WRONG_COLOUR = (230, 30, 30)
PALETTE = np.array([
    (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (255, 255, 255),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (197, 176, 213), (196, 156, 148),
], np.uint8)
CURVE_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))

Series = Union[Sequence[float], tuple[Sequence[float], Sequence[float]]]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from uint8 or [0, 1] float images with 1 or 3 channels."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f'image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}')
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image


def _colour_classes(classmap: np.ndarray, binary: bool) -> np.ndarray:
    if binary:
        return np.where(classmap[..., None] > 0, np.uint8(255), np.uint8(0)).repeat(3, axis=-1)
    return PALETTE[np.asarray(classmap) % len(PALETTE)]


def _error_panel(label: np.ndarray, pred: np.ndarray, fov: np.ndarray | None, binary: bool) -> np.ndarray:
    if binary:
        truth, guess = label > 0, pred > 0
        panel = np.zeros(label.shape + (3,), np.uint8)
        for where, colour in (((truth & guess), TP_COLOUR), ((~truth & guess), FP_COLOUR),
                              ((truth & ~guess), FN_COLOUR), ((~truth & ~guess), TN_COLOUR)):
            panel[where] = colour
    else:
        panel = (_colour_classes(label, binary=False) // 2).astype(np.uint8)
        panel[label != pred] = WRONG_COLOUR
    if fov is not None:
        panel[~np.asarray(fov, bool)] = OUTSIDE_FOV_COLOUR
    return panel


def _probability_panel(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, np.float32)
    if probs.ndim == 3:
        probs = probs[..., 0] if probs.shape[-1] == 1 else (
            probs[..., 1] if probs.shape[-1] == 2 else probs.max(axis=-1))
    return _as_rgb(np.clip(probs, 0.0, 1.0))


UNCERTAINTY_SCALE = 0.5   # the std shown white: two-valued views (0 and 1 in equal numbers)


def uncertainty_colours(std: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) "hot" colours of a per-pixel std: black 0, red, yellow, white at
    `UNCERTAINTY_SCALE` and above."""
    level = np.clip(np.nan_to_num(np.asarray(std, np.float32)) / UNCERTAINTY_SCALE, 0.0, 1.0)
    rgb = np.stack([np.clip(3 * level, 0, 1), np.clip(3 * level - 1, 0, 1),
                    np.clip(3 * level - 2, 0, 1)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


MIN_PANEL_SIZE = 192  # pixels; smaller images are enlarged (nearest) so they can be seen


def fov_outline(fov: np.ndarray, width: int = 1) -> np.ndarray:
    """bool (H, W): the pixels of the FOV within `width` pixels of its edge (4-neighbour
    erosion; the image border does not count as an edge)."""
    fov = np.asarray(fov, bool)
    inner = fov
    for _ in range(max(1, width)):
        padded = np.pad(inner, 1, constant_values=True)
        inner = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                 & padded[1:-1, :-2] & padded[1:-1, 2:])
    return fov & ~inner


def _image_panel(rgb: np.ndarray, fov: np.ndarray | None, fov_derived: bool) -> tuple[str, np.ndarray]:
    """(caption, pixels) of the image panel: the FOV outline drawn in when there is one."""
    if fov is None or np.asarray(fov, bool).all():
        return 'image', rgb
    panel = rgb.copy()
    panel[fov_outline(fov, width=max(1, min(rgb.shape[:2]) // 250))] = FOV_OUTLINE_COLOUR
    return ('image, FOV derived' if fov_derived else 'image, FOV'), panel


def panel_zoom(shape: tuple[int, int]) -> int:
    """Integer factor that enlarges images smaller than MIN_PANEL_SIZE for viewing (else 1)."""
    return max(1, -(-MIN_PANEL_SIZE // max(min(shape), 1)))


def caption_font_size(panel_width: int) -> int:
    """Caption text size in pixels for a panel this wide: readable at 100 px and at 1000 px."""
    return int(min(MAX_CAPTION_FONT, max(MIN_CAPTION_FONT, round(CAPTION_FONT_FRACTION * panel_width))))


def caption_font(panel_width: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's built-in font at the caption size (a fixed bitmap font where FreeType is missing)."""
    return ImageFont.load_default(size=caption_font_size(panel_width))


def caption_height(panel_width: int) -> int:
    """Height in pixels of the caption strip above panels this wide (text plus a margin)."""
    size = caption_font_size(panel_width)
    bottom = caption_font(panel_width).getbbox('Agy')[3]
    return int(bottom + max(3, size // 4))


def save_prediction_figure(path: str | Path, image: np.ndarray, label: np.ndarray, pred: np.ndarray,
                           probs: np.ndarray | None = None, fov: np.ndarray | None = None,
                           fov_derived: bool = False,
                           uncertainty: np.ndarray | None = None) -> None:
    """PNG panel: image (with the FOV outline) | ground truth | prediction | errors [| foreground
    or max probability] [| TTA uncertainty (H, W) std]; `fov_derived` captions the FOV as
    derived from the image."""
    rgb = _as_rgb(image)
    label, pred = np.asarray(label), np.asarray(pred)
    shape = rgb.shape[:2]
    for name, array in (('label', label), ('pred', pred), ('fov', fov),
                        ('uncertainty', uncertainty)):
        if array is not None and np.shape(array) != shape:
            raise ValueError(f'{name} has shape {np.shape(array)}, expected the image size {shape}')
    if probs is not None and np.shape(probs)[:2] != shape:
        raise ValueError(f'probs has shape {np.shape(probs)}, expected {shape} (+ channels)')
    binary = max(int(label.max(initial=0)), int(pred.max(initial=0))) <= 1
    panels = [_image_panel(rgb, fov, fov_derived), ('ground truth', _colour_classes(label, binary)),
              ('prediction', _colour_classes(pred, binary)),
              ('errors', _error_panel(label, pred, fov, binary))]
    if probs is not None:
        panels.append(('probability', _probability_panel(probs)))
    if uncertainty is not None:
        panels.append(('uncertainty (TTA std)', uncertainty_colours(uncertainty)))
    save_panels(path, panels, shape)


def save_panels(path: str | Path, panels: Sequence[tuple[str, np.ndarray]], shape: tuple[int, int]) -> None:
    """PNG of captioned (H, W, 3) panels side by side, small ones enlarged for viewing."""
    zoom = panel_zoom(shape)
    if zoom > 1:
        panels = [(c, np.repeat(np.repeat(p, zoom, axis=0), zoom, axis=1)) for c, p in panels]
    height, width = shape[0] * zoom, shape[1] * zoom
    top = caption_height(width)
    figure = Image.new('RGB', (len(panels) * width + (len(panels) - 1) * PANEL_GAP,
                               height + top), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    font = caption_font(width)
    margin = max(2, caption_font_size(width) // 6)
    for index, (caption, panel) in enumerate(panels):
        left = index * (width + PANEL_GAP)
        figure.paste(Image.fromarray(panel), (left, top))
        draw.text((left + margin, 1), caption, fill=(0, 0, 0), font=font)
    save_png(figure, path)


# Disc-and-cup outlines: the experts' in green (disc) and cyan (cup), the model's in red and yellow.
TRUE_DISC_COLOUR, TRUE_CUP_COLOUR = (40, 220, 40), (0, 230, 230)
PRED_DISC_COLOUR, PRED_CUP_COLOUR = (240, 40, 40), (255, 230, 0)


def save_disc_cup_figure(path: str | Path, image: np.ndarray, label: np.ndarray, pred: np.ndarray, *,
                         caption: str = '', uncertainty: np.ndarray | None = None) -> None:
    """PNG of the image crop with the true (green disc, cyan cup) and predicted (red disc, yellow
    cup) outlines of a background / rim / cup map [| TTA uncertainty]; `caption` heads the first panel."""
    rgb = _as_rgb(image)
    label, pred = np.asarray(label), np.asarray(pred)
    shape = rgb.shape[:2]
    for name, array in (('label', label), ('pred', pred), ('uncertainty', uncertainty)):
        if array is not None and np.shape(array) != shape:
            raise ValueError(f'{name} has shape {np.shape(array)}, expected the image size {shape}')
    panel = rgb.copy()
    width = max(1, min(shape) // 200)
    for mask, colour in ((label > 0, TRUE_DISC_COLOUR), (label == 2, TRUE_CUP_COLOUR),
                         (pred > 0, PRED_DISC_COLOUR), (pred == 2, PRED_CUP_COLOUR)):
        panel[fov_outline(mask, width)] = colour
    panels = [(caption or 'disc and cup: true green / cyan, predicted red / yellow', panel)]
    if uncertainty is not None:
        panels.append(('uncertainty (TTA std)', uncertainty_colours(uncertainty)))
    save_panels(path, panels, shape)


def save_png(figure: Image.Image, path: str | Path) -> None:
    """Encode `figure` as PNG and write it whole (`disk.write_atomic`)."""
    buffer = io.BytesIO()
    figure.save(buffer, format='PNG')
    disk.write_atomic(path, buffer.getvalue())


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 5 x 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f'tick range must be finite, got [{low}, {high}]')
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + 1e-9 * step:
        ticks.append(0.0 if abs(value) < 1e-12 * step else value)
        value += step
    return ticks


def _series_points(steps: Sequence[float], series: Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(series, tuple) and len(series) == 2 and np.ndim(series[0]) == 1:
        xs, ys = series
    else:
        xs, ys = steps, series
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f'a curve needs one value per step, got {xs.size} steps and {ys.size} values')
    return xs, ys


def save_curve_png(path: str | Path, steps: Sequence[float], values_by_name: Mapping[str, Series], *,
                   size: tuple[int, int] = (640, 400), title: str | None = None,
                   log_y: bool = False, x_label: str = 'step') -> None:
    """Line plot of named curves (values aligned with ``steps``, or their own (steps, values))."""
    curves = {name: _series_points(steps, series) for name, series in values_by_name.items()}
    if not curves:
        raise ValueError('save_curve_png needs at least one curve')
    keep = {name: (np.isfinite(xs) & np.isfinite(ys) & ((ys > 0) if log_y else True))
            for name, (xs, ys) in curves.items()}
    all_x = np.concatenate([xs[keep[n]] for n, (xs, _) in curves.items()])
    all_y = np.concatenate([ys[keep[n]] for n, (_, ys) in curves.items()])
    if all_x.size == 0:
        raise ValueError('no finite points to plot' + (' (log_y needs positive values)' if log_y else ''))
    transform = np.log10 if log_y else (lambda v: v)
    x_low, x_high = float(all_x.min()), float(all_x.max())
    y_low, y_high = float(transform(all_y).min()), float(transform(all_y).max())
    if x_high == x_low:
        x_low, x_high = x_low - 1.0, x_high + 1.0
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    margin = 0.05 * (y_high - y_low)
    y_low, y_high = y_low - margin, y_high + margin

    width, height = size
    left, right, top, bottom = 64, 16, 28, 40
    figure = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    font = ImageFont.load_default()

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        py = height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom)
        return px, py

    draw.rectangle((left, top, width - right, height - bottom), outline=(0, 0, 0))
    for tick in nice_ticks(x_low, x_high):
        px, _ = to_pixel(tick, y_low)
        draw.line((px, height - bottom, px, height - bottom + 4), fill=(0, 0, 0))
        draw.text((px - 10, height - bottom + 6), f'{tick:g}', fill=(0, 0, 0), font=font)
    for tick in nice_ticks(y_low, y_high):
        if not y_low <= tick <= y_high:
            continue
        _, py = to_pixel(x_low, tick)
        draw.line((left - 4, py, left, py), fill=(0, 0, 0))
        draw.line((left + 1, py, width - right - 1, py), fill=(230, 230, 230))
        text = f'{10.0 ** tick:.3g}' if log_y else f'{tick:.4g}'
        draw.text((2, py - 5), text, fill=(0, 0, 0), font=font)
    draw.text(((width - left - right) // 2 + left - 10, height - 14), x_label, fill=(0, 0, 0), font=font)
    if title:
        draw.text((left, 8), title, fill=(0, 0, 0), font=font)

    for index, (name, (xs, ys)) in enumerate(curves.items()):
        colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
        valid = keep[name]
        # Split into runs of valid points so gaps (NaN) are not bridged.
        breaks = np.flatnonzero(np.diff(valid.astype(np.int8)) != 0) + 1
        for run in np.split(np.arange(xs.size), breaks):
            if run.size == 0 or not valid[run[0]]:
                continue
            points = [to_pixel(float(xs[i]), float(transform(ys[i]))) for i in run]
            if len(points) == 1:
                x, y = points[0]
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
            else:
                draw.line(points, fill=colour, width=2)
        legend_y = top + 6 + 12 * index
        draw.line((width - right - 120, legend_y + 5, width - right - 100, legend_y + 5), fill=colour, width=2)
        draw.text((width - right - 96, legend_y), name, fill=(0, 0, 0), font=font)
    save_png(figure, path)


def training_curve_series(records: Iterable[Mapping[str, Any]]
                          ) -> dict[str, tuple[list[int], list[float]]]:
    """{name: (steps, values)} of `train_loss` and every `val_*` metric in metrics.jsonl records."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        for key, value in record.items():
            if (key == 'train_loss' or key.startswith('val_')) and isinstance(value, (int, float)) \
                    and math.isfinite(value):
                series.setdefault(key, ([], []))
                series[key][0].append(record['step'])
                series[key][1].append(value)
    return series


def save_training_curves(path: str | Path, records: Iterable[Mapping[str, Any]]) -> bool:
    """`curves.png` from metrics.jsonl records; False (nothing written) when they hold no curve."""
    series = training_curve_series(records)
    if series:
        save_curve_png(path, [], series, title='training curves')
    return bool(series)
