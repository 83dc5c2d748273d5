"""Former location of the HDF5 DAQ reader, now :mod:`plscope.io.daq.hdf5` (same module object)."""

import sys

from .daq import hdf5 as _hdf5

sys.modules[__name__] = _hdf5
