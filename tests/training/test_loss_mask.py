"""The loss mask (config.loss.mask): OCT columns without every boundary carry no loss (Dice and
CE), the same loss and gradients whatever their labels and logits; DRIVE and the other tasks
train on the whole image as before."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cenet_jax.data import pipeline
from cenet_jax.data.config import data_config_for
from cenet_jax.errors import ConfigError
from cenet_jax.losses import segmentation_loss
from cenet_jax.training.loop import loss_mask, make_loss_fn, make_step
from cenet_jax.training.state import create_train_state
from cenet_jax.training.step import train_step
from configs import drive, isbi, oct as oct_config
from tests.data.fakes import oct_boundaries, save
from tests.training.tiny_net import LayerNet, TinyNet, tiny_batch

MASKED = slice(5, 9)   # the columns outside the FOV in these tests


def column_mask(shape: tuple[int, int, int]) -> np.ndarray:
    mask = np.ones(shape, np.float32)
    mask[:, :, MASKED] = 0.0
    return mask


def with_garbage(array: np.ndarray, seed: int, low: float, high: float) -> np.ndarray:
    """A copy whose masked columns hold other random values."""
    out = np.array(array)
    rng = np.random.default_rng(seed)
    out[:, :, MASKED] = rng.uniform(low, high, out[:, :, MASKED].shape).astype(out.dtype)
    return out


@pytest.mark.parametrize('kind,channels,reduction', [
    ('dice', 1, 'batch'), ('dice', 11, 'batch'), ('ce', 1, 'batch'), ('ce', 11, 'batch'),
    ('dice_ce', 11, 'batch'), ('dice_ce', 11, 'image')])
def test_masked_columns_carry_no_loss_and_no_gradient(kind, channels, reduction):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 6, 12, channels)).astype(np.float32)
    labels = rng.integers(0, max(channels, 2), (2, 6, 12)).astype(np.int32)
    mask = column_mask(labels.shape)
    loss = jax.value_and_grad(functools.partial(segmentation_loss, kind=kind, reduction=reduction))
    value, grad = loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
    for seed in (1, 2):
        other_logits = with_garbage(logits, seed, -50, 50)
        other_labels = with_garbage(labels, seed, 0, max(channels, 2)).astype(np.int32)
        other, other_grad = loss(jnp.asarray(other_logits), jnp.asarray(other_labels), jnp.asarray(mask))
        np.testing.assert_allclose(float(other), float(value), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(other_grad), np.asarray(grad), rtol=1e-6, atol=1e-9)
    assert not np.asarray(grad)[:, :, MASKED].any()
    # masked pixels count in neither the Dice intersection nor its sums, nor the CE mean:
    # the loss is that of the unmasked columns alone
    keep = np.ones(12, bool)
    keep[MASKED] = False
    alone = segmentation_loss(jnp.asarray(logits[:, :, keep]), jnp.asarray(labels[:, :, keep]),
                              kind=kind, reduction=reduction)
    np.testing.assert_allclose(float(value), float(alone), rtol=1e-5)


def test_loss_mask_defaults_per_dataset():
    assert loss_mask(oct_config.get_config())[0] == 'fov'
    config = oct_config.get_config()
    config.data.name = 'synthetic_oct'
    assert loss_mask(config)[0] == 'fov'
    assert loss_mask(drive.get_config())[0] == 'none'   # DRIVE trains on the whole image
    assert loss_mask(isbi.get_config())[0] == 'none'
    config.loss.mask = 'none'
    assert loss_mask(config) == ('none', "loss.mask='none'")
    config = drive.get_config()
    config.loss.mask = 'fov'
    assert loss_mask(config)[0] == 'fov'
    config.loss.mask = 'outside'
    with pytest.raises(ConfigError, match='loss.mask'):
        loss_mask(config)


def step_of(config, model, batch):
    """batch -> (loss, new params): one training step of `config`'s loss and mask from fixed
    weights (compiled once)."""
    tx = optax.adam(1e-3)
    variables = model.init(jax.random.key(0), jnp.asarray(batch['image'][:1]))
    state = create_train_state(variables, tx, jax.random.key(1))
    step = jax.jit(make_step(config, model, tx))

    def run(data):
        new_state, metrics = step(state, data)
        return float(metrics['loss']), jax.tree.leaves(new_state.params)
    return run


def test_an_oct_step_ignores_the_labels_of_unannotated_columns():
    config = oct_config.get_config()
    config.loss.kind = 'dice_ce'
    rng = np.random.default_rng(0)
    batch = {'image': rng.normal(size=(2, 16, 16, 3)).astype(np.float32),
             'label': rng.integers(0, 11, (2, 16, 16)).astype(np.int32),
             'fov': column_mask((2, 16, 16))}
    garbage = {**batch, 'label': with_garbage(batch['label'], 1, 0, 11).astype(np.int32)}
    run = step_of(config, LayerNet(), batch)
    loss, params = run(batch)
    garbage_loss, garbage_params = run(garbage)
    assert garbage_loss == pytest.approx(loss, rel=1e-6)
    for a, b in zip(params, garbage_params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    config.loss.mask = 'none'   # without the mask those labels count (the test can fail)
    unmasked = step_of(config, LayerNet(), batch)
    assert unmasked(garbage)[0] != pytest.approx(unmasked(batch)[0], rel=1e-4)


def test_drive_trains_on_the_whole_image_as_before():
    config = drive.get_config()
    config.loss.kind = 'dice_ce'
    batch = tiny_batch()
    batch['fov'] = column_mask(batch['fov'].shape)   # DRIVE's FOV is in the batch, unused
    model, tx = TinyNet(batch_norm=False), optax.adam(1e-3)
    state = create_train_state(model.init(jax.random.key(0), jnp.asarray(batch['image'][:1]),
                                          train=False), tx, jax.random.key(1))
    _, metrics = jax.jit(make_step(config, model, tx))(state, batch)
    old = functools.partial(train_step, model=model, tx=tx, loss_fn=make_loss_fn(config.loss),
                            use_mask=False)   # the step before loss.mask existed
    _, old_metrics = jax.jit(old)(state, batch)
    assert float(metrics['loss']) == float(old_metrics['loss'])
    config.loss.mask = 'fov'
    _, masked = jax.jit(make_step(config, model, tx))(state, batch)
    assert float(masked['loss']) != pytest.approx(float(metrics['loss']), rel=1e-4)


def test_the_oct_training_batch_fov_is_the_annotated_columns(tmp_path):
    root = tmp_path / 'oct'
    rng = np.random.default_rng(0)
    for index in range(2):
        save(root / 'images' / f'b{index}.png', rng.integers(0, 255, (40, 32)).astype(np.uint8))
        rows = oct_boundaries(32, offset=index)
        rows[3, 10:14] = np.nan   # boundary 4 not annotated in four columns
        (root / 'boundaries').mkdir(exist_ok=True)
        np.save(root / 'boundaries' / f'b{index}.npy', rows)
    cfg = data_config_for('oct', str(root), val_fraction=0.0, test_fraction=0.0,
                          image_size=(40, 32))
    cfg.augment.enabled = False
    batch = next(pipeline.build_train_iterator(cfg, global_batch_size=2, seed=0))
    unannotated = np.zeros(32, bool)
    unannotated[10:14] = True
    assert not batch['fov'][:, :, unannotated].any() and batch['fov'][:, :, ~unannotated].all()
