"""Reading pixels from files: images as uint8 RGB, labels as raw 2-D arrays, header-only sizes.

Images come in many encodings (8-bit RGB TIFF, palette GIF, 16-bit PNG/TIFF, float CT slices,
NumPy arrays, pages of multi-page TIFF stacks, gzipped files such as STARE's `im0001.ppm.gz`).
Everything here ends as uint8: grayscale is replicated to 3 channels, and deeper data is
*scaled* (never clipped) into [0, 255].
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

from cenet_jax.data.errors import DataError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.gif', '.bmp', '.ppm', '.pgm')
ARRAY_EXTENSIONS = ('.npy', '.mat')
HIGH_BIT_DEPTH_MODES = ('range', 'minmax')
GZIP_SUFFIX = '.gz'    # an image file compressed whole (STARE ships im0001.ppm.gz)
_UINT16_MAX = 65535.0


def split_image_name(name: str) -> tuple[str, str]:
    """(base, extension) of an image file name, a gzip suffix included in the extension:
    'im0001.ah.ppm.gz' -> ('im0001.ah', '.ppm.gz'), 'a.png' -> ('a', '.png'); ('name', '') if
    the name has no image extension."""
    lower = name.lower()
    for extension in IMAGE_EXTENSIONS:
        for full in (extension + GZIP_SUFFIX, extension):
            if lower.endswith(full) and len(name) > len(full):
                return name[: -len(full)], name[-len(full):]
    return name, ''


def is_array_file(path: str | Path) -> bool:
    """True for NumPy (.npy) and MATLAB (.mat) files, which are read as arrays, not with PIL."""
    return Path(path).suffix.lower() in ARRAY_EXTENSIONS


def to_uint8(array: np.ndarray, high_bit_depth: str = 'range') -> np.ndarray:
    """Scale any numeric array to uint8 without clipping.

    uint8 passes through and bool becomes {0, 255}. With `high_bit_depth='range'`, uint16 (and
    non-negative integer data up to 65535, e.g. PIL's 32-bit 'I' mode of a 16-bit PNG) maps
    0..65535 -> 0..255, int16 maps -32768..32767 -> 0..255; data outside those ranges and float
    data are stretched per image from min..max. `'minmax'` stretches every non-uint8 input.
    """
    if high_bit_depth not in HIGH_BIT_DEPTH_MODES:
        raise DataError(f'high_bit_depth must be one of {HIGH_BIT_DEPTH_MODES}, got {high_bit_depth!r}')
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    values = array.astype(np.float64)
    if high_bit_depth == 'range' and np.issubdtype(array.dtype, np.integer):
        low = float(values.min(initial=0.0))
        high = float(values.max(initial=0.0))
        if array.dtype == np.int16:
            return np.rint((values + 32768.0) * (255.0 / _UINT16_MAX)).astype(np.uint8)
        if low >= 0 and high <= _UINT16_MAX:
            return np.rint(values * (255.0 / _UINT16_MAX)).astype(np.uint8)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(array.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) * (
        255.0 / (high - low) if high > low else 0.0)
    return np.rint(scaled).astype(np.uint8)


def _open_frame(path: Path, frame: int) -> Image.Image:
    """Open an image file (header only; a gzipped one is decompressed in memory) and seek to
    `frame` of a multi-page file (-1 = first)."""
    if path.suffix.lower() == GZIP_SUFFIX:
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as error:
            raise DataError(f'{path}: not a readable gzip file ({error})') from error
        image = Image.open(io.BytesIO(data))
    else:
        image = Image.open(path)
    if frame > 0:
        image.seek(frame)
    return image


def read_array(path: str | Path, key: str = '') -> np.ndarray:
    """Load a .npy array, or the variable `key` of a .mat file (the only array variable if '')."""
    path = Path(path)
    if path.suffix.lower() == '.npy':
        return np.load(path, allow_pickle=False)
    import scipy.io  # deferred: only .mat inputs need scipy.io
    contents = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith('__')}
    if key:
        if key not in contents:
            raise DataError(f'{path}: no variable {key!r} in the .mat file (has {sorted(contents)}); '
                            f'set --config.data.mat_key to the right name')
        return np.asarray(contents[key])
    arrays = [k for k, v in contents.items() if isinstance(v, np.ndarray) and v.ndim >= 2]
    if len(arrays) != 1:
        raise DataError(f'{path}: expected exactly one array variable in the .mat file, found {arrays}; '
                        f'set --config.data.mat_key to choose one')
    return np.asarray(contents[arrays[0]])


def array_shape(path: str | Path, key: str = '') -> tuple[int, ...]:
    """Shape of the array in a .npy (memory-mapped, no read) or .mat file (from its header)."""
    path = Path(path)
    if path.suffix.lower() == '.npy':
        return tuple(np.load(path, mmap_mode='r', allow_pickle=False).shape)
    import scipy.io  # deferred: only .mat inputs need scipy.io
    entries = [(name, shape) for name, shape, _ in scipy.io.whosmat(path) if len(shape) >= 2]
    if key:
        entries = [(name, shape) for name, shape in entries if name == key]
    if len(entries) != 1:
        raise DataError(f'{path}: expected one array variable{f" named {key!r}" if key else ""} '
                        f'in the .mat file, found {[name for name, _ in entries]}')
    return tuple(entries[0][1])


def image_hw(path: str | Path, frame: int = -1) -> tuple[int, int]:
    """(height, width) of an image or array file from its header, without decoding pixels."""
    path = Path(path)
    if is_array_file(path):
        return tuple(array_shape(path)[:2])  # type: ignore[return-value]
    with _open_frame(path, frame) as image:
        width, height = image.size
    return height, width


def frame_count(path: str | Path) -> int:
    """Number of pages of a (multi-page) TIFF or other image file."""
    with _open_frame(Path(path), -1) as image:
        return int(getattr(image, 'n_frames', 1))


def read_image(path: str | Path, frame: int = -1, high_bit_depth: str = 'range') -> np.ndarray:
    """Decode an image (or page `frame` of a stack, or a .npy/.mat array) as uint8 (H, W, 3) RGB.

    Grayscale is replicated to 3 channels; 16-bit and float data are scaled by `to_uint8`.
    """
    path = Path(path)
    if is_array_file(path):
        array = read_array(path)
    else:
        with _open_frame(path, frame) as image:
            image.load()
            if image.mode in ('RGB', 'L'):
                array = np.asarray(image)
            elif image.mode in ('P', 'PA', 'RGBA', 'CMYK', 'YCbCr', 'LAB', 'HSV', '1', 'LA', 'La', 'RGBa'):
                array = np.asarray(image.convert('RGB'))
            else:  # 'I', 'I;16', 'I;16B', 'I;16S', 'F': high bit depth grayscale
                array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise DataError(f'{path}: expected a grayscale (H, W) or colour (H, W, 3) image, got shape {array.shape}')
    array = to_uint8(array, high_bit_depth)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array)


def read_label(path: str | Path, frame: int = -1, palette_as_index: bool = False, mat_key: str = '') -> np.ndarray:
    """Decode a label file as a raw 2-D array (values untouched; conventions applied elsewhere).

    Colour labels become luminance. Palette images become luminance too (safe for binary masks
    such as DRIVE's 2nd_manual), or their palette indices when `palette_as_index` (class maps).
    """
    path = Path(path)
    if is_array_file(path):
        array = np.asarray(read_array(path, mat_key))
    else:
        with _open_frame(path, frame) as image:
            image.load()
            if image.mode == 'P' and palette_as_index:
                array = np.asarray(image)
            elif image.mode in ('RGB', 'RGBA', 'P', 'PA', 'LA', 'CMYK', 'YCbCr', '1'):
                array = np.asarray(image.convert('L'))
            else:
                array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise DataError(f'{path}: expected a single-channel (H, W) label, got shape {array.shape}')
    return array
