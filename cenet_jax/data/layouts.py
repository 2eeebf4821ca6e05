"""Folder layouts of the real datasets: each lister pairs image, label (and FOV) files.

A lister returns `Listing`: the official split pools ('train' / 'test' / optional 'val') or a
single pool 'all', each a list of `Entry` sorted by id, plus label files that have no image,
where each pool's names come from (a split list, a folder) and, for a single pool, why there
is no official split. Nothing is opened here; a missing partner file stays in the entry as the
path that was expected, and `validate.py` reports it (or skips it) together with every other
problem. An image folder with no images is an error naming the folder.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from cenet_jax.data.decode import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS, frame_count, split_image_name
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
    'folder': 'images/NAME.*, masks/NAME.* (same stems), optional FOV masks fov/NAME.*; optional split '
              'lists train.txt / val.txt / test.txt (test.txt alone: the other images are train)',
    'chase_db1': 'one folder: Image_01L.jpg with its vessel masks Image_01L_1stHO.png (first observer, '
                 'annotator=1) and Image_01L_2ndHO.png (second observer, annotator=2)',
    'drishti_gs1': '[Drishti-GS1_files/]{Training,Test}/Images/[one sub-folder, e.g. ALL/]NAME.png with '
                   '{Training,Test}/GT/NAME/SoftMap/NAME_ODsegSoftmap.png and NAME_cupsegSoftmap.png (soft maps: '
                   '0/64/128/191/255 = how many of the 4 experts marked the pixel) and GT/NAME/NAME_cdrValues.txt '
                   '(the experts\' cup-to-disc ratios)',
    'stare': 'stare-images/im0001.ppm with labels-ah/im0001.ah.ppm (Hoover, annotator=1) or '
             'labels-vk/im0001.vk.ppm (Kouznetsova, annotator=2); .ppm, .pgm or .png, optionally '
             'gzipped (.ppm.gz); images without a label are left out',
}
CHASE_OBSERVERS = {1: '1stHO', 2: '2ndHO'}
STARE_OBSERVERS = {1: ('labels-ah', 'ah'), 2: ('labels-vk', 'vk')}
_ANY_EXTENSION = IMAGE_EXTENSIONS + ARRAY_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Entry:
    """One record's files. `label` is empty for OCT records labelled by `boundaries`; `frame` is
    the page of a multi-page TIFF (-1 for ordinary files). Disc-and-cup sets (Drishti-GS1) give the
    disc soft map as `label`, the cup soft map as `cup` and the experts' CDR values as `cdr`."""
    id: str
    image: str
    label: str = ''
    fov: str = ''
    boundaries: str = ''
    frame: int = -1
    cup: str = ''
    cdr: str = ''


@dataclasses.dataclass(frozen=True)
class LayoutParams:
    """The config values a lister needs (split file / folder names, which annotator)."""
    train_split: str = 'train.txt'
    val_split: str = 'val.txt'
    test_split: str = 'test.txt'
    annotator: int = 1


@dataclasses.dataclass
class Listing:
    """Split pools of entries sorted by id, label files without an image, non-fatal notes, where
    each pool's names come from (`sources`: pool -> split list or folder) and, for a single pool
    'all', why the set has no official test split (`no_split`)."""
    pools: dict[str, list[Entry]]
    orphans: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    no_split: str = ''


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


def _add_unique(found: dict[str, Path], stem: str, path: Path, folder: Path) -> None:
    if stem in found:
        raise DataError(f'{folder}: two files with the same name stem {stem!r}: '
                        f'{found[stem].name} and {path.name}; keep one')
    found[stem] = path


def files_by_stem(folder: Path, extensions: tuple[str, ...] = _ANY_EXTENSION) -> dict[str, Path]:
    """{stem: path} of the files in `folder` with one of `extensions`; two files per stem is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith('.'):
            _add_unique(found, path.stem, path, folder)
    return found


def image_files_by_base(folder: Path) -> dict[str, Path]:
    """{base name: path} of the image files in `folder`, gzipped ones included
    ('im0001.ah.ppm.gz' -> 'im0001.ah'); two files per base name is an error."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        base, extension = split_image_name(path.name)
        if path.is_file() and extension and not path.name.startswith('.'):
            _add_unique(found, base, path, folder)
    return found


def no_images_error(name: str, folder: Path) -> DataError:
    """The error for an image folder without a single image file."""
    return DataError(f'dataset {name!r}: no images in {folder} (looked for '
                     f'{", ".join(IMAGE_EXTENSIONS)}); layout: {LAYOUTS[name]}')


def _partner(files: dict[str, Path], folder: Path, stem: str, default_ext: str) -> str:
    """Path of the file named `stem` in `folder`, or the path it was expected at if absent."""
    return str(files.get(stem, folder / f'{stem}{default_ext}'))


def pair_folders(image_dir: Path, label_dir: Path, label_stem: Callable[[str], str] = lambda s: s, *,
                 fov_dir: Path | None = None, fov_stem: Callable[[str], str] = lambda s: s,
                 label_key: str = 'label', name: str = 'folder') -> tuple[list[Entry], list[str]]:
    """Entries for every image in `image_dir`, paired by stem, and label files without an image;
    an `image_dir` without images is an error (`name`: the dataset, for its layout)."""
    images = files_by_stem(image_dir)
    if not images:
        raise no_images_error(name, image_dir)
    labels = files_by_stem(label_dir)
    fovs = files_by_stem(fov_dir) if fov_dir is not None else {}
    default_label_ext = next(iter(labels.values())).suffix if labels else '.png'
    default_fov_ext = next(iter(fovs.values())).suffix if fovs else '.png'
    entries = []
    for stem, image in images.items():
        partner = _partner(labels, label_dir, label_stem(stem), default_label_ext)
        fov = _partner(fovs, fov_dir, fov_stem(stem), default_fov_ext) if fov_dir is not None else ''
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
            missing = image_dir / f'{stem}.*  [listed in {list_file}, no such image]'
            selected.append(Entry(id=stem, image=str(missing), label=''))
    return sorted(selected, key=lambda entry: entry.id)


def _pools_from_lists(entries: list[Entry], image_dir: Path, root: Path, params: LayoutParams,
                      name: str, required: bool) -> Listing:
    """Pools from split lists in `root`. A test list without a train list makes the other images
    train; without a test list (and not `required`) one pool 'all' (a holdout or folds later)."""
    files = {split: root / getattr(params, f'{split}_split') for split in ('train', 'val', 'test')
             if getattr(params, f'{split}_split')}
    has = {split: split in files and files[split].is_file() for split in ('train', 'val', 'test')}
    if required and not has['train']:
        raise DataError(f'dataset {name!r}: split list {files.get("train", root / "<train_split>")} is '
                        f'missing; layout: {LAYOUTS[name]} (or set --config.data.train_split)')
    if has['train'] and not has['test']:
        raise DataError(f'dataset {name!r}: found train list {files["train"]} but no test list '
                        f'{files.get("test", "(test_split is empty)")}; add it or set --config.data.test_split')
    if not has['test']:
        why = f'no {files["test"]}' if 'test' in files else 'data.test_split is empty'
        return Listing({'all': sorted(entries, key=lambda entry: entry.id)},
                       sources={'all': str(image_dir)}, no_split=why)
    pools = {split: _select_listed(entries, image_dir, files[split]) for split in ('train', 'val', 'test')
             if has[split]}
    sources = {split: str(files[split]) for split in pools}
    if not has['train']:
        tested = {entry.id for entry in pools['test']}
        pools['train'] = [entry for entry in entries if entry.id not in tested]
        sources['train'] = f'{image_dir} (the images {files["test"].name} does not list)'
    return Listing(pools, sources=sources)


def _drive(root: Path, params: LayoutParams) -> Listing:
    pools, orphans, notes, sources = {}, [], [], {}
    for split, folder_name in (('train', params.train_split), ('test', params.test_split)):
        folder = require_dir(root / folder_name, 'drive')
        annotator = params.annotator if split == 'test' else 1  # only test/ has a 2nd_manual
        manual = require_dir(folder / _drive_manual(annotator), 'drive')
        fov_dir = folder / 'mask'
        if not fov_dir.is_dir():
            notes.append(f'{fov_dir} is missing: the {split} split has no FOV masks, so the FOV is the '
                         f'whole image (metrics will include the black border) unless data.fov=auto')
        entries, split_orphans = pair_folders(
            require_dir(folder / 'images', 'drive'), manual,
            lambda stem, a=annotator: f'{stem.split("_")[0]}_manual{a}',  # '21_training' -> '21_manual1'
            fov_dir=fov_dir if fov_dir.is_dir() else None, fov_stem=lambda stem: f'{stem}_mask', name='drive')
        pools[split] = entries
        sources[split] = str(folder)
        orphans += split_orphans
    return Listing(pools, orphans, notes, sources)


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
                                        lambda stem: label_stem(stem).format(a=params.annotator), name=name)
        listing = _pools_from_lists(entries, image_dir, root, params, name, required=True)
        listing.orphans = orphans
        return listing
    return lister


def _single_pool(entries: list[Entry], orphans: list[str], folder: Path | str, name: str,
                 notes: list[str] | None = None) -> Listing:
    """One pool 'all' of a set that ships no train/test split (`name` says so in `no_split`)."""
    return Listing({'all': sorted(entries, key=lambda entry: entry.id)}, orphans, notes or [],
                   sources={'all': str(folder)}, no_split=f'{name} has no official test split')


def _isbi(root: Path, params: LayoutParams) -> Listing:
    del params
    for image_folder, label_folder in (('train/image', 'train/label'), ('train-images', 'train-labels')):
        if (root / image_folder).is_dir():
            entries, orphans = pair_folders(root / image_folder, require_dir(root / label_folder, 'isbi'), name='isbi')
            return _single_pool(entries, orphans, root / image_folder, 'ISBI 2012 (labelled slices)')
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
    return _single_pool(entries, [], volume, 'ISBI 2012 (labelled slices)')


def _lung(root: Path, params: LayoutParams) -> Listing:
    del params
    image_dir = require_dir(root / '2d_images', 'lung')
    entries, orphans = pair_folders(image_dir, require_dir(root / '2d_masks', 'lung'), name='lung')
    return _single_pool(entries, orphans, image_dir, 'the Kaggle lung CT set')


def _oct(root: Path, params: LayoutParams) -> Listing:
    image_dir = require_dir(root / 'images', 'oct')
    if (root / 'labels').is_dir():
        entries, orphans = pair_folders(image_dir, root / 'labels', name='oct')
    elif (root / 'boundaries').is_dir():
        entries, orphans = pair_folders(image_dir, root / 'boundaries', label_key='boundaries', name='oct')
    else:
        raise DataError(f'dataset \'oct\': neither {root / "labels"} (class maps) nor {root / "boundaries"} '
                        f'(boundary rows) exists; layout: {LAYOUTS["oct"]}')
    listing = _pools_from_lists(entries, image_dir, root, params, 'oct', required=False)
    listing.orphans = orphans
    return listing


def _folder(root: Path, params: LayoutParams) -> Listing:
    image_dir = require_dir(root / 'images', 'folder')
    fov_dir = root / 'fov'
    entries, orphans = pair_folders(image_dir, require_dir(root / 'masks', 'folder'),
                                    fov_dir=fov_dir if fov_dir.is_dir() else None, name='folder')
    listing = _pools_from_lists(entries, image_dir, root, params, 'folder', required=False)
    listing.orphans = orphans
    return listing


def _chase_db1(root: Path, params: LayoutParams) -> Listing:
    """CHASE_DB1: images and both observers' masks in one folder, paired by name."""
    if params.annotator not in CHASE_OBSERVERS:
        raise DataError(f'CHASE_DB1 has annotators 1 and 2 (_1stHO, _2ndHO masks), got annotator={params.annotator}')
    wanted = CHASE_OBSERVERS[params.annotator]
    images, labels = {}, {}
    for base, path in image_files_by_base(root).items():
        stem, underscore, observer = base.rpartition('_')
        if underscore and observer in CHASE_OBSERVERS.values():
            if observer == wanted:
                labels[stem] = path
        else:
            images[base] = path
    if not images:
        raise no_images_error('chase_db1', root)
    default_ext = next(iter(labels.values())).suffix if labels else '.png'
    entries = [Entry(id=stem, image=str(path), label=str(labels.get(stem, root / f'{stem}_{wanted}{default_ext}')))
               for stem, path in images.items()]
    orphans = [f'{path} (no image {stem}.* in {root} pairs with it)' for stem, path in labels.items()
               if stem not in images]
    return _single_pool(entries, orphans, root, 'CHASE_DB1')


def _stare(root: Path, params: LayoutParams) -> Listing:
    """STARE: the labelled images of stare-images/ with one observer's labels."""
    if params.annotator not in STARE_OBSERVERS:
        raise DataError(f'STARE has annotators 1 (labels-ah, Hoover) and 2 (labels-vk, Kouznetsova), '
                        f'got annotator={params.annotator}')
    folder, tag = STARE_OBSERVERS[params.annotator]
    image_dir, label_dir = require_dir(root / 'stare-images', 'stare'), require_dir(root / folder, 'stare')
    images = image_files_by_base(image_dir)
    if not images:
        raise no_images_error('stare', image_dir)
    labels, orphans = {}, []
    for base, path in image_files_by_base(label_dir).items():
        stem, dot, found_tag = base.rpartition('.')
        if dot and found_tag == tag:
            labels[stem] = path
        else:
            orphans.append(f'{path} (not named NAME.{tag}.ppm like the other labels of {label_dir})')
    if not labels:
        raise DataError(f'dataset \'stare\': no labels NAME.{tag}.ppm in {label_dir}; layout: {LAYOUTS["stare"]}')
    entries = [Entry(id=stem, image=str(images[stem]), label=str(path)) for stem, path in labels.items()
               if stem in images]
    orphans += [f'{path} (no image {stem}.* in {image_dir} pairs with it)' for stem, path in labels.items()
                if stem not in images]
    notes = []
    if len(images) > len(entries):
        notes.append(f'{len(images) - len(entries)} of the {len(images)} images in {image_dir} have no label in '
                     f'{label_dir} and are left out (STARE labels 20 of its 400 images)')
    return _single_pool(entries, orphans, f'{image_dir} with {label_dir}', 'STARE', notes)


DRISHTI_SPLITS = ('Training', 'Test')


def _drishti_root(root: Path) -> Path:
    """The folder holding Training/ and Test/: `root` itself or its Drishti-GS1_files/ (as distributed)."""
    for candidate in (root, root / 'Drishti-GS1_files'):
        if all((candidate / split).is_dir() for split in DRISHTI_SPLITS):
            return candidate
    raise DataError(f"dataset 'drishti_gs1': neither {root} nor {root / 'Drishti-GS1_files'} holds both "
                    f"Training/ and Test/; layout: {LAYOUTS['drishti_gs1']}")


def _drishti_images(split_dir: Path) -> Path:
    """The image folder of a Drishti-GS1 split: Images/, or its only sub-folder (some copies add
    one level, e.g. Images/ALL/)."""
    images = require_dir(split_dir / 'Images', 'drishti_gs1')
    if files_by_stem(images, IMAGE_EXTENSIONS):
        return images
    folders = sorted(p for p in images.iterdir() if p.is_dir() and not p.name.startswith('.'))
    if len(folders) != 1:
        raise DataError(f"dataset 'drishti_gs1': {images} holds no images and "
                        f"{'no sub-folder' if not folders else f'{len(folders)} sub-folders'} "
                        f"(expected the images there or in one sub-folder); layout: {LAYOUTS['drishti_gs1']}")
    return folders[0]


def _drishti_gs1(root: Path, params: LayoutParams) -> Listing:
    """Drishti-GS1: the official 50 Training / 51 Test images, each with its GT/NAME/ folder."""
    base = _drishti_root(root)
    names = {'train': params.train_split or 'Training', 'test': params.test_split or 'Test'}
    pools, orphans, sources = {}, [], {}
    for split, folder in names.items():
        split_dir = require_dir(base / folder, 'drishti_gs1')
        image_dir = _drishti_images(split_dir)
        images = files_by_stem(image_dir, IMAGE_EXTENSIONS)
        if not images:
            raise no_images_error('drishti_gs1', image_dir)
        truth = require_dir(split_dir / 'GT', 'drishti_gs1')
        pools[split] = [Entry(id=stem, image=str(path),
                              label=str(truth / stem / 'SoftMap' / f'{stem}_ODsegSoftmap.png'),
                              cup=str(truth / stem / 'SoftMap' / f'{stem}_cupsegSoftmap.png'),
                              cdr=str(truth / stem / f'{stem}_cdrValues.txt'))
                        for stem, path in images.items()]
        orphans += [f'{folder} (no image {folder.name}.* in {image_dir} pairs with it)'
                    for folder in sorted(truth.iterdir()) if folder.is_dir() and folder.name not in images]
        sources[split] = str(split_dir)
    return Listing(pools, orphans, sources=sources)


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
    'chase_db1': _chase_db1,
    'stare': _stare,
    'drishti_gs1': _drishti_gs1,
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

