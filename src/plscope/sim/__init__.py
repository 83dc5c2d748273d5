"""A physical simulator of single-particle PL imaging runs, with ground truth.

:func:`simulate_imaging_run` writes a run folder (``movie.tif``, ``daq.csv``,
``experiment.toml``) and ``ground_truth.json``; the pure model functions it is
built from are exported for tests:

- :mod:`plscope.sim.kinetics` -- field schedule and the biexponential
  polarization/recovery model of the PL;
- :mod:`plscope.sim.render` -- particle layout, rendering, camera noise,
  drift and blinking;
- :mod:`plscope.sim.imaging` -- parameters, ground truth and file writers.
"""

from .imaging import (
    NUISANCES,
    ImagingSimParams,
    SimulatedPopulation,
    SimulationError,
    daq_signals,
    diffusion_coefficient_cm2_per_s,
    draw_population,
    expected_frame,
    experiment_toml,
    frame_photons,
    ground_truth,
    relative_pl,
    simulate_imaging_run,
)
from .kinetics import (
    biexponential_weights,
    exposure_average,
    field_at,
    polarization_time_s,
    quench_state,
    step_response,
    switch_schedule,
    switching_efficiency,
)
from .render import background_image, camera_counts, place_particles, render_particles

__all__ = [
    "NUISANCES",
    "ImagingSimParams",
    "SimulatedPopulation",
    "SimulationError",
    "background_image",
    "biexponential_weights",
    "camera_counts",
    "daq_signals",
    "diffusion_coefficient_cm2_per_s",
    "draw_population",
    "expected_frame",
    "experiment_toml",
    "exposure_average",
    "field_at",
    "frame_photons",
    "ground_truth",
    "place_particles",
    "polarization_time_s",
    "quench_state",
    "relative_pl",
    "render_particles",
    "simulate_imaging_run",
    "step_response",
    "switch_schedule",
    "switching_efficiency",
]

# spectral runs (spectrograph frames, lamp, DAQ) with ground truth
from .spectral import (
    NEON_LINES_NM,
    SPECTRAL_NUISANCES,
    SpectralSimError,
    SpectralSimParams,
    lamp_spectrum,
    pixel_of_wavelength,
    simulate_spectral_run,
    spectral_daq_signals,
    spectral_experiment_toml,
    stripe_profile,
)

__all__ += [
    "NEON_LINES_NM",
    "SPECTRAL_NUISANCES",
    "SpectralSimError",
    "SpectralSimParams",
    "lamp_spectrum",
    "pixel_of_wavelength",
    "simulate_spectral_run",
    "spectral_daq_signals",
    "spectral_experiment_toml",
    "stripe_profile",
]
