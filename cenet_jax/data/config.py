"""The data config: every field the data package reads, with defaults, and per-dataset presets.

`default_data_config()` is the synthetic-vessel setup the demo uses; `data_config_for(name)`
starts from it and applies `DATASET_PRESETS[name]` (label conventions, split names, crop, which
augmentations make sense). `DATASET_FIELDS` are the fields that describe a dataset rather than
the model's input: evaluating a run on another dataset takes them from that dataset
(`dataset_fields`). The config is read in one place (`build_source`, the pipeline) and turned
into plain frozen specs that pickle into grain workers.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from cenet_jax.config_utils import update_fields

from cenet_jax.data.labels import LabelSpec
from cenet_jax.data.layouts import LayoutParams
from cenet_jax.data.records import DecodeSpec
from cenet_jax.data.transforms import AugmentSpec

SYNTHETIC_DATASETS = ('synthetic_vessels', 'synthetic_disc', 'synthetic_oct')
FILE_DATASETS = ('drive', 'origa', 'messidor', 'rimone', 'lung', 'isbi', 'isbi_tiff', 'oct', 'folder',
                 'chase_db1', 'stare', 'drishti_gs1')
DATASETS = SYNTHETIC_DATASETS + FILE_DATASETS

# Fields that differ from `default_data_config()` per dataset (nested keys as 'augment.vflip').
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    'synthetic_vessels': {},
    'synthetic_disc': {},
    'synthetic_oct': {'num_classes': 11, 'augment.vflip': False, 'augment.transpose': False},
    'drive': {'train_split': 'training', 'val_split': '', 'test_split': 'test'},
    'origa': {'train_split': 'Set_A.txt', 'val_split': '', 'test_split': 'Set_B.txt', 'disc_crop_size': 800},
    'messidor': {'train_split': 'train.txt', 'val_split': '', 'test_split': 'test.txt', 'disc_crop_size': 800},
    'rimone': {'train_split': 'train_files.txt', 'val_split': '', 'test_split': 'test_files.txt'},
    'lung': {'high_bit_depth': 'minmax'},
    'isbi': {'invert_label': True},
    'isbi_tiff': {'invert_label': True},
    'oct': {'num_classes': 11, 'augment.vflip': False, 'augment.transpose': False},
    'folder': {},
    # No official split and no FOV masks: the FOV is derived from each image; CHASE_DB1's masks
    # come as 0/1 or 0/255 PNGs depending on the copy, so any non-zero value is a vessel.
    'chase_db1': {'label_threshold': 1, 'fov': 'auto'},
    'stare': {'fov': 'auto'},
    # Optic disc and cup (background / rim / cup) from the 4 experts' soft maps; the official
    # 50 / 51 split; the paper's 800 x 800 crop around the brightest point, scored on the whole image.
    'drishti_gs1': {'train_split': 'Training', 'val_split': '', 'test_split': 'Test', 'num_classes': 3,
                    'disc_crop_size': 800, 'disc_locator': 'blob'},
}
# Fields that describe a dataset (split files and fractions, label conventions, decoding, FOV)
# rather than the model's input: a run evaluated on another dataset takes these from it.
DATASET_FIELDS = ('train_split', 'val_split', 'test_split', 'val_fraction', 'test_fraction', 'num_folds',
                  'fold', 'split_seed', 'foreground_value', 'label_threshold', 'invert_label', 'class_values',
                  'annotator', 'mat_key', 'high_bit_depth', 'disc_crop_size', 'disc_crop_sigma', 'disc_locator', 'fov',
                  'expert_agreement', 'cross_dataset', 'synthetic')
# Datasets whose labels hold only inside the FOV: an OCT column without all its boundaries has
# no true class map (its FOV is the fully annotated columns). The loss leaves the rest out by
# default there (loss.mask='auto'); elsewhere outside the FOV is labelled background.
LABELLED_INSIDE_FOV_ONLY = ('oct', 'synthetic_oct')


def default_data_config() -> ml_collections.ConfigDict:
    """All data fields with their defaults: the synthetic retinal-vessel set at 448 x 448."""
    cfg = ml_collections.ConfigDict()
    cfg.name = 'synthetic_vessels'   # one of DATASETS
    cfg.root = ''                    # dataset folder for real datasets ('' = none)
    cfg.image_size = (448, 448)      # model input (H, W), multiples of 32
    cfg.crop_size = (0, 0)           # > 0: train on random (H, W) patches of the image_size image
                                     #      (multiples of 32, >= 192 for CE-Net's RMP); (0, 0) = whole
    cfg.num_classes = 2              # 2 = binary (labels {0, 1}, model K = 1); OCT: 11
    cfg.normalization = 'reference'  # 'reference' (x/255*3.2-1.6) | 'imagenet' (mean/std on [0, 1])
    cfg.channel_order = 'rgb'        # 'bgr' = the reference code's OpenCV channel order

    # Splits: names of the official split files / folders, and seeded holdouts where there are none.
    cfg.train_split = 'train.txt'    # DRIVE: folder name; ORIGA: Set_A.txt; folder/OCT: optional list file
    cfg.val_split = 'val.txt'        # optional list file; '' or absent = holdout of train
    cfg.test_split = 'test.txt'
    cfg.val_fraction = 0.1           # val = this seeded fraction of train; 0 = no val split (never test)
    cfg.test_fraction = 0.2          # single-pool datasets (lung, ISBI, folders without lists): test share
    cfg.num_folds = 0                # > 0: k-fold cross-validation of single-pool datasets ...
    cfg.fold = 0                     # ... and this fold is the test split
    cfg.split_seed = 0               # seed of every holdout / fold assignment
    cfg.cross_dataset = False        # True: the model was trained on another dataset (eval.py sets it
                                     # when data.name differs from the run's): a set without an
                                     # official split is tested whole, with no holdout

    # Label conventions.
    cfg.foreground_value = -1        # binary: foreground = (raw == this); -1 = raw >= label_threshold
    cfg.label_threshold = 128        # binary threshold on raw 8-bit label values (1 for {0, 1} masks)
    cfg.invert_label = False         # swap foreground / background (ISBI: membranes are stored as 0)
    cfg.class_values = ()            # multi-class: raw value of class 0, 1, ...; () = raw values are ids
    cfg.annotator = 1                # DRIVE test: 1st_manual (1) or 2nd_manual (2); RIM-ONE expert number;
                                     # CHASE_DB1: _1stHO (1) / _2ndHO (2); STARE: labels-ah (1) / labels-vk (2)
    cfg.mat_key = ''                 # variable name inside .mat label / boundary files ('' = the only one)
    cfg.expert_agreement = 3         # soft-map labels (Drishti-GS1): ground truth = pixels marked by at
                                     # least this many of the 4 experts (3 = majority of the 4)

    # Decoding.
    cfg.high_bit_depth = 'range'     # 16-bit / float images to uint8: 'range' (dtype range) | 'minmax'
    cfg.disc_crop_size = 0           # > 0: crop this many pixels around the brightest point (ORIGA 800)
    cfg.disc_crop_sigma = 50.0       # Gaussian smoothing (pixels) before finding the brightest point
    cfg.disc_locator = 'brightest'   # how the crop finds the disc: 'brightest' (the paper) | 'blob'
                                     # (a bright red blob inside the FOV; data/disc_crop.py)
    cfg.fov = 'file'                 # field of view: 'file' = the dataset's FOV masks (DRIVE mask/, folder
                                     # fov/), else the whole image; 'auto' = those, else derived from the
                                     # fundus image (data/fov.py); 'none' = always the whole image

    # Bad input.
    cfg.validation = 'full'          # 'full' = decode every record before training; 'header' = faster
    cfg.on_bad_record = 'error'      # 'error' | 'skip' (drop bad records with a warning)

    # Loader.
    cfg.cache_decoded = False        # keep decoded records in memory (small datasets: DRIVE 20 MB)
    cfg.num_workers = 0              # grain worker processes (0 = in-process threads)
    cfg.prefetch = 2                 # batches buffered per worker process
    cfg.read_threads = 2             # threads per process that decode and augment records

    cfg.augment = ml_collections.ConfigDict()
    cfg.augment.enabled = True
    cfg.augment.hflip = True
    cfg.augment.vflip = True
    cfg.augment.transpose = True     # diagonal flip; only applied when image_size is square
    cfg.augment.affine_prob = 0.5    # probability of the scale / shift warp
    cfg.augment.scale = (0.9, 1.1)
    cfg.augment.aspect = (1.0, 1.0)  # the reference code also jitters the aspect ratio: (0.9, 1.1)
    cfg.augment.shift = 0.1          # fraction of the image size
    cfg.augment.hsv_prob = 0.5
    cfg.augment.hue_shift = 60.0     # degrees (the reference's ±30 OpenCV hue units)
    cfg.augment.saturation_shift = 5.0
    cfg.augment.value_shift = 15.0

    cfg.synthetic = ml_collections.ConfigDict()
    cfg.synthetic.num_train = 200
    cfg.synthetic.num_val = 20
    cfg.synthetic.num_test = 20
    cfg.synthetic.size = (0, 0)      # generated (H, W); (0, 0) = image_size
    cfg.synthetic.seed = 0
    return cfg


def apply_preset(cfg: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    """Set `cfg.name` and the preset fields of dataset `name` on a data config (in place, returned)."""
    if name not in DATASET_PRESETS:
        raise ValueError(f'unknown dataset {name!r}; choose one of {DATASETS}')
    update_fields(cfg, {'name': name, **DATASET_PRESETS[name]})
    return cfg


def data_config_for(name: str, root: str = '', **overrides: Any) -> ml_collections.ConfigDict:
    """Default data config with the preset of dataset `name`, its `root`, and top-level overrides."""
    cfg = apply_preset(default_data_config(), name)
    cfg.root = root
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def dataset_fields(name: str) -> dict[str, Any]:
    """{field: value} of `DATASET_FIELDS` for dataset `name`: the defaults with its preset."""
    cfg = data_config_for(name)
    return {field: cfg[field] for field in DATASET_FIELDS}


def label_spec(cfg: ml_collections.ConfigDict) -> LabelSpec:
    """The label conventions of a data config as a plain `LabelSpec`."""
    return LabelSpec(num_classes=int(cfg.num_classes), foreground_value=int(cfg.foreground_value),
                     threshold=int(cfg.label_threshold), invert=bool(cfg.invert_label),
                     class_values=tuple(int(v) for v in cfg.class_values))


def decode_spec(cfg: ml_collections.ConfigDict) -> DecodeSpec:
    """How to decode records of a data config, as a plain `DecodeSpec`."""
    return DecodeSpec(label=label_spec(cfg), high_bit_depth=str(cfg.high_bit_depth),
                      disc_crop_size=int(cfg.disc_crop_size), disc_crop_sigma=float(cfg.disc_crop_sigma),
                      mat_key=str(cfg.mat_key), fov=str(cfg.get('fov', 'file')),
                      expert_agreement=int(cfg.get('expert_agreement', 3)),
                      disc_locator=str(cfg.get('disc_locator', 'brightest')))


def layout_params(cfg: ml_collections.ConfigDict) -> LayoutParams:
    """Split names and annotator of a data config, as plain `LayoutParams`."""
    return LayoutParams(train_split=str(cfg.train_split), val_split=str(cfg.val_split),
                        test_split=str(cfg.test_split), annotator=int(cfg.annotator))


def augment_spec(cfg: ml_collections.ConfigDict) -> AugmentSpec:
    """The augmentation settings of a data config, as a plain `AugmentSpec`."""
    a = cfg.augment
    return AugmentSpec(enabled=bool(a.enabled), hflip=bool(a.hflip), vflip=bool(a.vflip),
                       transpose=bool(a.transpose), affine_prob=float(a.affine_prob),
                       scale=tuple(float(v) for v in a.scale), aspect=tuple(float(v) for v in a.aspect),
                       shift=float(a.shift), hsv_prob=float(a.hsv_prob), hue_shift=float(a.hue_shift),
                       saturation_shift=float(a.saturation_shift), value_shift=float(a.value_shift))


def crop_hw(cfg: ml_collections.ConfigDict) -> tuple[int, int] | None:
    """Training patch (H, W) of a data config, or None for whole images; checked to fit."""
    size = tuple(int(v) for v in cfg.get('crop_size', (0, 0)))
    if size == (0, 0):
        return None
    full = image_hw(cfg)
    if len(size) != 2 or min(size) <= 0 or size[0] > full[0] or size[1] > full[1]:
        raise ValueError(f'data.crop_size must be (0, 0) or a positive (H, W) no larger than '
                         f'data.image_size {full}, got {cfg.crop_size}')
    return size  # type: ignore[return-value]


def image_hw(cfg: ml_collections.ConfigDict) -> tuple[int, int]:
    """Model input (H, W) of a data config, checked to be two positive ints."""
    size = tuple(int(v) for v in cfg.image_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f'data.image_size must be (H, W) with positive sizes, got {cfg.image_size}')
    return size  # type: ignore[return-value]
