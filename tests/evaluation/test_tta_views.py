"""Which TTA views run (evaluation/tta.py): the views the run's training augmentation applied,
on an OCT run (horizontal flips only) and a DRIVE-like one (all 8), the log line naming the
views dropped, unseen views on request, the non-square rule, and the run's augmentation
reaching eval.py's config."""
import logging

import numpy as np
import pytest

from cenet_jax import run_config
from cenet_jax.data.transforms import AugmentSpec, dihedral
from cenet_jax.errors import ConfigError
from cenet_jax.evaluation.tta import VIEWS, applied_views, resolve_tta, tta_plan, unseen_views
from configs import default, drive, drive_cpu, oct as oct_config


def oct_run(height: int = 64, width: int = 128):
    """An OCT run's config on the synthetic OCT set (the preset: horizontal flips only)."""
    config = oct_config.get_config()
    config.data.name = 'synthetic_oct'
    config.data.image_size = (height, width)
    return config


def views_of_training(spec: AugmentSpec, hw: tuple[int, int], draws: int = 200) -> set[str]:
    """The views `data.transforms.dihedral` produced in `draws` random draws, by name."""
    probe = np.arange(hw[0] * hw[1]).reshape(hw)
    fingerprints = {}
    for name, (rotate, flip) in VIEWS.items():
        view = np.rot90(probe[None], 1, axes=(1, 2)) if rotate else probe[None]
        view = np.flip(view, flip) if flip else view
        if view.shape[1:] == hw:
            fingerprints[view[0].tobytes()] = name
    rng = np.random.default_rng(0)
    return {fingerprints[dihedral((probe,), rng, spec)[0].tobytes()] for _ in range(draws)}


@pytest.mark.parametrize('flags', [(), ('hflip',), ('vflip',), ('transpose',), ('hflip', 'vflip'),
                                   ('hflip', 'transpose'), ('vflip', 'transpose'),
                                   ('hflip', 'vflip', 'transpose')])
def test_the_views_training_applied_are_those_of_the_augmentation_code(flags):
    spec = AugmentSpec(**{f: f in flags for f in ('hflip', 'vflip', 'transpose')})
    assert views_of_training(spec, (4, 4)) == set(applied_views(flags))
    unseen = unseen_views(enabled=True, train_hw=(4, 4), **{f: f in flags for f in
                                                            ('hflip', 'vflip', 'transpose')})
    assert set(unseen) == set(VIEWS) - set(applied_views(flags))


def test_non_square_training_inputs_are_never_transposed():
    wide = unseen_views(enabled=True, hflip=True, vflip=True, transpose=True, train_hw=(4, 6))
    assert set(wide) == {name for name, (rotate, _) in VIEWS.items() if rotate}
    assert views_of_training(AugmentSpec(), (4, 6)) == set(VIEWS) - set(wide)


def test_an_oct_run_keeps_identity_and_hflip_and_says_why(caplog):
    config = oct_run()
    with caplog.at_level(logging.INFO, logger='cenet_jax'):
        plan = tta_plan(config, 'flips')
    assert plan.views == ('identity', 'hflip') and plan.label == 'identity,hflip'
    line = ('TTA: dropped vflip, vflip+hflip: training never flipped vertically '
            '(data.augment.vflip=False)')
    assert plan.dropped_line() == line and line in caplog.messages
    assert plan.settings()['tta_dropped'] == {
        'vflip': 'training never flipped vertically (data.augment.vflip=False)',
        'vflip+hflip': 'training never flipped vertically (data.augment.vflip=False)'}
    # the non-square d8 fallback obeys the same rule, and so does padding to a square
    for non_square in ('flips', 'pad', 'error'):
        config.eval.non_square = non_square
        d8 = tta_plan(config, 'd8')
        assert d8.views == ('identity', 'hflip') and not d8.pad, non_square
        assert dict(d8.dropped)['rot90'] == 'training never transposed (data.augment.transpose=False)'
    assert tta_plan(config, 'none').views == ('identity',)


def test_a_drive_like_run_keeps_all_eight_views_on_square_inputs():
    config = drive.get_config()
    config.data.image_size = (64, 64)
    plan = tta_plan(config, 'd8')
    assert plan.views == tuple(VIEWS) and plan.label == 'd8' and not plan.dropped
    assert tta_plan(config, 'flips').label == 'flips'
    assert tta_plan(drive_cpu.get_config(), 'd8').label == 'd8'   # square 192 px patches


def test_square_training_patches_allow_rotations_of_non_square_inputs():
    config = default.get_config()
    config.data.image_size, config.data.crop_size = (64, 128), (64, 64)
    config.eval.non_square = 'pad'
    assert tta_plan(config, 'd8').label == 'd8_pad'
    config.eval.non_square = 'flips'
    plan = tta_plan(config, 'd8')
    assert plan.label == 'flips' and 'need square inputs' in plan.shape_note and not plan.dropped
    config.eval.non_square = 'error'
    with pytest.raises(ConfigError, match='square'):
        tta_plan(config, 'd8')
    config.data.crop_size = (0, 0)   # whole 64 x 128 images: never transposed
    config.eval.non_square = 'pad'
    plan = tta_plan(config, 'd8')
    assert plan.label == 'flips' and not plan.pad
    assert 'its 64x128 inputs are not square' in dict(plan.dropped)['rot90']


def test_without_augmentation_only_the_identity_runs():
    config = drive.get_config()
    config.data.augment.enabled = False
    plan = tta_plan(config, 'd8')
    assert plan.views == ('identity',) and plan.label == 'none'
    assert set(dict(plan.dropped).values()) == {
        'training applied no augmentation (data.augment.enabled=False)'}


def test_unseen_views_run_when_asked_with_a_warning(caplog):
    config = oct_run()
    config.eval.tta_unseen = 'keep'
    with caplog.at_level(logging.INFO, logger='cenet_jax'):
        plan = tta_plan(config, 'flips')
    assert plan.label == 'flips' and not plan.dropped
    assert [name for name, _ in plan.unseen_kept] == ['vflip', 'vflip+hflip']
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any('vflip, vflip+hflip: training never flipped vertically' in w for w in warnings)
    config.eval.tta_unseen = 'sometimes'
    with pytest.raises(ConfigError, match='tta_unseen'):
        tta_plan(config, 'flips')
    with pytest.raises(ValueError, match='tta must be one of'):
        resolve_tta('d4', 8, 8)


def test_eval_takes_the_training_augmentation_from_the_run(tmp_path):
    run_config.write_run_config(oct_run(), tmp_path)
    given = oct_run()
    given.data.augment.vflip = True   # a config file that says otherwise: the run's wins ...
    config, notes = run_config.inference_config(tmp_path, given, {})
    assert config.data.augment.vflip is False and any('data.augment.vflip' in n for n in notes)
    config, _ = run_config.inference_config(tmp_path, None, {})   # ... as without --config
    assert tta_plan(config, 'flips').views == ('identity', 'hflip')
    config, _ = run_config.inference_config(tmp_path, given, {'data.augment.vflip': True})
    assert config.data.augment.vflip is True   # the command line wins
