"""Helpers that write tiny fake datasets (images, masks, stacks) for the data tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    """Write an array as an image file (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def blob_image(rng: np.random.Generator, height: int, width: int, center: tuple[int, int],
               radius: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy reddish RGB image with a bright disc at `center`, and the disc's 0/255 mask."""
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2
    image = np.zeros((height, width, 3), np.float32) + np.array([150, 60, 30], np.float32)
    image += rng.normal(0, 8, image.shape)
    image[disc] = [250, 230, 180]
    return np.clip(image, 0, 255).astype(np.uint8), disc.astype(np.uint8) * 255


def make_folder_dataset(root: Path, count: int = 6, size: tuple[int, int] = (40, 48), seed: int = 0,
                        image_dir: str = 'images', label_dir: str = 'masks', image_ext: str = '.png',
                        label_ext: str = '.png', label_suffix: str = '') -> list[str]:
    """`count` image/mask pairs named case00.. with a bright blob each; returns the stems."""
    rng = np.random.default_rng(seed)
    stems = [f'case{i:02d}' for i in range(count)]
    for i, stem in enumerate(stems):
        image, mask = blob_image(rng, *size, center=(size[0] // 2, 10 + i * 4 % (size[1] - 20)), radius=6)
        save(root / image_dir / f'{stem}{image_ext}', image)
        save(root / label_dir / f'{stem}{label_suffix}{label_ext}', mask)
    return stems


def write_list(path: Path, names: list[str]) -> None:
    """A split list file, one name per line."""
    path.write_text(''.join(f'{name}\n' for name in names))


def make_origa(root: Path, size: tuple[int, int] = (120, 160)) -> list[str]:
    """ORIGA layout: images/*.jpg, masks/*.jpg, Set_A.txt (4 train) / Set_B.txt (2 test)."""
    stems = make_folder_dataset(root, count=6, size=size, image_ext='.jpg', label_ext='.jpg')
    write_list(root / 'Set_A.txt', [f'{s}.jpg' for s in stems[:4]])
    write_list(root / 'Set_B.txt', [f'{s}.jpg' for s in stems[4:]])
    return stems


def make_messidor(root: Path) -> list[str]:
    """Messidor layout: save_image/*.png, save_mask/*.png, train.txt (4) / test.txt (2)."""
    stems = make_folder_dataset(root, count=6, image_dir='save_image', label_dir='save_mask')
    write_list(root / 'train.txt', stems[:4])
    write_list(root / 'test.txt', [f'{s}.png' for s in stems[4:]])
    return stems


def make_rimone(root: Path) -> list[str]:
    """RIM-ONE-R1 layout: RIM-ONE-images/N.png, RIM-ONE-exp1/N-exp1.png, train_files.txt / test_files.txt."""
    stems = make_folder_dataset(root, count=5, image_dir='RIM-ONE-images', label_dir='RIM-ONE-exp1',
                                label_suffix='-exp1')
    write_list(root / 'train_files.txt', stems[:3])
    write_list(root / 'test_files.txt', stems[3:])
    return stems


def make_lung(root: Path, count: int = 10) -> list[str]:
    """Kaggle lung CT layout: 2d_images/*.tif (16-bit) and 2d_masks/*.tif (0/255)."""
    rng = np.random.default_rng(1)
    stems = [f'ID_{i:04d}_Z_0142' for i in range(count)]
    for stem in stems:
        ct = rng.integers(0, 4000, (32, 32)).astype(np.uint16)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 4:14] = mask[8:24, 18:28] = 255
        save(root / '2d_images' / f'{stem}.tif', ct)
        save(root / '2d_masks' / f'{stem}.tif', mask)
    return stems


def make_isbi_tiff(root: Path, pages: int = 5, size: int = 24) -> None:
    """ISBI 2012 challenge stacks: train-volume.tif and train-labels.tif (0 = membrane, 255 = cell)."""
    rng = np.random.default_rng(2)
    root.mkdir(parents=True, exist_ok=True)
    volume = [Image.fromarray(rng.integers(0, 256, (size, size)).astype(np.uint8)) for _ in range(pages)]
    labels = []
    for page in range(pages):
        label = np.full((size, size), 255, np.uint8)
        label[:, page::6] = 0
        labels.append(Image.fromarray(label))
    volume[0].save(root / 'train-volume.tif', save_all=True, append_images=volume[1:])
    labels[0].save(root / 'train-labels.tif', save_all=True, append_images=labels[1:])


def oct_boundaries(width: int, offset: float = 0.0) -> np.ndarray:
    """(10, width) increasing boundary rows for a 40-row B-scan."""
    return np.stack([np.full(width, 4.0 + 3.0 * k + offset, np.float32) for k in range(10)])


def make_drive(root: Path, count: int = 2, size: tuple[int, int] = (40, 48)) -> None:
    """DRIVE layout: training/ and test/ with images (.tif), 1st_manual (.gif), mask (FOV, .gif)."""
    rng = np.random.default_rng(0)
    for split, first in (('training', 21), ('test', 1)):
        for n in range(first, first + count):
            image, vessels = blob_image(rng, *size, center=(size[0] // 2, size[1] // 2), radius=6)
            save(root / split / 'images' / f'{n:02d}_{split}.tif', image)
            save(root / split / '1st_manual' / f'{n:02d}_manual1.gif', vessels)
            save(root / split / 'mask' / f'{n:02d}_{split}_mask.gif',
                 np.full(size, 255, np.uint8))


def fundus(seed: int, size: tuple[int, int] = (60, 64)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic fundus photograph (dark border, bright disc of retina, vessels): (image uint8
    (H, W, 3), vessel mask 0/255, the true FOV bool)."""
    from cenet_jax.data.synthetic import synthetic_vessels
    image, vessels, fov = synthetic_vessels(np.random.default_rng(seed), *size)
    return image, vessels.astype(np.uint8) * 255, fov


def make_chase(root: Path, names: tuple[str, ...] = ('Image_01L', 'Image_01R', 'Image_02L', 'Image_02R'),
               size: tuple[int, int] = (60, 64), label_values: tuple[int, int] = (0, 255)) -> list[str]:
    """CHASE_DB1 layout: one folder of NAME.jpg with NAME_1stHO.png and NAME_2ndHO.png (the
    second observer's mask is the first's widened by a pixel column, so the two differ)."""
    for index, name in enumerate(names):
        image, vessels, _ = fundus(index, size)
        save(root / f'{name}.jpg', image, quality=95)
        first = np.where(vessels > 0, label_values[1], label_values[0]).astype(np.uint8)
        second = np.maximum(first, np.roll(first, 1, axis=1))
        save(root / f'{name}_1stHO.png', first)
        save(root / f'{name}_2ndHO.png', second)
    return list(names)


def save_gzipped(path: Path, array: np.ndarray) -> Path:
    """Write an image, then gzip it as PATH.gz (the uncompressed file is removed)."""
    import gzip
    save(path, array)
    target = path.with_name(path.name + '.gz')
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


def make_stare(root: Path, size: tuple[int, int] = (60, 64)) -> dict[str, np.ndarray]:
    """STARE layout in every accepted encoding: stare-images/ im0001.ppm, im0002.ppm.gz,
    im0003.png and an unlabelled im0004.ppm; labels-ah/ im0001.ah.ppm, im0002.ah.pgm.gz,
    im0003.ah.png; labels-vk/ the same names with .vk (the Kouznetsova masks are the Hoover
    ones widened by a pixel column). Returns the Hoover masks (0/255) by id."""
    images = {'im0001': '.ppm', 'im0002': '.ppm.gz', 'im0003': '.png', 'im0004': '.ppm'}
    labels = {'im0001': '.ppm', 'im0002': '.pgm.gz', 'im0003': '.png'}
    hoover = {}
    for index, (name, extension) in enumerate(images.items()):
        image, vessels, _ = fundus(10 + index, size)
        path = root / 'stare-images' / f'{name}{extension.removesuffix(".gz")}'
        save_gzipped(path, image) if extension.endswith('.gz') else save(path, image)
        if name not in labels:
            continue
        hoover[name] = vessels
        wide = np.maximum(vessels, np.roll(vessels, 1, axis=1))
        for folder, tag, mask in (('labels-ah', 'ah', vessels), ('labels-vk', 'vk', wide)):
            extension = labels[name]
            pixels = np.repeat(mask[..., None], 3, axis=-1) if '.ppm' in extension else mask  # ppm is RGB
            path = root / folder / f'{name}.{tag}{extension.removesuffix(".gz")}'
            save_gzipped(path, pixels) if extension.endswith('.gz') else save(path, pixels)
    return hoover
