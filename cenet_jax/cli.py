"""One place where the entry points (train.py, eval.py, `python -m cenet_jax.convert`) turn the
project's own errors into their message and exit status 2; other exceptions keep their traceback.

`--traceback` (or the environment variable CENET_JAX_TRACEBACK=1) shows the full traceback of
the project's errors too.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from cenet_jax.errors import CenetError

TRACEBACK_ENV = 'CENET_JAX_TRACEBACK'
USER_ERROR_STATUS = 2
TRACEBACK_HELP = (f'Show the full Python traceback of errors (also: {TRACEBACK_ENV}=1); by '
                  'default the project\'s own errors print their message alone.')


def traceback_requested(flag: bool = False) -> bool:
    """Whether the flag or the environment variable asks for full tracebacks."""
    return flag or os.environ.get(TRACEBACK_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def report_errors(main: Callable[[], Any], *, show_traceback: bool = False) -> Any:
    """Run `main()`; a CenetError prints `error: <message>` to stderr and returns exit status 2
    (re-raised with its traceback when requested)."""
    try:
        return main()
    except CenetError as err:
        if traceback_requested(show_traceback):
            raise
        print(f'error: {err}\n(for the full traceback pass --traceback or set {TRACEBACK_ENV}=1)',
              file=sys.stderr)
        return USER_ERROR_STATUS


def run_absl(main: Callable[[list[str]], Any]) -> None:
    """`absl.app.run(main)` with a `--traceback` flag and the project's errors reported by
    `report_errors` (the exit status is main's return value, 2 on such an error)."""
    from absl import app, flags

    flags.DEFINE_bool('traceback', False, TRACEBACK_HELP)
    app.run(lambda argv: report_errors(lambda: main(argv),
                                       show_traceback=flags.FLAGS.traceback))
