"""Misspelt `--config.*` fields and values of the wrong type (cenet_jax/config_args.py, cli.py):
one `error:` line naming the field (and the nearest known one, or the type expected), exit
status 2, for train.py, eval.py and `python -m cenet_jax.export` alike, and nothing written."""
import subprocess
import sys
from pathlib import Path

import pytest

from cenet_jax import config_args
from cenet_jax.errors import ConfigError
from configs import default

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def config():
    return default.get_config()


@pytest.mark.parametrize('field, message', [
    ('batch_sise', "unknown config field 'batch_sise' (did you mean 'batch_size'?)"),
    ('data.imag_size', "unknown config field 'data.imag_size' (did you mean 'data.image_size'?)"),
    ('lr', "unknown config field 'lr' (did you mean 'optim.lr'?)"),
    ('optim.zzz', "unknown config field 'optim.zzz'; the fields of optim are: lr, momentum, name,"),
    ('batch_size.x', "unknown config field 'batch_size.x': 'batch_size' is an integer, not a group"),
])
def test_unknown_fields_name_the_nearest_known_one(config, field, message):
    with pytest.raises(ConfigError) as err:
        config_args.lookup(config, field)
    assert str(err.value).startswith(message)


def test_tuples_are_checked_element_by_element(config):
    parsed = default.get_config()
    with parsed.unlocked():
        parsed.data.image_size = ('abc',)          # what absl makes of --config.data.image_size=abc
        parsed.eval.cell_thresholds = ('x',)       # an empty tuple in the config: any elements
    with pytest.raises(ConfigError, match=r"^config field 'data.image_size' expects a pair of "
                                          r"integers \(the config has \(448, 448\)\), got 'abc'$"):
        config_args.check_parsed(config, parsed, {'data.image_size': 'abc',
                                                  'eval.cell_thresholds': 'x'})
    with parsed.unlocked():
        parsed.data.image_size = (64,)             # --config.data.image_size=64: not a pair
    with pytest.raises(ConfigError, match=r"expects a pair of integers .*, got '64'$"):
        config_args.check_parsed(config, parsed, {'data.image_size': '64'})
    with parsed.unlocked():
        parsed.data.image_size = (64, 96)
        parsed.model.rmp_pool_sizes = (2, 3)       # other numeric tuples may change length
        parsed.data.augment.scale = (1, 2)         # integers where numbers are expected
    config_args.check_parsed(config, parsed, {'data.image_size': '(64, 96)',
                                              'model.rmp_pool_sizes': '(2, 3)',
                                              'data.augment.scale': '(1, 2)'})


def test_absl_conversion_errors_become_the_fields_type(config):
    failure = ValueError("flag --config.optim.lr=fast: could not convert string to float: 'fast'")
    problem = config_args.explain_failure(config, {'optim.lr': 'fast'}, failure)
    assert str(problem) == ("config field 'optim.lr' expects a number (the config has 0.004), "
                            "got 'fast'")
    assert config_args.explain_failure(config, {'optim.lr': '0.1'}, ValueError('other')) is None


def test_overrides_are_read_in_every_form():
    argv = ['train.py', '--config', 'c.py:variant=unet', '--config.seed=1', '--config.data.root',
            '/data', '--noconfig.async_checkpoints', '--config.seed=2', '--workdir=w']
    assert config_args.overrides_in(argv) == {'data.root': '/data', 'async_checkpoints': 'false',
                                              'seed': '2'}
    assert config_args.config_spec(argv) == 'c.py:variant=unet'
    assert config_args.config_spec(['eval.py'], default='configs/default.py') == 'configs/default.py'


def _run(args, tmp_path):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize('command', [
    ['train.py', '--config', 'configs/demo.py', '--workdir', '{run}'],
    ['eval.py', '--workdir', '{run}'],                                     # config parsed at definition
    ['-m', 'cenet_jax.export', '--workdir', '{run}', '--out', '{run}/model.jax'],
], ids=['train', 'eval', 'export'])
def test_a_misspelt_field_is_one_error_and_exit_2(tmp_path, command):
    run = tmp_path / 'run'
    result = _run([a.format(run=run) for a in command] + ['--config.batch_sise=4'], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines()[0] == \
        "error: unknown config field 'batch_sise' (did you mean 'batch_size'?)"
    assert 'Traceback' not in result.stderr and not run.exists()


@pytest.mark.parametrize('command', [
    ['train.py', '--config', 'configs/demo.py', '--workdir', '{run}'],
    ['eval.py', '--workdir', '{run}'],
], ids=['train', 'eval'])
def test_a_value_of_the_wrong_type_is_one_error_and_exit_2(tmp_path, command):
    run = tmp_path / 'run'
    result = _run([a.format(run=run) for a in command] + ['--config.batch_size=eight'], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines()[0] == \
        "error: config field 'batch_size' expects an integer (the config has 8), got 'eight'"
    assert 'Traceback' not in result.stderr and not run.exists()
