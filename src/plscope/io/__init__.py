"""Reading run folders: experiment.toml, image stacks and DAQ logs.

Stacks (:func:`open_stack`): TIFF/BigTIFF, ImageJ, OME-TIFF (single or
multi-file), Micro-Manager MMStack datasets, Princeton Instruments SPE v2/v3
and globs of files, as lazy dask arrays. DAQ logs (:func:`read_daq`): CSV,
NI TDMS (npTDMS, streamed), HDF5 (optional h5py).
"""

from .config import ExperimentConfig, load_experiment
from .daq import DaqLog, read_daq
from .stack import Stack, open_stack

__all__ = ["DaqLog", "ExperimentConfig", "Stack", "load_experiment", "open_stack", "read_daq"]
