"""Evaluating a run on another dataset (run_config.switch_dataset): the new dataset's split names,
label conventions and FOV setting, the run's model and input geometry, the command line over
both, and notes that say which field came from where. Only config.json is read: no training."""
import pytest

from cenet_jax import run_config
from cenet_jax.errors import ConfigError
from configs import demo, drishti_cpu, drive_cpu


def stored_run(tmp_path_factory, module, root: str):
    """A workdir holding the config.json `train.py --config configs/<module>.py` writes."""
    workdir = tmp_path_factory.mktemp(module.__name__.rsplit('.', 1)[-1])
    config = module.get_config()
    config.data.root = root
    run_config.write_run_config(config, workdir)
    return workdir


@pytest.fixture(scope='module')
def drive_run(tmp_path_factory):
    return stored_run(tmp_path_factory, drive_cpu, '/data/DRIVE')


def test_switch_takes_the_new_datasets_presets_and_keeps_the_runs_geometry(drive_run):
    config, notes = run_config.inference_config(drive_run, None, {'data.name': 'folder', 'data.root': '/d'})
    data = config.data
    assert (data.train_split, data.val_split, data.test_split) == ('train.txt', 'val.txt', 'test.txt')
    assert data.cross_dataset is True and data.fov == 'file' and data.label_threshold == 128
    assert tuple(data.image_size) == (576, 576) and data.normalization == 'reference'
    assert config.model.architecture == 'cenet' and config.eval.task == 'vessel'
    text = '\n'.join(notes)
    assert "the run was trained on 'drive', scoring 'folder'" in text
    assert 'from the run (model and input geometry): model.*, data.image_size=(576, 576)' in text
    assert "data.test_split='test.txt' (the run had 'test')" in text
    assert "data.train_split='train.txt' (the run had 'training')" in text


def test_chase_db1_preset_and_the_command_line_wins(drive_run):
    overrides = {'data.name': 'chase_db1', 'data.root': '/c', 'data.annotator': 2, 'data.fov': 'file'}
    config, notes = run_config.inference_config(drive_run, None, overrides)
    assert config.data.label_threshold == 1 and config.data.annotator == 2 and config.data.fov == 'file'
    text = '\n'.join(notes)
    assert "from the command line: data.annotator=2, data.fov='file'" in text
    assert 'data.label_threshold=1 (the run had 128)' in text
    assert "data.fov='auto'" not in text


def test_same_dataset_is_no_switch(drive_run):
    config, notes = run_config.inference_config(drive_run, None, {'data.root': '/elsewhere'})
    assert config.data.test_split == 'test' and config.data.cross_dataset is False
    assert not any('dataset switch' in note for note in notes)


def test_switch_needs_a_known_dataset_and_the_root_of_a_file_dataset(drive_run):
    with pytest.raises(ConfigError, match=r"on dataset 'stare': set --config.data.root .*stare-images/im0001\.ppm"):
        run_config.inference_config(drive_run, None, {'data.name': 'stare'})
    with pytest.raises(ConfigError, match=r"data.name='chase' is not a dataset; choose one of .*chase_db1"):
        run_config.inference_config(drive_run, None, {'data.name': 'chase', 'data.root': '/c'})


def test_given_config_switches_only_when_the_command_line_names_the_dataset(tmp_path):
    trained = demo.get_config()
    run_config.write_run_config(trained, tmp_path)
    given = demo.get_config()
    given.data.name, given.data.root, given.data.test_split = 'folder', '/f', 'mine.txt'
    config, notes = run_config.inference_config(
        tmp_path, given, {'data.name': 'folder', 'data.root': '/f', 'data.test_split': 'mine.txt'})
    assert config.data.cross_dataset is True and config.data.test_split == 'mine.txt'
    assert config.data.train_split == 'train.txt' and any('dataset switch' in n for n in notes)
    given = demo.get_config()     # a config file for another dataset: its own fields as they are
    given.data.name = 'synthetic_vessels'
    config, notes = run_config.inference_config(tmp_path, given, {})
    assert config.data.cross_dataset is False and not any('dataset switch' in n for n in notes)


@pytest.fixture(scope='module')
def drishti_run(tmp_path_factory):
    return stored_run(tmp_path_factory, drishti_cpu, '/data/Drishti-GS1_files')


def test_a_disc_cup_run_on_a_folder_of_cropped_images_skips_the_crop_and_keeps_three_classes(drishti_run):
    """Item 4 of issue 26: a folder of optic-nerve-head crops takes the folder's defaults (no
    disc crop), the run's three classes and task; 0/1/2 masks are read as class ids."""
    config, notes = run_config.inference_config(drishti_run, None, {'data.name': 'folder', 'data.root': '/onh'})
    data = config.data
    assert data.disc_crop_size == 0 and data.num_classes == 3 and tuple(data.class_values) == ()
    assert config.model.num_classes == 3 and config.eval.task == 'disc_cup' and data.cross_dataset is True
    text = '\n'.join(notes)
    assert 'data.disc_crop_size=0 (the run had 800)' in text
    assert 'from the run (model and input geometry): model.*, data.image_size=(256, 256), data.num_classes=3' in text
    refuge = {'data.name': 'folder', 'data.root': '/onh', 'data.class_values': (255, 128, 0)}
    config, notes = run_config.inference_config(drishti_run, None, refuge)
    assert tuple(config.data.class_values) == (255, 128, 0) and config.data.num_classes == 3
    assert 'from the command line: data.class_values=(255, 128, 0)' in '\n'.join(notes)


@pytest.mark.parametrize('classes', [2, 4])
def test_the_command_line_cannot_change_the_runs_classes(drishti_run, classes):
    with pytest.raises(ConfigError, match=rf'--config.data.num_classes={classes}: the run in .* was trained with '
                                          r'data.num_classes=3.*--config.data.class_values'):
        run_config.inference_config(drishti_run, None, {'data.name': 'folder', 'data.root': '/onh',
                                                        'data.num_classes': classes})
    config, _ = run_config.inference_config(drishti_run, None, {'data.num_classes': 3})   # the run's own: fine
    assert config.data.num_classes == 3
