"""The one exception type the data package raises for bad input."""
from cenet_jax.errors import CenetError


class DataError(CenetError, ValueError):
    """A dataset folder, file or record is missing, unreadable or inconsistent.

    The message always names the offending path (or record id) and what was expected, so a bad
    dataset is reported before training starts, never as a bare traceback from a worker.
    """
