"""One place where the entry points (train.py, eval.py, `python -m cenet_jax.export`,
`python -m cenet_jax.convert`) turn the project's own errors into their message and exit status
2; other exceptions keep their traceback.

The `--config` flag of the entry points (`define_config_file`) and absl's flag parsing
(`run_absl`) report a misspelt `--config.FIELD` or a value of the wrong type the same way
(cenet_jax/config_args.py), whether the config is parsed when the flag is defined (a default
config) or when the command line is.

`--traceback` (or the environment variable CENET_JAX_TRACEBACK=1) shows the full traceback of
the project's errors too.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from cenet_jax import config_args
from cenet_jax.errors import CenetError, ConfigError

TRACEBACK_ENV = 'CENET_JAX_TRACEBACK'
USER_ERROR_STATUS = 2
TRACEBACK_HELP = (f'Show the full Python traceback of errors (also: {TRACEBACK_ENV}=1); by '
                  'default the project\'s own errors print their message alone.')


def traceback_requested(flag: bool = False) -> bool:
    """Whether the flag or the environment variable asks for full tracebacks."""
    return flag or os.environ.get(TRACEBACK_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def print_error(err: CenetError) -> int:
    """Print `error: <message>` (and how to get the traceback) to stderr; returns exit status 2."""
    print(f'error: {err}\n(for the full traceback pass --traceback or set {TRACEBACK_ENV}=1)',
          file=sys.stderr)
    return USER_ERROR_STATUS


def report_errors(main: Callable[[], Any], *, show_traceback: bool = False) -> Any:
    """Run `main()`; a CenetError prints `error: <message>` to stderr and returns exit status 2
    (re-raised with its traceback when requested)."""
    try:
        return main()
    except CenetError as err:
        if traceback_requested(show_traceback):
            raise
        return print_error(err)


def _exit_with(problem: ConfigError, argv: list[str]) -> None:
    """Exit with status 2 after printing a command-line problem (raise it for --traceback)."""
    if traceback_requested('--traceback' in argv):
        raise problem
    sys.exit(print_error(problem))


def define_config_file(name: str, default: str | None, help_string: str) -> Any:
    """ml_collections' `DEFINE_config_file` (locked config); a default config is parsed here,
    with the command line's overrides, so their errors are reported here."""
    from ml_collections import config_flags
    try:
        return config_flags.DEFINE_config_file(name, default, help_string, lock_config=True)
    except Exception as err:
        problem = config_args.diagnose(sys.argv, name, default, err)
        if problem is None:
            raise
        _exit_with(problem, sys.argv)


def _config_flags() -> list[tuple[str, str | None]]:
    """(name, default config file) of every ml_collections config flag defined."""
    from absl import flags
    from ml_collections.config_flags import config_flags as definitions
    found = []
    for name in list(flags.FLAGS):
        flag = flags.FLAGS[name]
        if definitions.is_config_flag(flag):
            default = getattr(flag, 'default_unparsed', None)
            found.append((name, default if isinstance(default, str) else None))
    return found


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with the `--config.*` overrides checked (config_args): a problem
    with them is one `error:` line and exit status 2; other flag errors stay absl's."""
    from absl import app, flags
    try:
        remaining = flags.FLAGS(argv)
    except Exception as err:
        for name, default in _config_flags():
            problem = config_args.diagnose(argv, name, default, err)
            if problem is not None:
                _exit_with(problem, argv)
        if isinstance(err, flags.Error):
            return app.parse_flags_with_usage(argv)   # absl's own message and exit status
        raise
    for name, default in _config_flags():
        problem = config_args.diagnose(argv, name, default, None, parsed=flags.FLAGS[name].value)
        if problem is not None:
            _exit_with(problem, argv)
    return remaining


def run_absl(main: Callable[[list[str]], Any]) -> None:
    """`absl.app.run(main)` with a `--traceback` flag, the `--config.*` overrides checked
    (`parse_flags`) and the project's errors reported by `report_errors` (the exit status is
    main's return value, 2 on such an error)."""
    from absl import app, flags

    flags.DEFINE_bool('traceback', False, TRACEBACK_HELP)
    app.run(lambda argv: report_errors(lambda: main(argv),
                                       show_traceback=flags.FLAGS.traceback),
            flags_parser=parse_flags)
