"""The one exception type the data package raises for bad input."""
from cenet_jax.errors import CenetError


class DataError(CenetError, ValueError):
    """A dataset folder, file or record is missing, unreadable or inconsistent.

    The message always names the offending path (or record id) and what was expected, so a bad
    dataset is reported before training starts, never as a bare traceback from a worker.
    """


class NoValidationSplit(DataError):
    """'val' was asked for, but the configuration holds no validation images (data.val_fraction
    is 0 and the set has no validation list). Training catches it and runs without validation;
    everything else (eval.py, experiments/threshold.py) reports it."""
