"""plscope: single-particle photoluminescence microscopy under switched fields.

Stages, one subpackage each:

- :mod:`plscope.io` -- experiment.toml, image stacks, DAQ logs
- :mod:`plscope.sync` -- TTL edges, frame times, field levels and cycles
- :mod:`plscope.tracking` -- detection, particle size, intensity traces
- :mod:`plscope.kinetics` -- cycle averaging, biexponential fits, mobility
- :mod:`plscope.pipeline` -- orchestration of a run folder
- :mod:`plscope.report` -- the self-contained HTML report
- :mod:`plscope.sim` -- a physical simulator with ground truth
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import PlscopeError, RunFolderError

try:
    __version__ = version("plscope")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["PlscopeError", "RunFolderError", "__version__"]
