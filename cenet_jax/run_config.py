"""The configuration stored with a run (`<workdir>/config.json`) against the one given now.

Resuming (`check_resume_config`): fields that change the shapes or the meaning of the saved
state (LOCKED_FIELDS) must equal the stored ones, else the run stops naming them; any other
change (steps, logging, evaluation cadence, learning rate, data path, ...) is allowed, appended
to `<workdir>/config_changes.jsonl` and written into config.json.

Inference (`inference_config`): the model, the input geometry (INFERENCE_DATA_FIELDS) and the
training augmentation (TRAINING_DATA_FIELDS, which decides the TTA views) come from the run's
config.json unless the command line overrides them; a given config whose model
differs from the run's is an error naming the fields. Scoring the run on another dataset
(`--config.data.name` other than the run's) is a dataset switch (`switch_dataset`): the fields
that describe a dataset (`data.config.DATASET_FIELDS`: split names, label threshold, inversion,
FOV, ...) come from the new dataset's preset, not from the run, unless the command line sets
them, and `data.cross_dataset` is set (a set without an official split is then tested whole).
The label classes are the run's: `data.num_classes` is what the model's output channels mean, so
a command line that changes it is an error (`check_run_classes`); masks stored with other raw
values are mapped to the run's classes with `data.class_values` (e.g. a disc-and-cup model on
REFUGE-style masks: `--config.data.class_values='(255, 128, 0)'`, background, rim, cup).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import ml_collections

from cenet_jax.config_utils import update_fields
from cenet_jax.data.config import DATASETS, FILE_DATASETS, SYNTHETIC_DATASETS, dataset_fields
from cenet_jax.data.layouts import LAYOUTS
from cenet_jax.errors import ConfigError

log = logging.getLogger('cenet_jax')

CONFIG_FILE = 'config.json'
CHANGES_FILE = 'config_changes.jsonl'
# Fields a resumed run must keep: they change parameter, optimizer-state or EMA shapes, or what
# the saved weights mean (model, input size and encoding, classes, batch, optimizer kind, EMA).
LOCKED_FIELDS = ('model', 'data.name', 'data.image_size', 'data.num_classes',
                 'data.class_values', 'data.normalization', 'data.channel_order', 'batch_size',
                 'optim.name', 'optim.param_groups', 'ema_decay')
# Model fields that change neither parameter names nor shapes: the compute dtype, the
# initialisation file, the convolution formulation (models/layers.py).
FREE_MODEL_FIELDS = ('model.dtype', 'model.pretrained', 'model.conv_impl')
# What inference takes from the run besides the model: how images were fed to the network.
INFERENCE_DATA_FIELDS = ('data.image_size', 'data.num_classes', 'data.normalization',
                         'data.channel_order')
# What the run's training showed the model (TTA runs only the views it applied: evaluation/tta.py).
TRAINING_DATA_FIELDS = ('data.augment', 'data.crop_size')


def _matches(key: str, fields: tuple[str, ...]) -> bool:
    return any(key == f or key.startswith(f + '.') for f in fields)


def is_locked(key: str) -> bool:
    """Whether a dotted config key may not change when resuming a run."""
    return _matches(key, LOCKED_FIELDS) and not _matches(key, FREE_MODEL_FIELDS)


def is_model_field(key: str) -> bool:
    """Whether a dotted key selects the network (its parameter names and shapes)."""
    return _matches(key, ('model',)) and not _matches(key, FREE_MODEL_FIELDS)


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; empty mappings are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def as_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The config as plain JSON values (tuples become lists), as config.json stores it."""
    return json.loads(config.to_json_best_effort())


def differences(stored: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (stored value, given value)} for every field both have and that differs
    (a field only one side has comes from another version of the code: not compared)."""
    a, b = flatten(stored), flatten(given)
    return {k: (a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]}


def _describe(diffs: Mapping[str, tuple[Any, Any]], stored: str, given: str) -> str:
    return '\n'.join(f'  {k}: {json.dumps(a)} {stored}, {json.dumps(b)} {given}'
                     for k, (a, b) in diffs.items())


def _refuse_changes(diffs: Mapping[str, tuple[Any, Any]], refused: Callable[[str], bool],
                    what: str, labels: tuple[str, str], advice: str) -> None:
    """ConfigError listing the fields of `diffs` for which `refused(field)`, if any."""
    bad = {k: v for k, v in diffs.items() if refused(k)}
    if bad:
        raise ConfigError(f'{what}:\n{_describe(bad, *labels)}\n{advice}')


def read_run_config(workdir: str | Path) -> dict[str, Any] | None:
    """The JSON of `<workdir>/config.json`, or None when the workdir has none."""
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f'{path}: not a readable JSON config ({err}); it is written by train.py '
                          'at the start of a run') from err


def write_run_config(config: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    """Write `<workdir>/config.json` atomically (a temporary file, then a rename)."""
    path = Path(workdir) / CONFIG_FILE
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    tmp.write_text(config.to_json_best_effort(indent=2) + '\n')
    os.replace(tmp, path)
    return path


def check_resume_config(config: ml_collections.ConfigDict, workdir: str | Path, *,
                        write: bool = True) -> dict[str, tuple[Any, Any]]:
    """Stop (ConfigError) if `config` changes a locked field of the run in `workdir`; record
    the other changes in config_changes.jsonl and config.json. Returns the changes."""
    workdir = Path(workdir)
    stored = read_run_config(workdir)
    if stored is None:
        if write:
            write_run_config(config, workdir)
        return {}
    diffs = differences(stored, as_json(config))
    _refuse_changes(diffs, is_locked,
                    f'{workdir} holds a run whose {CONFIG_FILE} differs from this config in fields '
                    'that change the model or the meaning of its checkpoints',
                    (f'in {CONFIG_FILE}', 'now'),
                    'Resume with the same values, or train this config in a new --workdir.')
    if diffs:
        log.warning('resuming %s with changed settings (recorded in %s):\n%s', workdir,
                    CHANGES_FILE, _describe(diffs, 'before', 'now'))
        if write:
            entry = {'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                     'changes': {k: {'from': a, 'to': b} for k, (a, b) in diffs.items()}}
            with open(workdir / CHANGES_FILE, 'a') as f:
                f.write(json.dumps(entry) + '\n')
            write_run_config(config, workdir)
    return diffs


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the configs use; objects to ConfigDicts."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return ml_collections.ConfigDict({k: _tuples(v) for k, v in value.items()})
    return value


def _short(value: Any) -> str:
    """A config value as the log shows it (ConfigDicts as plain dicts)."""
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    return repr(value)


def switch_dataset(config: ml_collections.ConfigDict, run_dataset: str,
                   overrides: Mapping[str, Any]) -> list[str]:
    """Evaluate on `config.data.name` a model trained on `run_dataset` (in place): each of
    `DATASET_FIELDS` takes the new dataset's default / preset value unless the command line
    (`overrides`) set it, and `data.cross_dataset` becomes True. Returns the notes saying which
    fields came from the new dataset, the run and the command line. A file dataset needs
    `data.root` from the command line (the run's root holds the other dataset)."""
    name = str(config.data.name)
    if name not in DATASETS:
        raise ConfigError(f'--config.data.name={name!r} is not a dataset; choose one of {", ".join(DATASETS)}')
    if name in FILE_DATASETS and 'data.root' not in overrides:
        raise ConfigError(f'evaluating this run (trained on {run_dataset!r}) on dataset {name!r}: set '
                          f'--config.data.root to its folder, laid out as: {LAYOUTS[name]}')
    fresh = dataset_fields(name)
    fresh['cross_dataset'] = True
    from_dataset, from_command_line = [], []
    for field, value in fresh.items():
        key = f'data.{field}'
        if key in overrides or any(k.startswith(key + '.') for k in overrides):
            from_command_line.append(f'{key}={_short(config.data.get(field))}')
            if key in overrides:
                continue
            nested = {k: v for k, v in overrides.items() if k.startswith(key + '.')}
            update_fields(config, {key: value})
            update_fields(config, nested)   # the command line's part of a nested field wins
            continue
        before = config.data.get(field)
        update_fields(config, {key: value.copy_and_resolve_references()
                               if isinstance(value, ml_collections.ConfigDict) else value})
        if _short(before) != _short(value) and (field != 'synthetic' or name in SYNTHETIC_DATASETS):
            from_dataset.append(f'{key}={_short(value)} (the run had {_short(before)})')
    kept = [f'{key}={_short(config.data[key.split(".", 1)[1]])}' for key in INFERENCE_DATA_FIELDS]
    notes = [f'dataset switch: the run was trained on {run_dataset!r}, scoring {name!r} (cross-dataset)',
             f'from the run (model and input geometry): model.*, {", ".join(kept)}',
             f'from the {name!r} dataset\'s defaults and preset: ' + (', '.join(from_dataset) or
                                                                       'no field differs from the run')]
    if from_command_line:
        notes.append(f'from the command line: {", ".join(from_command_line)}')
    return notes


def check_run_classes(stored: Mapping[str, Any], overrides: Mapping[str, Any], workdir: str | Path) -> None:
    """ConfigError if the command line sets `data.num_classes` other than the run's: the model's
    output channels mean the run's classes (a 3-class disc-and-cup model scored as binary would
    call every disc pixel rim and score no cup, without a word)."""
    run_classes = flatten(stored).get('data.num_classes')
    if 'data.num_classes' not in overrides or run_classes is None:
        return
    given = overrides['data.num_classes']
    if int(given) != int(run_classes):
        raise ConfigError(
            f'--config.data.num_classes={given}: the run in {workdir} was trained with data.num_classes='
            f'{run_classes}, the classes its model\'s output stands for, so it is scored with those. Omit '
            f'--config.data.num_classes and map the masks\' raw values to the run\'s classes in order with '
            f'--config.data.class_values (one raw value per class; e.g. \'(255, 128, 0)\' for masks that store '
            f'background 255, rim 128 and cup 0)')


def inference_config(workdir: str | Path, given: ml_collections.ConfigDict | None,
                     overrides: Mapping[str, Any]) -> tuple[ml_collections.ConfigDict, list[str]]:
    """(config for evaluation / prediction, notes saying what came from where).

    Without `given`, the run's config.json plus the command-line `overrides`. With `given`, that
    config whose model must equal the run's (else ConfigError naming the fields) and whose
    INFERENCE_DATA_FIELDS are taken from the run unless overridden. A `data.name` other than
    the run's switches dataset (`switch_dataset`); with `given`, only when the command line set it
    (a config file's own dataset fields are taken as they are).
    """
    path = Path(workdir) / CONFIG_FILE
    stored = read_run_config(workdir)
    if stored is None:
        if given is None:
            raise ConfigError(f'{path} not found: this workdir has no stored config (was it '
                              'made by train.py?); pass --config FILE with the training config')
        return given, [f'{path} not found: using the given --config as it is']
    check_run_classes(stored, overrides, workdir)
    run_dataset = str(flatten(stored).get('data.name', ''))
    if given is None:
        config = update_fields(_tuples(stored), overrides)
        notes = [f'config from {path}' + (
            f' with command-line overrides {", ".join(sorted(overrides))}' if overrides else '')]
        if run_dataset and str(config.data.name) != run_dataset:
            notes += switch_dataset(config, run_dataset, overrides)
        return config, notes
    diffs = differences(stored, as_json(given))
    _refuse_changes(diffs, is_model_field,
                    f'the model of --config differs from the run in {workdir} ({path})',
                    ('in the run', 'given'),
                    'Omit --config to use the run\'s config.json, or evaluate a workdir trained '
                    'with this model.')
    flat_stored, config, notes = flatten(stored), given.copy_and_resolve_references(), []
    training = [k for k in diffs if _matches(k, TRAINING_DATA_FIELDS)]
    with config.unlocked():
        for key in INFERENCE_DATA_FIELDS + tuple(training):
            if key in overrides:
                if key in diffs:
                    notes.append(f'{key}={overrides[key]!r} from the command line (the run used '
                                 f'{flat_stored.get(key)!r})')
            elif key in diffs and key in flat_stored:
                update_fields(config, {key: _tuples(flat_stored[key])})
                notes.append(f'{key}={_tuples(flat_stored[key])!r} from {path}')
    if run_dataset and 'data.name' in overrides and str(config.data.name) != run_dataset:
        notes += switch_dataset(config, run_dataset, overrides)
    return config, notes


def resolve_inference_config(workdir: str | None, weights: str | None,
                             given: ml_collections.ConfigDict | None,
                             overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """The config of eval.py / export: a converted `weights` file needs the given --config; a
    workdir's comes from its config.json (see `inference_config`), notes logged."""
    if not workdir and not weights:
        raise ConfigError('pass --workdir (a training run) or --weights (a converted file)')
    if weights:
        if given is None:
            raise ConfigError('--weights needs --config (the model and data it was made for)')
        return given
    config, notes = inference_config(workdir, given, overrides)
    for note in notes:
        log.info('%s', note)
    return config
