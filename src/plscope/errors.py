"""Exception types raised for bad input.

Every error a user can cause by feeding plscope a bad file derives from
:class:`PlscopeError` (a :class:`ValueError`), so that the command line can
report it in one line without a traceback.
"""

from __future__ import annotations

import os


class PlscopeError(ValueError):
    """Base class of all expected, user-facing errors."""


class RunFolderError(PlscopeError):
    """A file of a run folder is missing, unreadable or inconsistent.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file (or folder); named first in the message.
    problem : str
        What is wrong and, where useful, what was expected.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class SyncError(RunFolderError):
    """Frames and DAQ log cannot be synchronized exactly."""


class ConfigError(RunFolderError):
    """experiment.toml (or a settings file) is invalid."""
