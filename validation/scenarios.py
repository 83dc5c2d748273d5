"""Particle scenarios (issue 11): shapes, PSFs, lost frames, real-bead-like particles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .forward.imaging import MovieSpec, ParticleSpec
from .forward.runfolder import Experiment, size_nm, write_run_folder
from .registry import scenario

MOBILITY = 2.5e-10  # cm^2/(V s), population mean
PHOTONS_PER_UM2 = 20000.0  # per exposure at full PL


def _layout(rng, n: int, shape_px: tuple[int, int], min_gap_px: float, margin_px: float) -> np.ndarray:
    """``n`` random centres at least ``min_gap_px`` apart and ``margin_px`` from the border."""
    rows, cols = shape_px
    pts: list[tuple[float, float]] = []
    for _ in range(20000):
        if len(pts) == n:
            break
        x = rng.uniform(margin_px, cols - margin_px)
        y = rng.uniform(margin_px, rows - margin_px)
        if all(np.hypot(x - a, y - b) >= min_gap_px for a, b in pts):
            pts.append((x, y))
    if len(pts) < n:
        raise RuntimeError("layout: field too crowded")
    return np.asarray(pts)


def _experiment(rng, shapes: list[dict], **kw) -> Experiment:
    movie = kw.pop("movie", MovieSpec())
    n = len(shapes)
    pos = _layout(rng, n, movie.shape_px, min_gap_px=kw.pop("min_gap_px", 16.0), margin_px=10.0)
    velocity = kw.pop("velocity_px_per_frame", None)
    particles = []
    for i, s in enumerate(shapes):
        area_um2 = (size_nm(s) / 1000.0) ** 2
        v = (0.0, 0.0) if velocity is None else tuple(rng.normal(0.0, velocity, 2))
        particles.append(ParticleSpec(pos[i, 0], pos[i, 1], s, PHOTONS_PER_UM2 * area_um2, v))
    sizes = np.array([size_nm(s) for s in shapes])
    mu = MOBILITY * rng.lognormal(0.0, 0.1, n)
    mu *= MOBILITY / mu.mean()
    return Experiment(
        movie=movie,
        particles=particles,
        mobility_cm2_per_Vs=mu,
        switching_efficiency=rng.uniform(0.35, 0.55, n),
        tau_rec_s=3.0 * sizes / 1000.0 * rng.lognormal(0.0, 0.1, n),
        **kw,
    )


def _squares(rng, n: int, angle: bool) -> list[dict]:
    return [
        {
            "kind": "square",
            "side_nm": float(rng.uniform(400, 1000)),
            "angle_deg": float(rng.uniform(0, 90) if angle else 0.0),
        }
        for _ in range(n)
    ]


@scenario(
    "squares_any_angle",
    topic="particles",
    quick=True,
    description="8 squares 400-1000 nm at random in-plane angles, Gaussian PSF 120 nm (estimated)",
)
def squares_any_angle(run_dir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return write_run_folder(run_dir, _experiment(rng, _squares(rng, 8, angle=True)), seed)


@scenario(
    "rectangles_aspect_1.5",
    topic="particles",
    description="8 rectangles, aspect 1-1.5, random angles, Gaussian PSF 120 nm (estimated)",
)
def rectangles(run_dir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(8):
        b = float(rng.uniform(400, 800))
        shapes.append(
            {
                "kind": "rectangle",
                "a_nm": b * float(rng.uniform(1.0, 1.5)),
                "b_nm": b,
                "angle_deg": float(rng.uniform(0, 180)),
            }
        )
    return write_run_folder(run_dir, _experiment(rng, shapes), seed)


@scenario(
    "discs_rounded",
    topic="particles",
    description="4 discs and 4 rounded squares 400-1000 nm, Airy PSF (NA 0.95, 550 nm)",
)
def discs_rounded(run_dir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes: list[dict] = []
    for k in range(8):
        d = float(rng.uniform(400, 1000))
        if k % 2:
            shapes.append({"kind": "disc", "diameter_nm": d})
        else:
            shapes.append(
                {
                    "kind": "rounded_square",
                    "side_nm": d,
                    "radius_nm": 0.2 * d,
                    "angle_deg": float(rng.uniform(0, 90)),
                }
            )
    movie = MovieSpec(psf={"kind": "airy", "wavelength_nm": 550.0, "na": 0.95})
    return write_run_folder(run_dir, _experiment(rng, shapes, movie=movie), seed)


def _lost(run_dir: Path, seed: int, n_lost: int) -> dict:
    rng = np.random.default_rng(seed)
    exp = _experiment(rng, _squares(rng, 8, angle=False))
    # frames lost in the middle of the run (while the field is stepping)
    n_pulses = int(
        np.floor(
            (exp.lead_in_s + len(exp.fields_kV_per_cm) * exp.cycles_per_level * exp.period_s)
            * exp.frame_rate_hz
        )
    )
    exp.lost_frames = tuple(
        sorted(int(k) for k in rng.choice(np.arange(n_pulses // 4, 3 * n_pulses // 4), n_lost, replace=False))
    )
    return write_run_folder(run_dir, exp, seed)


@scenario(
    "lost_frame_1",
    topic="particles",
    quick=True,
    description="8 squares; one frame missing from the movie while its TTL pulse is logged",
)
def lost_frame_1(run_dir: Path, seed: int) -> dict:
    return _lost(run_dir, seed, 1)


@scenario(
    "lost_frames_3",
    topic="particles",
    description="8 squares; three frames missing from the movie while their TTL pulses are logged",
)
def lost_frames_3(run_dir: Path, seed: int) -> dict:
    return _lost(run_dir, seed, 3)


@scenario(
    "real_bead_like",
    topic="particles",
    description="8 diffraction-limited discs 100-200 nm, Airy PSF, slow motion",
)
def real_bead_like(run_dir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = [{"kind": "disc", "diameter_nm": float(rng.uniform(100, 200))} for _ in range(8)]
    movie = MovieSpec(psf={"kind": "airy", "wavelength_nm": 600.0, "na": 1.2}, background_photons=20.0)
    exp = _experiment(rng, shapes, movie=movie, velocity_px_per_frame=0.002, min_gap_px=12.0)
    for p in exp.particles:
        p.photons *= 20.0  # beads are bright for their size
    return write_run_folder(run_dir, exp, seed)


@scenario(
    "touching_pair",
    topic="particles",
    description="2 pairs of squares 500-700 nm touching edge to edge + 2 single squares, Gaussian PSF 120 nm",
)
def touching_pair(run_dir: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = [{"kind": "square", "side_nm": float(rng.uniform(500, 700)), "angle_deg": 0.0} for _ in range(6)]
    exp = _experiment(rng, shapes, min_gap_px=26.0)
    px = exp.movie.pixel_size_nm
    cols = exp.movie.shape_px[1]
    pairs = [(0, 1), (2, 3)]
    for a, b in pairs:
        pa, pb = exp.particles[a], exp.particles[b]
        gap_px = 0.5 * (shapes[a]["side_nm"] + shapes[b]["side_nm"]) / px  # centre distance: touching
        pb.x_px = pa.x_px + (gap_px if pa.x_px < cols / 2 else -gap_px)
        pb.y_px = pa.y_px
    exp.extra = {"pairs": [list(p) for p in pairs]}
    return write_run_folder(run_dir, exp, seed)
