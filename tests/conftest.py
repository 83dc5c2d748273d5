"""Shared fixtures: simulated run folders with ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """A small, fast simulated run: 6 particles, 2 levels x 2 cycles, all nuisances on."""
    from plscope.sim import ImagingSimParams, simulate_imaging_run

    out = tmp_path_factory.mktemp("small") / "run"
    params = ImagingSimParams(
        n_particles=6,
        image_shape=(96, 96),
        fields_kV_per_cm=(110.0, 130.0),
        cycles_per_level=2,
        period_s=30.0,
        size_range_nm=(500.0, 1000.0),
    )
    truth = simulate_imaging_run(out, params, seed=3)
    return out, truth


@pytest.fixture(scope="session")
def small_output(small_run, tmp_path_factory):
    """The output folder of ``plscope run`` on :func:`small_run` (default settings), made once per worker.

    Read only: a test that changes files in it or re-analyses into it makes its own run (or a copy).
    """
    from plscope.cli import main

    run, _ = small_run
    out = tmp_path_factory.mktemp("small_out") / "out"
    assert main(["-q", "run", str(run), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def small_analysis(small_run):
    """``plscope.analyze`` of :func:`small_run` in memory (default settings), made once per worker; read only."""
    import plscope

    run, _ = small_run
    return plscope.analyze(run)


@pytest.fixture(scope="session")
def tiny_params():
    """The smallest complete imaging run: 3 particles, 64 x 64 px, one field level, 2 cycles.

    A full ``plscope run`` of it takes a few seconds: the run of the batch,
    cluster and safety tests (what they check does not depend on the science).
    """
    from plscope.sim import ImagingSimParams

    return ImagingSimParams(
        n_particles=3,
        image_shape=(64, 64),
        fields_kV_per_cm=(130.0,),
        cycles_per_level=2,
        period_s=24.0,
        lead_in_s=6.0,
        size_range_nm=(600.0, 1000.0),
    )


@pytest.fixture(scope="session")
def simulate_tiny(tiny_params):
    """``simulate_tiny(folder, seed)``: write a :func:`tiny_params` run folder; returns its ground truth."""
    from plscope.sim import simulate_imaging_run

    def simulate(folder: Path, seed: int) -> dict:
        return simulate_imaging_run(folder, tiny_params, seed=seed)

    return simulate


@pytest.fixture
def match():
    """The :func:`match_particles` helper, as a fixture."""
    return match_particles


def match_particles(found: pd.DataFrame, truth: list[dict], *, max_dist_px: float = 2.0) -> dict[int, int]:
    """Map true particle_id -> found particle_id by nearest position (one to one)."""
    t = np.array([[p["x_px"], p["y_px"]] for p in truth])
    f = found[["x_px", "y_px"]].to_numpy(float)
    d = np.hypot(t[:, None, 0] - f[None, :, 0], t[:, None, 1] - f[None, :, 1])
    mapping = {}
    for i, row in enumerate(d):
        j = int(np.argmin(row))
        if row[j] <= max_dist_px and j not in mapping.values():
            mapping[int(truth[i]["particle_id"])] = int(found["particle_id"].iloc[j])
    return mapping


def load_truth(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "ground_truth.json").read_text())
