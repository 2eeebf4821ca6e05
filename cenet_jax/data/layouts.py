"""Folder layouts of the real datasets: each lister pairs image, label (and FOV) files.

A lister returns `Listing`: the official split pools ('train' / 'test' / optional 'val') or a
single pool 'all', each a list of `Entry` sorted by id, plus label files that have no image.
Nothing is opened here; a missing partner file stays in the entry as the path that was
expected, and `validate.py` reports it (or skips it) together with every other problem.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from cenet_jax.data.decode import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS, frame_count
from cenet_jax.data.errors import DataError
from cenet_jax.data.splits import read_split_list

# Human-readable layout per dataset name: used in errors and in the docs.
LAYOUTS: dict[str, str] = {
    'drive': 'training/images/NN_training.tif, training/1st_manual/NN_manual1.gif, '
             'training/mask/NN_training_mask.gif (FOV), and the same under test/ (NN_test.tif, '
             'NN_test_mask.gif)',
    'origa': 'images/*.jpg, masks/*.jpg (same names), split lists Set_A.txt (train) and Set_B.txt (test)',
    'messidor': 'save_image/*.png, save_mask/*.png (same names), split lists train.txt and test.txt',
    'rimone': 'RIM-ONE-images/NAME.png, RIM-ONE-exp1/NAME-exp1.png (one folder per expert), '
              'split lists train_files.txt and test_files.txt',
    'lung': '2d_images/*.tif and 2d_masks/*.tif with the same names (Kaggle finding-lungs-in-ct-data)',
    'isbi': 'train/image/*.png and train/label/*.png, or train-images/ and train-labels/, same names',
    'isbi_tiff': 'train-volume.tif and train-labels.tif, multi-page TIFF stacks with equal page counts',
    'oct': 'images/NAME.(png|tif|npy), and labels/NAME.(png|npy) class maps or boundaries/NAME.(npy|mat) '
           'boundary rows (num_classes-1 x W); optional split lists train.txt / val.txt / test.txt',
    'folder': 'images/NAME.*, masks/NAME.* (same stems); optional split lists train.txt / val.txt / test.txt',
}
_ANY_EXTENSION = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Entry:
    """One record's files. `label` is empty for OCT records labelled by `boundaries`; `frame` is
    the page of a multi-page TIFF (-1 for ordinary files)."""
    id: str
    image: str
    label: str = ''
    fov: str = ''
    boundaries: str = ''
    frame: int = -1


@dataclasses.dataclass(frozen=True)
class LayoutParams:
    """The config values a lister needs (split file / folder names, which annotator)."""
    train_split: str = 'train.txt'
    val_split: str = 'val.txt'
    test_split: str = 'test.txt'
    annotator: int = 1


@dataclasses.dataclass
class Listing:
    """Split pools of entries sorted by id, label files without an image, and non-fatal notes."""
    pools: dict[str, list[Entry]]
    orphans: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def missing_root_error(name: str, root: str) -> DataError:
    """The error for an unset or absent dataset root: which flag to set and the expected layout."""
    what = 'is not set' if not root else f'{root!r} does not exist or is not a folder'
    return DataError(f'dataset {name!r}: data root {what}. Set --config.data.root=/path/to/{name.upper()} '
                     f'to a folder laid out as: {LAYOUTS[name]}')


def require_dir(path: Path, name: str) -> Path:
    """`path` if it is a folder, else a DataError naming it and the layout of dataset `name`."""
    if not path.is_dir():
        raise DataError(f'dataset {name!r}: expected folder {path} is missing; layout: {LAYOUTS[name]}')
    return path


def files_by_stem(folder: Path, extensions: tuple[str, ...] = _ANY_EXTENSION) -> dict[str, Path]:
    """{stem: path} of the files in `folder` with one of `extensions`; two files per stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith('.'):
            if path.stem in found:
                raise DataError(f'{folder}: two files with the same name stem {path.stem!r}: '
                                f'{found[path.stem].name} and {path.name}; keep one')
            found[path.stem] = path
    return found


def _partner(files: dict[str, Path], folder: Path, stem: str, default_ext: str) -> str:
    """Path of the file named `stem` in `folder`, or the path it was expected at if absent."""
    return str(files.get(stem, folder / f'{stem}{default_ext}'))


def pair_folders(image_dir: Path, label_dir: Path, label_stem: Callable[[str], str] = lambda s: s, *,
                 fov_dir: Path | None = None, fov_stem: Callable[[str], str] = lambda s: s,
                 label_key: str = 'label') -> tuple[list[Entry], list[str]]:
    """Entries for every image in `image_dir`, paired by stem, and label files without an image."""
    images = files_by_stem(image_dir)
    labels = files_by_stem(label_dir)
    fovs = files_by_stem(fov_dir) if fov_dir is not None else {}
    default_label_ext = next(iter(labels.values())).suffix if labels else '.png'
    entries = []
    for stem, image in images.items():
        partner = _partner(labels, label_dir, label_stem(stem), default_label_ext)
        fov = _partner(fovs, fov_dir, fov_stem(stem), '.gif') if fov_dir is not None else ''
        entries.append(Entry(id=stem, image=str(image), fov=fov, **{label_key: partner}))
    expected = {label_stem(stem) for stem in images}
    orphans = [f'{path} (no image in {image_dir} pairs with it)'
               for stem, path in labels.items() if stem not in expected]
    return entries, orphans


def _select_listed(entries: list[Entry], image_dir: Path, list_file: Path) -> list[Entry]:
    """Entries named in `list_file`, in id order; a listed name without an image becomes an entry
    whose (missing) image path names the list file, so validation reports both."""
    by_id = {entry.id: entry for entry in entries}
    selected = []
    for stem in read_split_list(list_file):
        if stem in by_id:
            selected.append(by_id[stem])
        else:
            missing = image_dir / f'{stem}  [listed in {list_file.name}, no such image]'
            selected.append(Entry(id=stem, image=str(missing), label=''))
    return sorted(selected, key=lambda entry: entry.id)


def _pools_from_lists(entries: list[Entry], image_dir: Path, root: Path, params: LayoutParams,
                      name: str, required: bool) -> dict[str, list[Entry]]:
    """Pools from split lists in `root`; without a train list (and not `required`) one pool 'all'."""
    files = {split: root / getattr(params, f'{split}_split') for split in ('train', 'val', 'test')
             if getattr(params, f'{split}_split')}
    if 'train' not in files or not files['train'].is_file():
        if required:
            raise DataError(f'dataset {name!r}: split list {files.get("train", root / "<train_split>")} is '
                            f'missing; layout: {LAYOUTS[name]} (or set --config.data.train_split)')
        return {'all': sorted(entries, key=lambda entry: entry.id)}
    if 'test' not in files or not files['test'].is_file():
        raise DataError(f'dataset {name!r}: found train list {files["train"]} but no test list '
                        f'{files.get("test", "(test_split is empty)")}; add it or set --config.data.test_split')
    pools = {split: _select_listed(entries, image_dir, path) for split, path in files.items()
             if split != 'val' or path.is_file()}
    return pools


def _drive(root: Path, params: LayoutParams) -> Listing:
    pools, orphans, notes = {}, [], []
    for split, folder_name in (('train', params.train_split), ('test', params.test_split)):
        folder = require_dir(root / folder_name, 'drive')
        annotator = params.annotator if split == 'test' else 1  # only test/ has a 2nd_manual
        manual = require_dir(folder / _drive_manual(annotator), 'drive')
        fov_dir = folder / 'mask'
        if not fov_dir.is_dir():
            notes.append(f'{fov_dir} is missing: the {split} split has no FOV masks, so the FOV is the '
                         f'whole image (metrics will include the black border)')
        entries, split_orphans = pair_folders(
            require_dir(folder / 'images', 'drive'), manual,
            lambda stem, a=annotator: f'{stem.split("_")[0]}_manual{a}',  # '21_training' -> '21_manual1'
            fov_dir=fov_dir if fov_dir.is_dir() else None, fov_stem=lambda stem: f'{stem}_mask')
        pools[split] = entries
        orphans += split_orphans
    return Listing(pools, orphans, notes)


def _drive_manual(annotator: int) -> str:
    """DRIVE's annotation folder for an observer: 1st_manual (the standard) or 2nd_manual (test only)."""
    if annotator not in (1, 2):
        raise DataError(f'DRIVE has annotators 1 and 2 (1st_manual, 2nd_manual), got annotator={annotator}')
    return f'{annotator}{"st" if annotator == 1 else "nd"}_manual'


def _listed_pairs(name: str, image_folder: str, label_folder: str, label_stem: Callable[[str], str]):
    """A lister for a dataset with image/label folders and required split lists (disc datasets)."""
    def lister(root: Path, params: LayoutParams) -> Listing:
        image_dir = require_dir(root / image_folder, name)
        entries, orphans = pair_folders(image_dir, require_dir(root / label_folder.format(a=params.annotator), name),
                                        lambda stem: label_stem(stem).format(a=params.annotator))
        return Listing(_pools_from_lists(entries, image_dir, root, params, name, required=True), orphans)
    return lister


def _isbi(root: Path, params: LayoutParams) -> Listing:
    del params
    for image_folder, label_folder in (('train/image', 'train/label'), ('train-images', 'train-labels')):
        if (root / image_folder).is_dir():
            entries, orphans = pair_folders(root / image_folder, require_dir(root / label_folder, 'isbi'))
            return Listing({'all': sorted(entries, key=lambda entry: entry.id)}, orphans)
    raise DataError(f'dataset \'isbi\': neither {root / "train/image"} nor {root / "train-images"} exists; '
                    f'layout: {LAYOUTS["isbi"]}')


def _isbi_tiff(root: Path, params: LayoutParams) -> Listing:
    del params
    volume, labels = root / 'train-volume.tif', root / 'train-labels.tif'
    for path in (volume, labels):
        if not path.is_file():
            raise DataError(f'dataset \'isbi_tiff\': {path} is missing; layout: {LAYOUTS["isbi_tiff"]}')
    pages = frame_count(volume)
    if frame_count(labels) != pages:
        raise DataError(f'{labels} has {frame_count(labels)} pages but {volume} has {pages}; '
                        f'expected one label page per image page')
    entries = [Entry(id=f'{volume.stem}-{page:03d}', image=str(volume), label=str(labels), frame=page)
               for page in range(pages)]
    return Listing({'all': entries})


def _lung(root: Path, params: LayoutParams) -> Listing:
    del params
    entries, orphans = pair_folders(require_dir(root / '2d_images', 'lung'), require_dir(root / '2d_masks', 'lung'))
    return Listing({'all': sorted(entries, key=lambda entry: entry.id)}, orphans)


def _oct(root: Path, params: LayoutParams) -> Listing:
    image_dir = require_dir(root / 'images', 'oct')
    if (root / 'labels').is_dir():
        entries, orphans = pair_folders(image_dir, root / 'labels')
    elif (root / 'boundaries').is_dir():
        entries, orphans = pair_folders(image_dir, root / 'boundaries', label_key='boundaries')
    else:
        raise DataError(f'dataset \'oct\': neither {root / "labels"} (class maps) nor {root / "boundaries"} '
                        f'(boundary rows) exists; layout: {LAYOUTS["oct"]}')
    return Listing(_pools_from_lists(entries, image_dir, root, params, 'oct', required=False), orphans)


def _folder(root: Path, params: LayoutParams) -> Listing:
    image_dir = require_dir(root / 'images', 'folder')
    entries, orphans = pair_folders(image_dir, require_dir(root / 'masks', 'folder'))
    return Listing(_pools_from_lists(entries, image_dir, root, params, 'folder', required=False), orphans)


LISTERS: dict[str, Callable[[Path, LayoutParams], Listing]] = {
    'drive': _drive,
    'origa': _listed_pairs('origa', 'images', 'masks', lambda stem: stem),
    'messidor': _listed_pairs('messidor', 'save_image', 'save_mask', lambda stem: stem),
    'rimone': _listed_pairs('rimone', 'RIM-ONE-images', 'RIM-ONE-exp{a}', lambda stem: stem + '-exp{a}'),
    'lung': _lung,
    'isbi': _isbi,
    'isbi_tiff': _isbi_tiff,
    'oct': _oct,
    'folder': _folder,
}


def list_dataset(name: str, root: str, params: LayoutParams) -> Listing:
    """List and pair the files of dataset `name` under `root` (see `LAYOUTS`)."""
    if name not in LISTERS:
        raise DataError(f'unknown dataset {name!r}; file datasets are {sorted(LISTERS)}')
    if not root or not Path(root).is_dir():
        raise missing_root_error(name, root)
    listing = LISTERS[name](Path(root), params)
    listing.pools = {split: sorted(entries, key=lambda entry: entry.id) for split, entries in listing.pools.items()}
    return listing

