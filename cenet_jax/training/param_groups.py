"""Parameter groups: rules over parameter paths that give a learning-rate multiplier, a
weight-decay override, freezing, or freezing until a step (`config.optim.param_groups`).

A rule is `'PATTERN:OPTION,OPTION'` (options optional): PATTERN is a regular expression that
must match a parameter's whole dotted path (`encoder.layer1_0.conv1.kernel`) or that path
behind its part (`encoder.`, `context.` or `decoder.`; the head belongs to the decoder), so
`encoder.*`, `context.*`, `decoder.*`, `.*bias` and `dac\\..*` all work. Options: `lr=F` (the
learning rate times F), `wd=F` (weight decay F instead of optim.weight_decay), `frozen` (never
updated, no optimizer state) and `freeze_until=N` (no update in the first N steps; its optimizer
state still follows the gradients, so it starts with warm statistics at the schedule's current
learning rate). The first rule that matches a parameter wins; unmatched parameters form the
`default` group. A rule that matches no parameter (left to it) is a ConfigError naming it.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from cenet_jax.errors import ConfigError

DEFAULT_GROUP = 'default'
_EXAMPLE = "e.g. --config.optim.param_groups=\"('encoder.*:lr=0.1', 'context.*:frozen')\""


@dataclasses.dataclass(frozen=True)
class GroupRule:
    """One parsed rule of `config.optim.param_groups`."""
    text: str
    pattern: re.Pattern
    lr_scale: float = 1.0
    weight_decay: float | None = None
    frozen: bool = False
    freeze_until: int = 0


def _option(rule: str, option: str) -> dict[str, Any]:
    key, sep, value = option.partition('=')
    key = key.strip()
    try:
        if key == 'frozen' and not sep:
            return {'frozen': True}
        if key == 'lr' and sep:
            return {'lr_scale': float(value)}
        if key == 'wd' and sep:
            return {'weight_decay': float(value)}
        if key == 'freeze_until' and sep:
            return {'freeze_until': int(value)}
    except ValueError:
        pass
    raise ConfigError(f'config.optim.param_groups rule {rule!r}: option {option!r} not understood; '
                      f'use lr=FLOAT, wd=FLOAT, frozen or freeze_until=STEPS ({_EXAMPLE})')


def parse_rule(text: str) -> GroupRule:
    """'PATTERN:lr=0.1,wd=0' -> GroupRule; ConfigError for a bad regex or option."""
    pattern, _, options = text.rpartition(':') if ':' in text else (text, '', '')
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ConfigError(f'config.optim.param_groups rule {text!r}: {pattern!r} is not a regular '
                          f'expression ({err})') from err
    fields: dict[str, Any] = {}
    for option in filter(None, (o.strip() for o in options.split(','))):
        fields.update(_option(text, option))
    return GroupRule(text=text, pattern=compiled, **fields)


def parse_rules(texts: Iterable[str]) -> tuple[GroupRule, ...]:
    """All rules of the config, in order."""
    if isinstance(texts, str):
        texts = (texts,)
    return tuple(parse_rule(str(t)) for t in texts)


def part_of(path: tuple[str, ...]) -> str:
    """'encoder', 'context' or 'decoder' for a parameter path (CE-Net's and U-Net's names)."""
    top = path[0]
    if top == 'encoder' or top == 'inc' or top.startswith('down'):
        return 'encoder'
    if top.startswith(('decoder', 'head', 'up', 'outc')):
        return 'decoder'
    return 'context'


def group_of(path: tuple[str, ...], rules: tuple[GroupRule, ...]) -> str:
    """The label of the first rule matching the path ('group<i>'), else 'default'."""
    dotted = '.'.join(path)
    candidates = (dotted, f'{part_of(path)}.{dotted}')
    for i, rule in enumerate(rules):
        if any(rule.pattern.fullmatch(c) for c in candidates):
            return f'group{i}'
    return DEFAULT_GROUP


def group_labels(params: Any, rules: tuple[GroupRule, ...]) -> Any:
    """The params tree with each leaf replaced by its group label (for optax.multi_transform)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: group_of(k, rules) for k in flat})


class GroupSummary(NamedTuple):
    """What one group holds: its rule, label, parameter count and dotted paths."""
    rule: str
    label: str
    num_params: int
    paths: tuple[str, ...]


def summarize_groups(params: Any, rules: tuple[GroupRule, ...]) -> list[GroupSummary]:
    """One summary per rule (in order) and the default group; ConfigError naming every rule
    that matches no parameter (or only ones an earlier rule took)."""
    members: dict[str, list[tuple[str, int]]] = {}
    for key, leaf in traverse_util.flatten_dict(params).items():
        members.setdefault(group_of(key, rules), []).append(('.'.join(key), int(leaf.size)))
    unmatched = [r.text for i, r in enumerate(rules) if f'group{i}' not in members]
    if unmatched:
        tops = sorted({k[0] for k in traverse_util.flatten_dict(params)})
        raise ConfigError(
            f'config.optim.param_groups: {", ".join(repr(t) for t in unmatched)} matches no '
            f'parameter (not taken by an earlier rule). Patterns are regular expressions over the '
            f'whole dotted path, e.g. encoder.layer1_0.conv1.kernel, optionally behind its part '
            f'(encoder., context., decoder.); top-level modules here: {", ".join(tops)}')
    labels = [(r.text, f'group{i}') for i, r in enumerate(rules)] + [(DEFAULT_GROUP, DEFAULT_GROUP)]
    return [GroupSummary(text, label, sum(n for _, n in members[label]),
                         tuple(p for p, _ in members[label]))
            for text, label in labels if label in members]


class HoldState(NamedTuple):
    """Steps seen so far by `hold_until`."""
    count: jax.Array


def hold_until(steps: int) -> optax.GradientTransformation:
    """Zero updates for the first `steps` updates (the transformations before it still run)."""
    def init(params: Any) -> HoldState:
        del params
        return HoldState(jnp.zeros((), jnp.int32))

    def update(updates: Any, state: HoldState, params: Any = None) -> tuple[Any, HoldState]:
        del params
        keep = state.count >= steps
        held = jax.tree.map(lambda u: jnp.where(keep, u, jnp.zeros_like(u)), updates)
        return held, HoldState(state.count + 1)

    return optax.GradientTransformation(init, update)
