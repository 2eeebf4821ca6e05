"""TTA must not be worse than no TTA on OCT: a small network trained briefly on the synthetic
OCT set (the oct_cpu recipe's loss and augmentation: horizontal flips only) and scored by
eval.py's evaluate_split with the resolved TTA, without TTA, and with the old views (vertical
flips included), which must be clearly worse on the same model."""
import json

import jax
import jax.numpy as jnp
import pytest

from cenet_jax import parallel
from cenet_jax.data import pipeline
from cenet_jax.evaluation.run import evaluate_split
from cenet_jax.training.loop import make_step
from cenet_jax.training.state import create_train_state, make_optimizer
from configs import oct_cpu
from tests.training.tiny_net import LayerNet

STEPS = 60


@pytest.fixture(scope='module')
def trained_oct():
    """(config, model, variables): LayerNet after 60 steps of batch 8 on 64 x 128 synthetic
    B-scans (about 10 s on 2 cores; boundary MAE well under 1 px)."""
    config = oct_cpu.get_config()
    config.data.name = 'synthetic_oct'
    config.data.image_size = (64, 128)
    config.data.synthetic.num_train, config.data.synthetic.num_test = 64, 6
    config.optim.lr, config.optim.warmup_steps = 3e-3, 0
    config.eval.figures = False
    model = LayerNet()
    tx = make_optimizer(config.optim, STEPS)
    state = create_train_state(model.init(jax.random.key(0), jnp.zeros((1, 64, 128, 3))), tx,
                               jax.random.key(1))
    step = jax.jit(make_step(config, model, tx))
    batches = pipeline.build_train_iterator(config.data, global_batch_size=8, seed=0)
    for _ in range(STEPS):
        state, _ = step(state, jax.tree.map(jnp.asarray, next(batches)))
    return config, model, state.variables


def score(trained, tmp_path, tta: str, unseen: str = 'drop') -> dict:
    config, model, variables = trained
    config = config.copy_and_resolve_references()
    config.eval.tta_unseen = unseen
    out = tmp_path / f'{tta}_{unseen}'
    evaluate_split(config, model, variables, parallel.make_mesh(), out, split='test', tta=tta)
    return {**json.loads((out / 'metrics.json').read_text()), 'table': (out / 'table.txt').read_text()}


def test_tta_is_not_worse_than_none_and_the_old_views_were(trained_oct, tmp_path):
    plain = score(trained_oct, tmp_path, 'none')
    flips = score(trained_oct, tmp_path, 'flips')
    old = score(trained_oct, tmp_path, 'flips', unseen='keep')
    mae = {name: r['aggregate']['mae_overall']['mean'] for name, r in
           (('none', plain), ('flips', flips), ('old', old))}
    assert mae['none'] < 2.0, mae   # the model learned the layers (64-row B-scans)
    assert mae['flips'] <= mae['none'] + 0.1, mae
    assert mae['old'] > mae['flips'] + 2.0, mae   # upside-down views: what the issue measured
    settings = flips['settings']
    assert settings['tta'] == 'flips' and settings['tta_run'] == 'identity,hflip'
    assert settings['tta_view_names'] == ['identity', 'hflip'] and settings['tta_views'] == 2
    assert sorted(settings['tta_dropped']) == ['vflip', 'vflip+hflip']
    assert ('TTA: dropped vflip, vflip+hflip: training never flipped vertically '
            '(data.augment.vflip=False)') in flips['table']
    assert old['settings']['tta_view_names'] == ['identity', 'vflip', 'hflip', 'vflip+hflip']
    assert sorted(old['settings']['tta_unseen_kept']) == ['vflip', 'vflip+hflip']


def test_the_oct_cpu_recipe_trains_whole_b_scans_from_scratch_with_a_masked_loss():
    from cenet_jax.data.config import crop_hw
    from cenet_jax.evaluation.tta import tta_plan
    from cenet_jax.training.loop import loss_mask

    config = oct_cpu.get_config()
    assert crop_hw(config.data) is None and tuple(config.data.image_size) == (224, 448)
    assert config.optim.name == 'adam' and config.optim.lr == 1e-3 and config.loss.kind == 'dice_ce'
    assert config.eval_every_steps == 0 and config.data.val_fraction == 0.0
    assert config.num_train_steps == 400 and not config.model.pretrained
    assert loss_mask(config)[0] == 'fov'
    assert tta_plan(config).views == ('identity', 'hflip')
    assert oct_cpu.get_config('variant=unet').model.architecture == 'unet'
