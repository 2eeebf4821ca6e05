"""Failure modes a user meets: clean CLI errors (exit status 2), damaged checkpoints, and
configs that drift between runs; each test checks that nothing on disk was lost."""
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cenet_jax import cli, parallel, run_config
from cenet_jax.checkpoint import Checkpoints
from cenet_jax.data.errors import DataError
from cenet_jax.errors import CenetError, CheckpointError, ConfigError
from cenet_jax.evaluation.run import load_variables_for_eval
from cenet_jax.training import loop
from configs import drive
from tests.data.fakes import make_drive
from tests.training.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


# Every run of this module trains on one device (tests of the loop, not of the sharding).
pytestmark = pytest.mark.usefixtures('one_device_module')


def run_config_of_the_fixture():
    """The training command of the shared run: seed 7 (as `--config.seed=7`, a field the compiled
    step does not see, so the step is the one other tests of the loop compile), checkpoints at 2
    and 4, best at 4."""
    config = tiny_config(num_train_steps=4, checkpoint_every_steps=2, eval_every_steps=4,
                         log_every_steps=2)
    config.seed = 7
    config.data.synthetic.num_val = 2
    return config


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('run')
    loop.train_and_evaluate(run_config_of_the_fixture(), workdir)
    return workdir


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of the shared run, free to damage."""
    return Path(shutil.copytree(trained_run, tmp_path / 'run'))


def snapshot(folder: Path) -> dict[str, int]:
    """{relative path: size} of every file under `folder`: to show that nothing was lost."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob('*') if p.is_file()}


def truncate_state_files(step_dir: Path) -> None:
    """Damage a checkpoint as a killed copy or a full disk does: cut its array files short."""
    files = [p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd']
    assert files, step_dir
    for path in files:
        with open(path, 'r+b') as f:
            f.truncate(path.stat().st_size // 3)


def run_reporting(fn, capsys):
    """(exit status, stderr) of `fn` run through the entry points' error reporting."""
    status = cli.report_errors(fn)
    return status, capsys.readouterr().err


# ------------------------------------------------------------------ clean CLI errors

def test_project_errors_print_the_message_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)

    def fail():
        raise DataError('/data/x.tif: truncated file; expected a readable image')

    status, err = run_reporting(fail, capsys)
    assert status == 2 and err.startswith('error: /data/x.tif: truncated file')
    assert 'Traceback' not in err and '--traceback' in err
    with pytest.raises(DataError):
        cli.report_errors(fail, show_traceback=True)
    monkeypatch.setenv(cli.TRACEBACK_ENV, '1')
    with pytest.raises(DataError):
        cli.report_errors(fail)
    with pytest.raises(ZeroDivisionError):   # unexpected errors keep their traceback
        cli.report_errors(lambda: 1 / 0)


@pytest.mark.parametrize('damage, expected', [
    ('truncated_image', '22_training.tif'),
    ('missing_label', '22_training'),
    ('label_of_wrong_size', '22_manual1.gif'),
])
def test_train_on_a_damaged_drive_copy_names_the_file(tmp_path, capsys, damage, expected):
    root = tmp_path / 'DRIVE'
    make_drive(root)
    image = root / 'training' / 'images' / '22_training.tif'
    label = root / 'training' / '1st_manual' / '22_manual1.gif'
    if damage == 'truncated_image':
        image.write_bytes(image.read_bytes()[:200])
    elif damage == 'missing_label':
        label.unlink()
    else:
        from PIL import Image
        Image.fromarray(np.zeros((10, 12), np.uint8)).save(label)
    config = drive.get_config()
    config.data.root = str(root)
    status, err = run_reporting(lambda: loop.train_and_evaluate(config, tmp_path / 'run'), capsys)
    assert status == 2, err
    assert err.startswith('error: ') and expected in err and 'Traceback' not in err


def test_train_cli_without_data_exits_2_with_the_message_alone(tmp_path):
    run = subprocess.run([sys.executable, 'train.py', '--config', 'configs/oct.py',
                          '--workdir', str(tmp_path / 'oct')], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert '--config.data.root' in run.stderr and 'Traceback' not in run.stderr


def test_eval_with_a_non_weights_file_exits_2(tmp_path, capsys):
    junk = tmp_path / 'notes.msgpack'
    junk.write_text('not weights')
    mesh = parallel.make_mesh()
    status, err = run_reporting(lambda: load_variables_for_eval(
        tiny_config(), mesh, workdir=None, weights=str(junk)), capsys)
    assert status == 2 and 'not a cenet-jax weights file' in err and str(junk) in err
    assert junk.read_text() == 'not weights'


# ------------------------------------------------------------------ damaged checkpoints

def test_resume_skips_a_damaged_newest_checkpoint_and_keeps_it(run_copy, caplog):
    truncate_state_files(run_copy / 'checkpoints' / 'latest' / '4')
    damaged_files = snapshot(run_copy / 'checkpoints' / 'latest' / '4')
    config = run_config_of_the_fixture()
    config.log_every_steps = 1          # a safe change: allowed and recorded
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        state = loop.train_and_evaluate(config, run_copy)
    assert int(state.step) == 4
    assert 'latest/4 cannot be used' in caplog.text and 'moved the damaged checkpoint' in caplog.text
    moved = list((run_copy / 'checkpoints' / 'damaged').glob('latest-4-*'))
    assert len(moved) == 1 and snapshot(moved[0]) == damaged_files   # kept as it was
    ckpt = Checkpoints(run_copy, read_only=True)   # the new step 4 is a good one
    assert sorted(ckpt.latest.all_steps()) == [2, 4]
    ckpt.close()
    records = [json.loads(line) for line in (run_copy / run_config.CHANGES_FILE).open()]
    assert records[-1]['changes'] == {'log_every_steps': {'from': 2, 'to': 1}}
    assert json.loads((run_copy / 'config.json').read_text())['log_every_steps'] == 1


def test_resume_with_no_restorable_checkpoint_is_an_error_and_moves_nothing(run_copy, capsys):
    for step in (2, 4):
        truncate_state_files(run_copy / 'checkpoints' / 'latest' / str(step))
    before = snapshot(run_copy)
    status, err = run_reporting(
        lambda: loop.train_and_evaluate(run_config_of_the_fixture(), run_copy), capsys)
    assert status == 2, err
    assert 'no checkpoint tried under' in err and 'latest/4' in err and 'latest/2' in err
    assert 'new --workdir' in err
    assert snapshot(run_copy) == before


def test_eval_falls_back_from_a_damaged_best_to_the_newest_readable(run_copy, caplog):
    best_steps = [p for p in (run_copy / 'checkpoints' / 'best').iterdir() if p.name.isdigit()]
    assert [p.name for p in best_steps] == ['4']
    truncate_state_files(best_steps[0])
    before = snapshot(run_copy)
    config, _ = run_config.inference_config(run_copy, None, {})
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        _, variables, source = load_variables_for_eval(
            config, parallel.make_mesh(), workdir=run_copy, checkpoint='best')
    assert source.endswith('latest step 4'), source
    assert 'best/4 cannot be used' in caplog.text
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(variables)))
    assert snapshot(run_copy) == before


def test_eval_without_checkpoints_exits_2(tmp_path, capsys):
    status, err = run_reporting(lambda: load_variables_for_eval(
        tiny_config(), parallel.make_mesh(), workdir=tmp_path), capsys)
    assert status == 2 and 'no checkpoints in' in err and 'train first' in err
    assert not (tmp_path / 'checkpoints').exists()   # evaluation creates nothing


# ------------------------------------------------------------------ configs that drift

def test_eval_takes_model_and_geometry_from_the_run(trained_run):
    given = tiny_config()              # the config file without the training overrides
    given.data.image_size = (448, 448)
    config, notes = run_config.inference_config(trained_run, given, {})
    assert tuple(config.data.image_size) == (64, 64)
    assert any('data.image_size' in n and 'config.json' in n for n in notes), notes
    _, variables, source = load_variables_for_eval(   # no opt_state is restored
        config, parallel.make_mesh(), workdir=trained_run, checkpoint='latest')
    assert source.endswith('latest step 4') and set(variables) == {'params', 'batch_stats'}

    given.data.image_size = (96, 96)   # as absl applies --config.data.image_size=(96,96)
    config, notes = run_config.inference_config(trained_run, given, {'data.image_size': (96, 96)})
    assert tuple(config.data.image_size) == (96, 96) and 'command line' in notes[0]
    config, _ = run_config.inference_config(trained_run, None, {'data.root': '/elsewhere'})
    assert config.data.root == '/elsewhere' and config.seed == 7
    assert tuple(config.model.context) == ('dac',)


def test_eval_config_with_another_model_is_an_error_naming_the_fields(trained_run):
    given = tiny_config()
    given.model.context = ()           # configs/demo.py:variant=backbone
    with pytest.raises(ConfigError, match=r'model\.context') as err:
        run_config.inference_config(trained_run, given, {})
    assert str(trained_run) in str(err.value) and 'Omit --config' in str(err.value)


def test_resume_with_another_model_stops_before_any_work(run_copy, capsys):
    before = snapshot(run_copy)
    config = run_config_of_the_fixture()
    config.model.context = ()
    config.batch_size = 8
    status, err = run_reporting(lambda: loop.train_and_evaluate(config, run_copy), capsys)
    assert status == 2, err
    assert str(run_copy) in err and 'model.context' in err and 'batch_size' in err
    assert 'new --workdir' in err and 'optim' not in err
    assert snapshot(run_copy) == before


def test_safe_and_locked_fields():
    assert run_config.is_locked('model.encoder_depth') and run_config.is_locked('optim.name')
    assert run_config.is_locked('data.image_size') and run_config.is_locked('batch_size')
    for safe in ('num_train_steps', 'log_every_steps', 'eval_every_steps', 'optim.lr',
                 'data.root', 'model.pretrained', 'model.dtype'):
        assert not run_config.is_locked(safe), safe


def test_checkpoint_errors_are_project_errors():
    assert issubclass(CheckpointError, CenetError)


# ------------------------------------------------------------------ a full disk

def test_training_on_a_full_disk_stops_with_one_error_and_resumes_once_space_is_freed(
        trained_run, tmp_path, capfd, monkeypatch):
    """The workdir on a small tmpfs with less room than a checkpoint; orbax runs out of space
    while writing step 6 (the size check is bypassed: the harder case, with TensorStore's
    pending writes): one error, exit status 2, checkpoints 2 and 4 as they were, no half-written
    folder, and the same command resumes from step 4 once the disk is larger."""
    from cenet_jax.disk import folder_bytes
    from tests.small_disk import grow, small_disk

    size = folder_bytes(trained_run)
    step_bytes = folder_bytes(trained_run / 'checkpoints' / 'latest' / '4')
    with small_disk(tmp_path / 'disk', size + step_bytes // 2) as root:
        workdir = Path(shutil.copytree(trained_run, root / 'run'))
        before = snapshot(workdir / 'checkpoints')
        config = run_config_of_the_fixture()
        config.num_train_steps, config.eval_every_steps = 6, 0   # allowed changes on resume
        monkeypatch.setattr(Checkpoints, '_expected_bytes', lambda self: None)
        capfd.readouterr()
        status = cli.report_errors(lambda: loop.train_and_evaluate(config, workdir))
        err = capfd.readouterr().err
        assert status == 2, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith('error: ')]
        assert errors == [line for line in errors if 'saving checkpoint step 6' in line], err
        assert len(errors) == 1 and 'Traceback' not in err and 'Event loop is closed' not in err
        assert f'the disk of {workdir / "checkpoints" / "latest"} is full' in errors[0]
        assert 'intact (latest: steps 2, 4; best: step 4)' in errors[0]
        assert 'resumes from step 4' in errors[0]
        assert snapshot(workdir / 'checkpoints') == before
        monkeypatch.undo()
        grow(root, size + 3 * step_bytes)
        state = loop.train_and_evaluate(config, workdir)
        assert int(state.step) == 6
        ckpt = Checkpoints(workdir, read_only=True)
        assert sorted(ckpt.latest.all_steps()) == [2, 4, 6]
        ckpt.close()
