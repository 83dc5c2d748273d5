"""Fixtures of the safety tests: a tiny simulated run folder, its analysed output, tree snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plscope.sim import ImagingSimParams

#: a tiny run (3 particles, 64x64 px, one field level, 2 cycles): a full `plscope run` in a few seconds
TINY = ImagingSimParams(
    n_particles=3,
    image_shape=(64, 64),
    fields_kV_per_cm=(130.0,),
    cycles_per_level=2,
    period_s=24.0,
    lead_in_s=6.0,
    size_range_nm=(600.0, 1000.0),
)


@pytest.fixture(scope="session")
def tiny_src(tmp_path_factory) -> Path:
    from plscope.sim import simulate_imaging_run

    out = tmp_path_factory.mktemp("tiny") / "run"
    simulate_imaging_run(out, TINY, seed=5)
    (out / "ground_truth.json").unlink()
    return out


@pytest.fixture
def tiny_run(tiny_src, tmp_path) -> Path:
    """A private copy of the tiny run folder (tmp_path/session/run)."""
    dst = tmp_path / "session" / "run"
    shutil.copytree(tiny_src, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_output(tiny_src, tmp_path_factory) -> Path:
    """The tiny run analysed once by `plscope run` (copy it before changing it)."""
    from plscope.cli import main

    out = tmp_path_factory.mktemp("tinyout") / "out"
    assert main(["-q", "run", str(tiny_src), "--out", str(out), "--no-progress"]) == 0
    return out
