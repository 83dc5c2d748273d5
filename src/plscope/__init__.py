"""plscope: single-particle photoluminescence microscopy under switched fields.

Stages, one subpackage each:

- :mod:`plscope.io` -- experiment.toml, image stacks, DAQ logs
- :mod:`plscope.sync` -- TTL edges, frame times, field levels and cycles
- :mod:`plscope.tracking` -- detection, particle size, intensity traces
- :mod:`plscope.kinetics` -- cycle averaging, biexponential fits, mobility
- :mod:`plscope.pipeline` -- orchestration of a run folder
- :mod:`plscope.report` -- the self-contained HTML report
- :mod:`plscope.sim` -- a physical simulator with ground truth

The Python API (imported on first use, so ``import plscope`` stays fast):
:func:`analyze` a run folder, :func:`load` a results folder, :func:`reanalyze`
with other settings, :func:`simulate` a run with known ground truth.

>>> import plscope
>>> sorted(n for n in plscope.__all__ if n.islower() and not n.startswith("_"))
['analyze', 'load', 'reanalyze', 'simulate']
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import PlscopeError, RunFolderError

if TYPE_CHECKING:  # the lazily imported API, for type checkers and IDEs
    from .api import Results, analyze, load, reanalyze, simulate
    from .config import AnalysisSettings

try:
    __version__ = version("plscope")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "analyze": "api",
    "load": "api",
    "reanalyze": "api",
    "simulate": "api",
    "Results": "api",
    "AnalysisSettings": "config",
}

__all__ = [
    "AnalysisSettings",
    "PlscopeError",
    "Results",
    "RunFolderError",
    "__version__",
    "analyze",
    "load",
    "reanalyze",
    "simulate",
]


def __getattr__(name: str) -> Any:
    """Import the API on first use (``plscope.analyze``, ...)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
