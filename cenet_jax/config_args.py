"""The `--config.FIELD=VALUE` overrides of a command line, checked against the config they
override: an unknown field is `unknown config field 'batch_sise' (did you mean 'batch_size'?)`,
a value of the wrong type names the field, the type expected and the config's own value. Each
is a ConfigError, which the entry points print as one `error:` line with exit status 2
(cenet_jax/cli.py) instead of ml_collections' AttributeError or absl's 'FATAL Flags parsing
error'.

ml_collections parses the overrides as it loads the config (for a flag with a default config,
when the flag is defined), and its errors do not say which field failed; `explain_failure`
finds it by loading the config file again and looking each override up. `check_parsed` catches
what parses but is wrong: absl turns `--config.data.image_size=abc` into ('abc',) and
`--config.data.image_size=64` into (64,), so tuple values are checked element by element against
the config's own tuple, and the config's pairs of numbers (sizes, ranges) must stay pairs.
"""
from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from typing import Any, Mapping

import ml_collections

from cenet_jax.errors import ConfigError

_GROUPS = (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)
_MISSING = object()


def overrides_in(argv: list[str], flag: str = 'config') -> dict[str, str]:
    """{dotted field: raw value} of every `--flag.FIELD=VALUE` (also `--flag.FIELD VALUE`,
    `--flag.FIELD` / `--noflag.FIELD` for booleans) in argv; the last one of a field wins."""
    pattern = re.compile(rf'^--?(?P<no>no)?{re.escape(flag)}\.(?P<field>[^=\s]+)(=(?P<value>.*))?$',
                         re.DOTALL)
    found: dict[str, str] = {}
    for index, arg in enumerate(argv[1:], start=1):
        match = pattern.match(arg)
        if not match:
            continue
        value = match['value']
        if value is None:
            following = argv[index + 1] if index + 1 < len(argv) else None
            value = ('false' if match['no'] else following if following is not None
                     and not following.startswith('-') else 'true')
        found.pop(match['field'], None)
        found[match['field']] = value
    return found


def config_spec(argv: list[str], flag: str = 'config', default: str | None = None) -> str | None:
    """The config file (with its `:arguments`) given by `--flag` in argv, else `default`."""
    for index, arg in enumerate(argv[1:], start=1):
        for prefix in (f'--{flag}', f'-{flag}'):
            if arg == prefix and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(prefix + '='):
                return arg.split('=', 1)[1]
    return default


def load_config(spec: str) -> ml_collections.ConfigDict | None:
    """The config of a config file 'path.py[:arguments]' as ml_collections loads it (its
    `get_config(arguments)`), or None when it cannot be loaded (ml_collections then reports it)."""
    path, _, argument = str(spec).partition(':')
    try:
        module_spec = importlib.util.spec_from_file_location('_cenet_config_check', Path(path))
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.get_config(argument) if argument else module.get_config()
    except Exception:  # an unreadable config is ml_collections' to report, with its traceback
        return None


def _paths(group: Any, prefix: str = '') -> list[str]:
    """Every dotted field path of a config (groups and leaves)."""
    paths = []
    for key, value in group.items():
        paths.append(prefix + key)
        if isinstance(value, _GROUPS):
            paths += _paths(value, prefix + key + '.')
    return paths


def _suggestion(config: Any, parent: str, scope: Any, name: str) -> str | None:
    """The known field nearest to `name`: a sibling first, else a field of the same name (or a
    close one) anywhere in the config ('lr' -> 'optim.lr')."""
    close = difflib.get_close_matches(name, list(scope.keys()), n=1, cutoff=0.6)
    if close:
        return f'{parent}.{close[0]}' if parent else close[0]
    by_leaf: dict[str, str] = {}
    for path in _paths(config):
        by_leaf.setdefault(path.rsplit('.', 1)[-1], path)
    close = difflib.get_close_matches(name, list(by_leaf), n=1, cutoff=0.75)
    return by_leaf[close[0]] if close else None


def lookup(config: Any, field: str) -> Any:
    """The config's value of a dotted field; ConfigError naming it (and the nearest known
    field) when the config has no such field."""
    node, done = config, []
    for part in field.split('.'):
        if not isinstance(node, _GROUPS):
            raise ConfigError(f"unknown config field '{field}': '{'.'.join(done)}' is "
                              f'{_type_words(node)}, not a group of fields')
        if part not in node:
            parent = '.'.join(done)
            guess = _suggestion(config, parent, node, part)
            hint = (f" (did you mean '{guess}'?)" if guess else
                    f"; the fields{' of ' + parent if parent else ''} are: "
                    + ', '.join(sorted(node.keys())))
            raise ConfigError(f"unknown config field '{field}'{hint}")
        node = node[part]
        done.append(part)
    return node


def _type_words(value: Any) -> str:
    if isinstance(value, bool):
        return 'true or false'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, _GROUPS):
        return 'a group of fields'
    if isinstance(value, tuple):
        kinds = sorted({_element_kind(v) for v in value})
        if _is_pair(value):
            return f'a pair of {" or ".join(kinds)}'
        return 'a tuple' + (f' of {" or ".join(kinds)}' if kinds else '')
    return 'a value'


def _element_kind(value: Any) -> str:
    return ('integers' if isinstance(value, int) and not isinstance(value, bool) else
            'numbers' if isinstance(value, float) else 'strings' if isinstance(value, str)
            else type(value).__name__)


def wrong_type(field: str, default: Any, raw: str) -> ConfigError:
    """The error of a value that does not fit the config's field."""
    if isinstance(default, _GROUPS):
        first = next(iter(default.keys()), 'FIELD')
        return ConfigError(f"config field '{field}' is a group of fields, not a value: set them "
                           f'one by one, e.g. --config.{field}.{first}=...')
    return ConfigError(f"config field '{field}' expects {_type_words(default)} (the config has "
                       f'{default!r}), got {raw!r}')


def _is_pair(value: Any) -> bool:
    """A pair of numbers: the config's sizes (H, W) and ranges (low, high)."""
    return isinstance(value, tuple) and len(value) == 2 and \
        all(_element_kind(v) in ('integers', 'numbers') for v in value)


def _fits(default: tuple, value: Any) -> bool:
    """Whether a parsed tuple holds elements of the kinds the config's tuple holds (and stays a
    pair where the config's is a pair of numbers)."""
    if not isinstance(value, tuple):
        return False
    kinds = {_element_kind(v) for v in default}
    if not kinds:
        return True
    if _is_pair(default) and len(value) != 2:
        return False
    allowed = kinds | ({'integers'} if 'numbers' in kinds else set())
    return all(_element_kind(v) in allowed for v in value)


def check_parsed(defaults: Any, parsed: Any, overrides: Mapping[str, str]) -> None:
    """ConfigError for an override that parsed but does not fit: an unknown field, or a tuple
    whose elements are not of the kinds of the config's (non-empty) tuple."""
    for field, raw in overrides.items():
        default = lookup(defaults, field)
        if isinstance(default, tuple) and default:
            value = lookup(parsed, field)
            if not _fits(default, value):
                raise wrong_type(field, default, raw)


def explain_failure(defaults: Any, overrides: Mapping[str, str], err: BaseException
                    ) -> ConfigError | None:
    """The ConfigError behind ml_collections / absl failing on these overrides (an unknown
    field, or the value absl could not convert), or None when the overrides are not the cause."""
    for field in overrides:
        lookup(defaults, field)   # raises for an unknown field
    match = re.search(r'flag --?(?:no)?\w+\.(?P<field>[^=\s]+)=(?P<value>.*?): ', str(err),
                      re.DOTALL)
    if match and match['field'] in overrides:
        return wrong_type(match['field'], lookup(defaults, match['field']), match['value'])
    return None


def diagnose(argv: list[str], flag: str, default_spec: str | None, err: BaseException | None,
             parsed: Any = _MISSING) -> ConfigError | None:
    """The ConfigError of the command line's overrides of `--flag` (None if they are fine or
    the config cannot be loaded): after a failed parse, `err`; after a parse, the `parsed`
    config is checked for values that do not fit."""
    overrides = overrides_in(argv, flag)
    spec = config_spec(argv, flag, default_spec)
    if not overrides or spec is None:
        return None
    defaults = load_config(spec)
    if defaults is None:
        return None
    try:
        if err is not None:
            return explain_failure(defaults, overrides, err)
        if parsed is not _MISSING:
            check_parsed(defaults, parsed, overrides)
    except ConfigError as problem:
        return problem
    return None
