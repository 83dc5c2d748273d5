"""A traces-like table for the tests of stored traces (written here, not by plscope's extraction)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def traces_like(
    n_frames: int, n_particles: int, *, seed: int = 0, first_frame: int = 0, id_step: int = 1
) -> tuple[pd.DataFrame, np.random.Generator]:
    """Frame-major rows (every particle in every frame, int64 keys), an ``intensity`` with NaN, -0.0,
    inf and tiny values, and ``x_px``; the generator, for the columns a test adds."""
    rng = np.random.default_rng(seed)
    n = n_frames * n_particles
    intensity = rng.normal(1000.0, 30.0, n)
    intensity[rng.random(n) < 0.01] = np.nan
    intensity[:3] = [-0.0, np.inf, 1e-7]
    frames = np.arange(first_frame, first_frame + n_frames, dtype=np.int64)
    ids = np.arange(3, 3 + id_step * n_particles, id_step, dtype=np.int64)
    table = pd.DataFrame(
        {
            "frame": np.repeat(frames, n_particles),
            "particle_id": np.tile(ids, n_frames),
            "intensity": intensity,
            "x_px": rng.uniform(0, 512, n),
        }
    )
    return table, rng
