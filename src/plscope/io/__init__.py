"""Reading run folders: experiment.toml, image stacks and DAQ logs."""

from .config import ExperimentConfig, load_experiment

__all__ = ["ExperimentConfig", "load_experiment"]
