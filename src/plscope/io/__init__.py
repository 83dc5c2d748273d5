"""Reading run folders: experiment.toml, image stacks and DAQ logs."""

from .config import ExperimentConfig, load_experiment
from .daq import DaqLog, read_daq
from .stack import Stack, open_stack

__all__ = ["DaqLog", "ExperimentConfig", "Stack", "load_experiment", "open_stack", "read_daq"]
