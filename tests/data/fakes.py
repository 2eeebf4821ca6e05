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


# Drishti-GS1: soft-map values are 64 x the number of the 4 experts who marked the pixel.
DRISHTI_SOFT_VALUES = np.array([0, 64, 128, 191, 255], np.uint8)
DRISHTI_DISC_RADII = (30, 27, 24, 21)   # radius marked by at least 1, 2, 3, 4 experts
DRISHTI_CUP_RADII = (16, 13, 10, 7)
DRISHTI_CDRS = '0.76 0.77 0.79 0.75\n'


def expert_soft_map(shape: tuple[int, int], centre: tuple[int, int], radii: tuple[int, ...]) -> np.ndarray:
    """uint8 soft map of concentric discs: a pixel within radii[k - 1] of `centre` was marked by
    at least k experts (value DRISHTI_SOFT_VALUES[k])."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    distance = np.hypot(yy - centre[0], xx - centre[1])
    return DRISHTI_SOFT_VALUES[sum((distance <= r).astype(np.int32) for r in radii)]


def fundus_with_disc(shape: tuple[int, int], disc: tuple[int, int], radius: int, seed: int = 0,
                     flare: tuple[int, int, int] | None = None) -> np.ndarray:
    """uint8 (H, W, 3) fundus-like photograph: a dark border, a round orange field of view, a
    yellow-white optic disc of `radius` at `disc`; `flare` = (row, col, radius) adds a white
    camera flare there (clipped to the field of view)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    fov = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2) <= 0.48 * min(shape)
    image = np.zeros(shape + (3,), np.float32)
    image[fov] = (170, 70, 30)
    image[np.hypot(yy - disc[0], xx - disc[1]) <= radius] = (235, 190, 120)
    if flare is not None:
        image[fov & (np.hypot(yy - flare[0], xx - flare[1]) <= flare[2])] = (255, 255, 255)
    image += rng.normal(0, 4, image.shape) * fov[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def make_drishti(root: Path, *, subfolder: str = 'ALL', wrapped: bool = False, counts: tuple[int, int] = (3, 2),
                 size: tuple[int, int] = (96, 112)) -> dict[str, list[str]]:
    """Drishti-GS1 as distributed: `[root/Drishti-GS1_files/]{Training,Test}/Images/[subfolder/]NAME.png`
    with `GT/NAME/SoftMap/NAME_{OD,cup}segSoftmap.png` (concentric expert soft maps around the disc,
    DRISHTI_DISC_RADII / DRISHTI_CUP_RADII), `GT/NAME/NAME_cdrValues.txt` (DRISHTI_CDRS) and the
    AvgBoundary/ folder and spreadsheet the real set also holds. Returns the names per split folder."""
    base = root / 'Drishti-GS1_files' if wrapped else root
    names: dict[str, list[str]] = {}
    number = 1
    for split, count in zip(('Training', 'Test'), counts):
        names[split] = []
        for index in range(count):
            name = f'drishtiGS_{number:03d}'
            number += 1
            centre = (size[0] // 2 + index - 1, size[1] // 2 + 2 * index - 2)
            save(base / split / 'Images' / subfolder / f'{name}.png',
                 fundus_with_disc(size, centre, DRISHTI_DISC_RADII[2], seed=number))
            truth = base / split / 'GT' / name
            save(truth / 'SoftMap' / f'{name}_ODsegSoftmap.png', expert_soft_map(size, centre, DRISHTI_DISC_RADII))
            save(truth / 'SoftMap' / f'{name}_cupsegSoftmap.png', expert_soft_map(size, centre, DRISHTI_CUP_RADII))
            (truth / f'{name}_cdrValues.txt').write_text(DRISHTI_CDRS)
            (truth / 'AvgBoundary').mkdir()
            (truth / 'AvgBoundary' / f'{name}_ODAvgBoundary.txt').write_text('10 10\n')
            names[split].append(name)
        (base / split / 'GT' / 'Notching___Image__level_decisions.xlsx').write_bytes(b'PK')
    return names
