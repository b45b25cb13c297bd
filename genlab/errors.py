"""What a user did wrong, or has that genlab cannot work with: one family of errors.

Every error here carries the one sentence the user reads (``str(e)``): what is wrong and what to do.
The CLI and the app catch ``GenlabError`` and show that sentence; any other exception is a bug in
genlab and surfaces as a traceback.

Each subclass keeps the built-in base it has always had (a bad config value is still a
``ValueError``), so code that catches the built-in type goes on working.
"""

from __future__ import annotations


class GenlabError(Exception):
    """Something the user asked for or gave that genlab refuses; the message says why and what to do."""


class ConfigError(GenlabError, ValueError):
    """A config value or key that genlab refuses; the message names it and says what is allowed."""


class ModelTooLarge(ConfigError):
    """A model (or a batch of it) over genlab's size limits; the message says which limit and how to raise it."""


class BadFile(GenlabError, ValueError):
    """A file genlab cannot use; the message names the file and what is wrong with it."""


class CheckpointError(GenlabError, ValueError):
    """A checkpoint that cannot be loaded into the model it describes."""


class DatasetUnavailable(GenlabError, RuntimeError):
    """A dataset that cannot be had on this machine; the message says what to do."""


class FIDWeightsUnavailable(GenlabError, RuntimeError):
    """The Inception weights FID needs are not on this machine; the message says where to put them."""


class HubError(GenlabError, RuntimeError):
    """A Hub operation that failed; the message says why in one sentence."""


class PublicModeError(GenlabError, PermissionError):
    """Something a visitor of a public app may not do; the message says what is allowed."""


class RunError(GenlabError, RuntimeError):
    """A run that cannot do what was asked of it now (stop a finished run, resume a running one, ...)."""


class RunLocked(RunError):
    """Another live process is training this run."""


class NotARun(GenlabError, FileNotFoundError):
    """A folder that is not a run directory (it has no run.json)."""


class TrainingDiverged(RunError):
    """The loss or the gradients stayed non-finite for too many steps in a row."""


class RunExists(GenlabError, FileExistsError):
    """A new run was asked for in a folder that already holds one."""
