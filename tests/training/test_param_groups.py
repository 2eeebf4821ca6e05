"""Parameter groups: rule parsing, which CE-Net parameters fall where, and the optimizer per
group (lr multiplier, weight-decay override, frozen, frozen until a step)."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util

from cenet_jax.errors import ConfigError
from cenet_jax.models import build_model
from cenet_jax.training.param_groups import parse_rule, parse_rules, summarize_groups
from cenet_jax.training.state import make_optimizer
from tests.training.conftest import tiny_config


@pytest.fixture(scope='module')
def cenet_params():
    """Parameter shapes of the tests' CE-Net (ResNet-18 + DAC), without computing anything."""
    model = build_model(tiny_config().model)
    init = functools.partial(model.init, train=False)
    return jax.eval_shape(init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']


def test_rules_parse_options_and_reject_bad_ones():
    rule = parse_rule('encoder.*:lr=0.1,wd=0,freeze_until=100')
    assert (rule.lr_scale, rule.weight_decay, rule.freeze_until, rule.frozen) == (0.1, 0.0, 100, False)
    assert parse_rule('context.*:frozen').frozen and parse_rule('.*bias').lr_scale == 1.0
    for bad in ('encoder.*:lr=fast', 'encoder.*:freeze', '[:lr=2'):
        with pytest.raises(ConfigError, match='param_groups'):
            parse_rule(bad)


def test_parts_cover_cenet_and_counts_add_up(cenet_params):
    rules = parse_rules(('encoder.*:lr=0.1', 'context.*:frozen', 'decoder.*:wd=0'))
    groups = {g.rule: g for g in summarize_groups(cenet_params, rules)}
    assert set(groups) == {'encoder.*:lr=0.1', 'context.*:frozen', 'decoder.*:wd=0'}
    assert all(p.startswith('encoder.') for p in groups['encoder.*:lr=0.1'].paths)
    assert all(p.startswith('dac.') for p in groups['context.*:frozen'].paths)
    decoder = groups['decoder.*:wd=0'].paths
    assert any(p.startswith('head.') for p in decoder) and any(p.startswith('decoder1.') for p in decoder)
    total = sum(x.size for x in jax.tree.leaves(cenet_params))
    assert sum(g.num_params for g in groups.values()) == total


def test_first_match_wins_and_the_rest_is_default(cenet_params):
    groups = summarize_groups(cenet_params, parse_rules((r'.*\.bias:wd=0', 'encoder.*:lr=0.1')))
    assert [g.rule for g in groups] == [r'.*\.bias:wd=0', 'encoder.*:lr=0.1', 'default']
    assert all(p.endswith('.bias') for p in groups[0].paths)
    assert not any(p.endswith('.bias') for p in groups[1].paths)


def test_a_rule_that_matches_nothing_is_named(cenet_params):
    with pytest.raises(ConfigError, match=r"'bogus\.\*:frozen' matches no parameter"):
        summarize_groups(cenet_params, parse_rules(('encoder.*', 'bogus.*:frozen')))
    with pytest.raises(ConfigError, match="'encoder.conv1.kernel'"):   # shadowed by the first
        summarize_groups(cenet_params, parse_rules(('encoder.*', 'encoder.conv1.kernel')))


def test_group_optimizers_scale_freeze_and_hold():
    params = {'encoder': {'w': jnp.ones(3)}, 'dac': {'w': jnp.ones(3)},
              'head': {'w': jnp.ones(3)}, 'decoder1': {'w': jnp.ones(3)}}
    optim = ml_collections.ConfigDict(dict(
        name='sgd', lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.5, schedule='constant',
        warmup_steps=0, param_groups=('encoder.*:lr=0.5', 'context.*:frozen',
                                      'head.*:wd=0,freeze_until=2')))
    tx = make_optimizer(optim, 10)
    state = tx.init(params)
    frozen_state = [x for x in jax.tree.leaves(state) if getattr(x, 'shape', None) == (3,)]
    assert len(frozen_state) == 3   # momentum for encoder, head, decoder1; none for the frozen dac
    grads = jax.tree.map(jnp.ones_like, params)
    history = []
    for _ in range(3):
        updates, state = tx.update(grads, state, params)
        history.append(jax.tree.map(lambda u: float(u[0]), updates))
        params = optax.apply_updates(params, updates)
    first = history[0]
    assert first['decoder1']['w'] == pytest.approx(-0.1 * (1 + 0.5))        # default: lr, wd 0.5
    assert first['encoder']['w'] == pytest.approx(0.5 * first['decoder1']['w'])
    assert all(h['dac']['w'] == 0.0 for h in history)
    assert history[0]['head']['w'] == history[1]['head']['w'] == 0.0
    # step 3: momentum kept following the gradient while held (no weight decay for the head)
    assert history[2]['head']['w'] == pytest.approx(-0.1 * (1 + 0.9 + 0.81))
    np.testing.assert_array_equal(params['dac']['w'], np.ones(3))
