"""Fine-tuning controls through the training loop: a run with EMA, gradient accumulation, a
frozen group and a group frozen until step 3 resumes bit-exactly; evaluation loads its EMA;
`python -m cenet_jax.export` writes it and `eval.py --exported` predicts a folder with it."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from cenet_jax import parallel
from cenet_jax.config_utils import update_fields
from cenet_jax.evaluation.run import load_variables_for_eval, predict_folder
from cenet_jax.models import build_model
from cenet_jax.training import loop
from cenet_jax.training.state import make_optimizer
from tests.training.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


# Every run of this module trains on one device (tests of the loop, not of the sharding).
pytestmark = pytest.mark.usefixtures('one_device_module')


def fine_tuning_config():
    """A width-4 U-Net (fast), 4 steps of batch 8 in 2 micro-batches, EMA with warmup, the
    encoder frozen, the decoder held until step 3 (across the resume), checkpoints every 2."""
    config = tiny_config(num_train_steps=4, checkpoint_every_steps=2, batch_size=8,
                         grad_accum_steps=2, ema_decay=0.9, ema_warmup=True)
    return update_fields(config, {
        'model.architecture': 'unet', 'model.unet_width': 4,
        'optim.param_groups': ('encoder.*:frozen', 'decoder.*:lr=0.5,freeze_until=3')})


def state_leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
        (state.params, state.batch_stats, state.opt_state, state.ema)))]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """(config, straight run, its workdir, resumed run): the same 4 steps, once interrupted."""
    root = tmp_path_factory.mktemp('fine_tuning')
    config = fine_tuning_config()
    straight = loop.train_and_evaluate(config, root / 'straight')
    first = loop.train_and_evaluate(config, root / 'resumed', stop_at_step=2)
    assert int(first.step) == 2
    resumed = loop.train_and_evaluate(config, root / 'resumed')
    return config, straight, root / 'straight', resumed


def test_frozen_groups_keep_their_weights_and_are_logged(runs):
    config, straight, workdir, _ = runs
    model = build_model(config.model)
    initial = loop.initial_state(model, config, make_optimizer(config.optim, 4),
                                 parallel.make_mesh())
    for name in ('inc', 'down1', 'down4'):   # the encoder: frozen
        for a, b in zip(jax.tree.leaves(initial.params[name]),
                        jax.tree.leaves(straight.params[name]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(initial.params['outc']['kernel']),
                              np.asarray(straight.params['outc']['kernel']))   # trained at step 4
    groups = json.loads((workdir / 'param_groups.json').read_text())
    assert [g['rule'] for g in groups] == ['encoder.*:frozen', 'decoder.*:lr=0.5,freeze_until=3']
    assert all(p.startswith(('inc.', 'down')) for p in groups[0]['params'])
    assert sum(g['num_params'] for g in groups) == sum(
        x.size for x in jax.tree.leaves(straight.params))


def test_resume_with_ema_and_accumulation_is_bit_exact(runs):
    _, straight, _, resumed = runs
    assert int(resumed.step) == int(straight.step) == 4
    assert resumed.ema is not None
    for a, b in zip(state_leaves(straight), state_leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    ema, live = jax.tree.leaves(straight.ema['params']), jax.tree.leaves(straight.params)
    assert any(not np.array_equal(a, b) for a, b in zip(ema, live))


def test_eval_loads_the_ema_weights_unless_told_otherwise(runs):
    config, straight, workdir, _ = runs
    mesh = parallel.make_mesh()
    for ema, expected in ((None, straight.ema), (False, straight.variables)):
        _, variables, source = load_variables_for_eval(
            config, mesh, workdir=workdir, checkpoint='latest', ema=ema)
        assert ('EMA' in source) == (ema is None)
        for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_export_cli_and_eval_exported_predict_a_folder(runs, tmp_path):
    _, _, workdir, _ = runs
    out = tmp_path / 'model.jax'
    export = subprocess.run(
        [sys.executable, '-m', 'cenet_jax.export', '--workdir', str(workdir), '--checkpoint',
         'latest', '--out', str(out), '--platforms', 'cpu'],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-3000:]
    meta = json.loads(out.with_suffix('.json').read_text())
    assert 'EMA' in meta['source'] and meta['input']['image_size'] == [64, 64]
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(70, 90, 3), (64, 64, 3), (40, 50, 3)]):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(images / f'{i}.png')
    masks = tmp_path / 'masks'
    predict = subprocess.run(
        [sys.executable, 'eval.py', '--exported', str(out), '--input', str(images), '--output',
         str(masks)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert np.asarray(Image.open(masks / '0.png')).shape == (70, 90)
    assert sorted(p.name for p in masks.glob('*.png')) == ['0.png', '1.png', '2.png']

    config, straight, _, _ = runs   # the same folder predicted from the checkpoint's EMA weights
    model = build_model(config.model)
    direct = predict_folder(config, model, straight.ema, parallel.make_mesh(), images,
                            tmp_path / 'direct', tta='none')
    for path in direct:
        same = np.asarray(Image.open(path)) == np.asarray(Image.open(masks / path.name))
        assert same.mean() > 0.999, path.name
