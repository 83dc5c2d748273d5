"""Fixtures of the spectra tests: one simulated spectral run, analysed once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spectral_run(tmp_path_factory):
    """A simulated spectral run: 2 particles, 3 field levels x 2 cycles, all nuisances on (950 frames)."""
    from plscope.sim import SpectralSimParams, simulate_spectral_run

    out = tmp_path_factory.mktemp("spectral") / "run"
    params = SpectralSimParams(cycles_per_level=2)
    truth = simulate_spectral_run(out, params, seed=7)
    return out, truth


@pytest.fixture(scope="session")
def spectral_output(spectral_run, tmp_path_factory):
    """``run_spectra`` of :func:`spectral_run`: (output folder, SpectraResult, truth)."""
    from plscope.pipeline.spectra import run_spectra

    run, truth = spectral_run
    out = tmp_path_factory.mktemp("spectral_out") / "out"
    result = run_spectra(run, out)
    return out, result, truth
