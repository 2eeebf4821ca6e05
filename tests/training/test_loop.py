"""The training loop: learning, exact resume, SIGTERM, NaN stop, config errors, eval.py."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cenet_jax.checkpoint import Checkpoints
from cenet_jax.data.errors import DataError
from cenet_jax.errors import ConfigError
from cenet_jax.logging import read_metrics
from cenet_jax.training import loop
from configs import drive
from tests.training.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get((state.params, state.batch_stats,
                                                                    state.opt_state)))]


@pytest.fixture(scope='module')
def trained_demo(tmp_path_factory):
    """A demo-size run with validation: 50 steps of batch 4 on synthetic discs (steps 12 and 13
    profiled)."""
    workdir = tmp_path_factory.mktemp('demo')
    config = tiny_config(batch_size=4, num_train_steps=50, eval_every_steps=25,
                         checkpoint_every_steps=25, log_every_steps=10, profile_steps=(12, 13))
    config.data.synthetic.num_train = 160
    config.data.synthetic.num_val = 8
    state = loop.train_and_evaluate(config, workdir)
    return workdir, config, state


def test_demo_training_lowers_loss_and_beats_chance(trained_demo):
    workdir, config, state = trained_demo
    assert int(state.step) == 50
    records = read_metrics(workdir / 'metrics.jsonl')
    losses = [r['train_loss'] for r in records if 'train_loss' in r]
    assert np.mean(losses[-2:]) < losses[0] - 0.1, losses
    val = [r for r in records if 'val_dice' in r][-1]
    # Chance: a predictor independent of the image has expected dice <= the disc's prevalence
    # (about 5 % of the pixels); all-background has dice 0.
    assert val['val_dice'] > 0.5, val
    for name in ('config.json', 'curves.png'):
        assert (workdir / name).exists(), name
    assert list((workdir / 'samples').glob('step0000050_*.png'))
    assert list((workdir / 'tensorboard').iterdir())
    assert all(k in records[0] for k in ('step', 'train_loss', 'lr', 'images_per_sec'))
    ckpt = Checkpoints(workdir)
    assert ckpt.latest_step() == 50 and ckpt.best.latest_step() in (25, 50)
    ckpt.close()


def test_demo_training_logs_its_flop_rate_and_writes_the_profile(trained_demo):
    """Every logged step has its TFLOP/s (training/flops.py; no MFU on CPU): the same FLOPs per
    step each time; `profile_steps=(12, 13)` left a jax.profiler trace in the workdir."""
    workdir, config, _ = trained_demo
    records = [r for r in read_metrics(workdir / 'metrics.jsonl') if 'train_loss' in r]
    assert [r['step'] for r in records] == [10, 20, 30, 40, 50]
    assert all(r['tflops_per_sec'] > 0 and 'mfu' not in r for r in records), records
    per_step = [r['tflops_per_sec'] * 1e12 / (r['images_per_sec'] / config.batch_size)
                for r in records]
    assert max(per_step) == pytest.approx(min(per_step), rel=1e-6) and per_step[0] > 1e9
    traces = list((workdir / 'profile' / 'plugins' / 'profile').glob('*/*'))
    assert [p for p in traces if p.name.endswith('.xplane.pb')]
    assert [p for p in traces if p.name == 'perfetto_trace.json.gz']


def test_eval_cli_end_to_end(trained_demo, tmp_path):
    workdir, _, _ = trained_demo
    out = tmp_path / 'eval'
    overrides = ['--config.model.encoder_depth=18', "--config.model.context=('dac',)",
                 '--config.data.synthetic.num_test=3']
    cmd = [sys.executable, 'eval.py', '--config', 'configs/demo.py', '--workdir', str(workdir),
           '--output_dir', str(out), '--tta', 'd8'] + overrides
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'CE-Net (paper)' in run.stdout and 'ours' in run.stdout
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['num_images'] == 3 and summary['settings']['tta'] == 'd8'
    assert len((out / 'per_image.csv').read_text().strip().splitlines()) == 4
    assert len(list((out / 'figures').glob('*.png'))) == 3
    header = (out / 'per_image.csv').read_text().splitlines()[0]
    assert header.endswith(',uncertainty,uncertainty_auc')          # TTA uncertainty kept
    assert summary['uncertainty']['pixels'] > 0 and 'TTA uncertainty' in run.stdout
    page = (out / 'index.html').read_text()                          # the report page
    assert page.count('<tr><td data-value="synthetic_disc/test/') == 3
    assert 'src="curves.png"' in page and (out / 'curves.png').is_file()

    images = tmp_path / 'new_images'
    images.mkdir()
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(images / f'{i}.png')
    masks = tmp_path / 'masks'
    run = subprocess.run(cmd[:6] + ['--input', str(images), '--output', str(masks)] + overrides,
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    written = sorted(masks.glob('*.png'))
    assert [p.name for p in written] == ['0.png', '1.png']
    assert np.asarray(Image.open(written[0])).shape == (70, 90)


def test_eval_on_another_dataset_scores_every_listed_image_and_says_where_from(trained_demo, tmp_path):
    """Issue 21's reproduction: a run's config.json names its own dataset's split files; scored on
    a folder with train.txt (one name) and test.txt (all 28), eval.py takes the folder dataset's
    split names, scores all 28 and says where they came from, with no extra flags."""
    from tests.data.fakes import fundus, save, write_list
    trained, _, _ = trained_demo
    workdir = tmp_path / 'run'       # the trained run, its config.json carrying DRIVE's split names
    workdir.mkdir()
    (workdir / 'checkpoints').symlink_to(trained / 'checkpoints')
    stored = json.loads((trained / 'config.json').read_text())
    stored['data'].update(train_split='training', val_split='', test_split='test')
    (workdir / 'config.json').write_text(json.dumps(stored))
    root, out = tmp_path / 'vessels', tmp_path / 'eval'
    names = [f'v{i:02d}' for i in range(28)]
    for index, name in enumerate(names):
        image, vessels, _ = fundus(index, (48, 56))
        save(root / 'images' / f'{name}.png', image)
        save(root / 'masks' / f'{name}.png', vessels)
    write_list(root / 'train.txt', names[:1])
    write_list(root / 'test.txt', names)
    run = subprocess.run([sys.executable, 'eval.py', '--workdir', str(workdir), '--config.data.name=folder',
                          f'--config.data.root={root}', '--output_dir', str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'test: 28 images from {root / "test.txt"}' in run.stdout
    assert 'FOV: none (the set has no FOV masks)' in run.stdout and 'include the border' in run.stdout
    assert "the run was trained on 'synthetic_disc', scoring 'folder'" in run.stderr
    assert "data.test_split='test.txt' (the run had 'test')" in run.stderr
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['num_images'] == 28 and summary['settings']['cross_dataset'] is True
    assert (out / 'table.txt').read_text().splitlines()[2] == f'test: 28 images from {root / "test.txt"}'


def test_eval_without_checkpoints_is_a_clear_error(tmp_path):
    run = subprocess.run([sys.executable, 'eval.py', '--config', 'configs/demo.py',
                          '--workdir', str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 2, run.stderr[-3000:]
    assert 'no checkpoints' in run.stderr and 'train first' in run.stderr
    assert 'Traceback' not in run.stderr


def test_resume_is_bit_identical(tmp_path, one_device):
    config = tiny_config()
    straight = loop.train_and_evaluate(config, tmp_path / 'straight')
    first = loop.train_and_evaluate(config, tmp_path / 'resumed', stop_at_step=3)
    assert int(first.step) == 3
    resumed = loop.train_and_evaluate(config, tmp_path / 'resumed')
    assert int(resumed.step) == int(straight.step) == 6
    for a, b in zip(_leaves(straight), _leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    losses = lambda d: [r['train_loss'] for r in read_metrics(d / 'metrics.jsonl')]
    assert losses(tmp_path / 'straight') == losses(tmp_path / 'resumed')


def _on_batch(monkeypatch, call: int, action):
    """Run `action(local_batch) -> local_batch` on the `call`-th training batch of the loop."""
    calls = {'n': 0}
    real = loop.parallel.global_batch

    def wrapped(local, mesh):
        calls['n'] += 1
        return real(action(local) if calls['n'] == call else local, mesh)

    monkeypatch.setattr(loop.parallel, 'global_batch', wrapped)


def test_sigterm_saves_and_exits(tmp_path, one_device, monkeypatch):
    def sigterm(local):
        os.kill(os.getpid(), signal.SIGTERM)
        return local

    _on_batch(monkeypatch, 2, sigterm)
    state = loop.train_and_evaluate(tiny_config(checkpoint_every_steps=100), tmp_path)
    assert int(state.step) == 2
    ckpt = Checkpoints(tmp_path)
    assert ckpt.latest_step() == 2
    ckpt.close()


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, one_device, monkeypatch):
    _on_batch(monkeypatch, 5, lambda local: {**local, 'image': np.full_like(local['image'], np.nan)})
    with pytest.raises(loop.NonFiniteLossError, match='at step 5') as err:
        loop.train_and_evaluate(tiny_config(checkpoint_every_steps=2), tmp_path)
    assert 'step 4' in str(err.value)
    ckpt = Checkpoints(tmp_path)
    assert ckpt.latest_step() == 4
    ckpt.close()


def test_missing_data_path_names_the_flag(tmp_path):
    with pytest.raises(DataError, match=r'--config\.data\.root'):
        loop.train_and_evaluate(drive.get_config(), tmp_path)


def test_batch_not_divisible_by_devices(tmp_path):
    with pytest.raises(ValueError, match='multiple of the number of devices'):
        loop.train_and_evaluate(tiny_config(batch_size=6), tmp_path)


@pytest.mark.parametrize('data_classes, model_classes', [(10, 11), (3, 1), (2, 3)])
def test_model_classes_that_do_not_fit_the_labels_stop_before_any_work(tmp_path, data_classes,
                                                                        model_classes):
    """`--config.data.num_classes=10` on an 11-class OCT config (the model keeps 11 channels)."""
    config = tiny_config()
    config.data.num_classes, config.model.num_classes = data_classes, model_classes
    with pytest.raises(ConfigError, match=rf'model\.num_classes={model_classes} does not fit '
                                          rf'config\.data\.num_classes={data_classes}') as err:
        loop.train_and_evaluate(config, tmp_path / 'run')
    assert f'--config.model.num_classes={1 if data_classes == 2 else data_classes}' in str(err.value)
    assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_a_binary_task_trains_a_sigmoid_or_a_two_class_softmax():
    for channels in (1, 2):
        loop.check_num_classes(tiny_config(**{'model.num_classes': channels}))


def test_unknown_config_key_is_rejected(tmp_path):
    run = subprocess.run([sys.executable, 'train.py', '--config', 'configs/demo.py',
                          '--workdir', str(tmp_path), '--config.optim.learning_rate=0.1'],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert 'learning_rate' in run.stderr


def test_unknown_best_metric_is_rejected(tmp_path, one_device):
    config = tiny_config(num_train_steps=1, eval_every_steps=1, best_metric='accuracy')
    with pytest.raises(ConfigError, match='best_metric'):
        loop.train_and_evaluate(config, tmp_path)


def test_pretrained_encoder_file_initialises_the_encoder(tmp_path):
    from cenet_jax import convert, parallel
    from cenet_jax.models import build_model
    from cenet_jax.training.state import make_optimizer

    config = tiny_config()
    model = build_model(config.model)
    mesh = parallel.make_mesh()
    tx = make_optimizer(config.optim, 10)
    random_state = loop.initial_state(model, config, tx, mesh)
    variables = jax.device_get(random_state.variables)
    encoder = {c: jax.tree.map(lambda x: np.asarray(x) + 1.0, variables[c]['encoder'])
               for c in ('params', 'batch_stats')}
    path = tmp_path / 'encoder.msgpack'
    convert.save_variables(path, encoder, {'kind': 'encoder', 'source': 'test'})
    config.model.pretrained = str(path)
    state = jax.device_get(loop.initial_state(model, config, tx, mesh))
    for a, b in zip(jax.tree.leaves(state.params['encoder']), jax.tree.leaves(encoder['params'])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(state.params['dac']), jax.tree.leaves(variables['params']['dac'])):
        np.testing.assert_array_equal(a, b)   # the rest keeps its random initialisation


def test_eval_loads_converted_weights_and_rejects_encoder_only(trained_demo, tmp_path):
    from cenet_jax import convert, parallel
    from cenet_jax.evaluation.run import load_variables_for_eval

    workdir, config, state = trained_demo
    host = jax.device_get(state.variables)
    model_file = convert.save_variables(tmp_path / 'model.msgpack', host, {'kind': 'model'})
    mesh = parallel.make_mesh()
    _, variables, source = load_variables_for_eval(config, mesh, workdir=None,
                                                   weights=str(model_file))
    assert source == str(model_file)
    for a, b in zip(jax.tree.leaves(jax.device_get(variables)), jax.tree.leaves(host)):
        np.testing.assert_array_equal(a, b)
    encoder_file = convert.save_variables(
        tmp_path / 'enc.msgpack', {c: host[c]['encoder'] for c in host}, {'kind': 'encoder'})
    with pytest.raises(convert.ConversionError, match='only encoder weights'):
        load_variables_for_eval(config, mesh, workdir=None, weights=str(encoder_file))


def _shrink_to_two_steps(config) -> None:
    """A task config made test-sized: the tiny model, 2 steps, validation at step 2."""
    small = tiny_config(num_train_steps=2, eval_every_steps=2, checkpoint_every_steps=2)
    for key in ('batch_size', 'num_train_steps', 'eval_every_steps', 'checkpoint_every_steps',
                'log_every_steps', 'num_sample_images'):
        config[key] = small[key]
    num_classes = config.model.num_classes
    config.model = small.model
    config.model.num_classes = num_classes


def test_oct_softmax_training_validates_boundary_mae(tmp_path, one_device):
    from configs import oct as oct_config

    config = oct_config.get_config()
    _shrink_to_two_steps(config)
    assert config.model.num_classes == 11
    config.data.name = 'synthetic_oct'
    config.data.image_size = (64, 64)
    config.data.synthetic.num_train, config.data.synthetic.num_val = 8, 2
    loop.train_and_evaluate(config, tmp_path)
    val = [r for r in read_metrics(tmp_path / 'metrics.jsonl') if 'val_mae_overall' in r]
    assert val and all(f'val_mae_{k}' in val[-1] for k in range(1, 11)), val
    assert 0 <= val[-1]['val_mae_overall'] <= 64
    ckpt = Checkpoints(tmp_path)
    assert ckpt.best.latest_step() == 2   # best by config.best_metric='mae_overall' (min)
    ckpt.close()


ISBI = REPO.parent / 'shared' / 'datasets' / 'ISBI2012_EM'


@pytest.mark.skipif(not ISBI.is_dir(), reason=f'ISBI 2012 not found at {ISBI} (../shared/datasets)')
def test_isbi_training_validates_rand_and_info(tmp_path, one_device):
    from configs import isbi

    config = isbi.get_config()
    _shrink_to_two_steps(config)
    config.data.root = str(ISBI)
    config.data.image_size = (64, 64)
    loop.train_and_evaluate(config, tmp_path)
    val = [r for r in read_metrics(tmp_path / 'metrics.jsonl') if 'val_v_rand' in r]
    assert val and 0 <= val[-1]['val_v_rand'] <= 1 and 0 <= val[-1]['val_v_info'] <= 1
