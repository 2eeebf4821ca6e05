"""The project's own exception types: problems a user can fix, reported by the command-line
entry points as one message (exit status 2) instead of a traceback (see cenet_jax/cli.py)."""


class CenetError(Exception):
    """Base of every error whose message alone tells the user what is wrong and what to do."""


class ConfigError(CenetError, ValueError):
    """A configuration value is invalid, or contradicts the run stored in a workdir."""


class CheckpointError(CenetError):
    """No checkpoint to use: none saved yet, the requested one is missing, or none restores."""


class MissingFileError(CenetError, FileNotFoundError):
    """A file named by the user (weights, config.json, ...) does not exist."""


class DiskFullError(CenetError, OSError):
    """A write ran out of disk space; the message names the folder and the bytes needed and free,
    and what on disk is intact (see cenet_jax/disk.py)."""
