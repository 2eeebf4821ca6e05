"""Training validates on held-out training images only: with no validation images (the CPU
recipes' data.val_fraction=0) it runs without validation and says so, never on the test split."""
import logging

from cenet_jax.training import loop
from configs import drive_cpu
from tests.data.fakes import make_drive


def test_training_without_validation_images_skips_validation_and_says_why(tmp_path, caplog):
    make_drive(tmp_path, count=4)
    config = drive_cpu.get_config()
    config.data.root = str(tmp_path)
    assert config.data.val_fraction == 0.0 and loop.validation_records(config) is None   # the recipe: off
    config.eval_every_steps = 10          # validation asked for, but there are no validation images
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        assert loop.validation_records(config) is None
    assert 'validation off (config.eval_every_steps=10 asks for it)' in caplog.text
    assert 'data.val_fraction is 0' in caplog.text and 'never used as val' in caplog.text
    config.data.val_fraction = 0.25       # one of the 4 training images held out
    records = loop.validation_records(config)
    assert [r['id'] for r in records] and all(r['id'].endswith('_training') for r in records)
    assert len(records) == 1 and records.info.line.startswith('val: 1 of 4 images, a seeded 25 % holdout')
