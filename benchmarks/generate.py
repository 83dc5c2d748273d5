"""Benchmark run folders from a small renderer of its own (imports nothing from plscope).

The benchmark data must not come from the analysis's own image model
(``plscope.sim``), so this module renders them independently and simply:

- **particles**: uniformly bright squares (side 4-9 px = 400-900 nm at
  100 nm/px) blurred by a Gaussian PSF of sigma 1.3 px (130 nm), i.e. the
  analytic product of two erf differences, on a jittered grid (centres
  >= 14 px apart), with a per-particle brightness;
- **PL**: a square-wave field (ON then OFF, 3 levels cycling) quenches the
  PL exponentially while ON (depth 20-50 %, growing with the field; time
  constant 0.8-2.5 s per particle) and lets it recover exponentially while
  OFF (time constant 1.5 x that);
- **camera**: a flat background of 40 photons on a 100 ADU offset, shot
  noise (Gaussian approximation of Poisson, sqrt(mean)) and 2 ADU read
  noise, written frame block by frame block as a plain uint16 TIFF (BigTIFF
  above 2 GiB) with ``tifffile``; no stage drift;
- **DAQ**: ``daq.csv`` sampled at 500 Hz: ``camera_ttl`` (5 V during each
  exposure, 1 s of idle log before the first and after the last frame) and
  ``fg_voltage`` (the recorded function-generator output, field / gain x gap);
- ``experiment.toml`` naming them (pixel 100 nm, gain 20, gap 10 um).

A spectral run (``spectra.tif`` of single-particle Lorentzian lines over a
dispersion given as coefficients, same DAQ) is written by
:func:`write_spectra_run`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAME_RATE_HZ = 10.0
EXPOSURE_S = 0.08
PERIOD_S = 20.0  # ON 10 s then OFF 10 s: 200 frames per cycle
FIELDS_KV_PER_CM = (60.0, 90.0, 120.0)
GAIN = 20.0
GAP_UM = 10.0
DAQ_RATE_HZ = 500.0
LEAD_S = 1.0
PIXEL_NM = 100.0
PSF_SIGMA_PX = 1.3
OFFSET_ADU = 100.0
BACKGROUND = 40.0
READ_NOISE_ADU = 2.0


def schedule(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame start times (s, DAQ clock) and the field (kV/cm) at each frame's middle."""
    t = LEAD_S + np.arange(n_frames) / FRAME_RATE_HZ
    return t, field_at(t + EXPOSURE_S / 2, n_frames)


def field_at(t_s: np.ndarray, n_frames: int) -> np.ndarray:
    """The applied field (kV/cm): ON during the first half of each period after 2 s of lead-in.

    Only whole periods inside the movie are applied (the field stays OFF after the last one).
    """
    local = np.asarray(t_s, float) - LEAD_S - 2.0
    n_cycles = int((n_frames / FRAME_RATE_HZ - 2.0) // PERIOD_S)
    cycle = np.floor(local / PERIOD_S).astype(int)
    on = (local >= 0) & (cycle < n_cycles) & ((local - cycle * PERIOD_S) < PERIOD_S / 2)
    level = np.asarray(FIELDS_KV_PER_CM)[np.clip(cycle, 0, None) % len(FIELDS_KV_PER_CM)]
    return np.where(on, level, 0.0)


def pl_factors(n_frames: int, n_particles: int, rng: np.random.Generator) -> np.ndarray:
    """Relative PL of every particle in every frame, shape (n_frames, n_particles)."""
    _, field = schedule(n_frames)
    tau_pol = rng.uniform(0.8, 2.5, n_particles)
    tau_rec = 1.5 * tau_pol
    depth = rng.uniform(0.2, 0.5, n_particles) / max(FIELDS_KV_PER_CM)
    dt = 1.0 / FRAME_RATE_HZ
    out = np.empty((n_frames, n_particles))
    level = np.ones(n_particles)
    for k in range(n_frames):  # first-order relaxation toward the field's steady state
        target = 1.0 - depth * field[k]
        tau = tau_pol if field[k] > 0 else tau_rec
        level = target + (level - target) * np.exp(-dt / tau)
        out[k] = level
    return out


def particle_grid(n_particles: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Centres (row, col) on a jittered grid that fits ``n_particles`` with >= 14 px between them."""
    border = 12
    rows, cols = shape[0] - 2 * border, shape[1] - 2 * border
    spacing = min(np.sqrt(rows * cols / n_particles), 40.0)
    while int(rows // spacing) * int(cols // spacing) < n_particles and spacing >= 14:
        spacing *= 0.98
    nr, nc = int(rows // spacing), int(cols // spacing)
    if spacing < 14:
        raise ValueError(f"{n_particles} particles do not fit in {shape} with 14 px spacing")
    sites = rng.choice(nr * nc, n_particles, replace=False)
    jitter = rng.uniform(-0.08, 0.08, (n_particles, 2)) * spacing
    return (
        np.column_stack([border + (sites // nc + 0.5) * spacing, border + (sites % nc + 0.5) * spacing])
        + jitter
    )


def _blurred_edge(x: np.ndarray, centre: float, side: float) -> np.ndarray:
    """A 1-D box of width ``side`` convolved with the Gaussian PSF, integrated over unit pixels."""
    from scipy.special import erf

    def cdf(u):  # integral of the blurred box up to u
        s = PSF_SIGMA_PX * np.sqrt(2.0)
        a, b = (u - centre + side / 2) / s, (u - centre - side / 2) / s
        ia = a * erf(a) + np.exp(-a * a) / np.sqrt(np.pi)
        ib = b * erf(b) + np.exp(-b * b) / np.sqrt(np.pi)
        return 0.5 * s * (ia - ib)

    return cdf(x + 0.5) - cdf(x - 0.5)


def spot_matrix(centres: np.ndarray, sides: np.ndarray, totals: np.ndarray, shape: tuple[int, int]):
    """Sparse (pixels x particles) matrix of each particle's photons per pixel at full PL."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for i, ((r, c), side, total) in enumerate(zip(centres, sides, totals, strict=True)):
        h = int(np.ceil(side / 2 + 4 * PSF_SIGMA_PX))
        rr = np.arange(max(int(r) - h, 0), min(int(r) + h + 2, shape[0]))
        cc = np.arange(max(int(c) - h, 0), min(int(c) + h + 2, shape[1]))
        g = np.outer(_blurred_edge(rr, r, side), _blurred_edge(cc, c, side))
        g *= total / g.sum()
        rows.append((rr[:, None] * shape[1] + cc[None, :]).ravel())
        cols.append(np.full(g.size, i))
        vals.append(g.ravel())
    n_pix = shape[0] * shape[1]
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_pix, len(centres)),
        dtype=np.float32,
    )


def write_movie(
    path: Path, n_frames: int, n_particles: int, shape: tuple[int, int], *, seed: int = 0, block: int = 64
) -> dict:
    """Write the movie TIFF; returns the particles' centres, sigmas and amplitudes."""
    import tifffile

    rng = np.random.default_rng(seed)
    centres = particle_grid(n_particles, shape, rng)
    sides = rng.uniform(4.0, 9.0, n_particles)
    totals = 300.0 * sides**2 * rng.uniform(0.7, 1.4, n_particles)
    spots = spot_matrix(centres, sides, totals, shape)
    factors = pl_factors(n_frames, n_particles, rng).astype(np.float32)
    n_pix = shape[0] * shape[1]
    bigtiff = n_frames * n_pix * 2 > 2**31 - 2**25
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tif:
        for k0 in range(0, n_frames, block):
            k1 = min(k0 + block, n_frames)
            lam = (spots @ factors[k0:k1].T).T + np.float32(BACKGROUND)  # (frames, pixels)
            noise = rng.standard_normal(lam.shape, dtype=np.float32)
            img = lam + noise * np.sqrt(lam + np.float32(READ_NOISE_ADU**2)) + np.float32(OFFSET_ADU)
            np.clip(np.rint(img, out=img), 0, 65535, out=img)
            for frame in img.astype(np.uint16).reshape(k1 - k0, *shape):
                tif.write(frame, contiguous=True, photometric="minisblack", metadata={"axes": "TYX"})
    return {"centre_rc_px": centres.tolist(), "side_px": sides.tolist()}


def write_daq(path: Path, n_frames: int) -> None:
    """``daq.csv``: time_s, camera_ttl, fg_voltage at DAQ_RATE_HZ."""
    starts, _ = schedule(n_frames)
    end = starts[-1] + EXPOSURE_S + LEAD_S
    t = np.arange(0.0, end, 1.0 / DAQ_RATE_HZ)
    k = np.floor((t - LEAD_S) * FRAME_RATE_HZ).astype(int)
    valid = (k >= 0) & (k < n_frames)
    in_exposure = valid & ((t - starts[np.clip(k, 0, n_frames - 1)]) < EXPOSURE_S)
    ttl = np.where(in_exposure, 5.0, 0.0)
    volts = (
        field_at(t, n_frames) * 1e3 * GAP_UM * 1e-4 / GAIN
    )  # kV/cm x cm = kV -> V, over the amplifier gain
    table = np.column_stack([t, ttl, volts])
    with open(path, "w") as fh:
        fh.write("time_s,camera_ttl,fg_voltage\n")
        np.savetxt(fh, table, fmt=["%.4f", "%.1f", "%.5f"], delimiter=",")


EXPERIMENT = """schema = 1

[sample]
name = "benchmark: Gaussian spots, square-wave field (benchmarks/generate.py)"
temperature_K = 296.15
{movie}
[daq]
path = "daq.csv"
camera_ttl = "camera_ttl"
voltage = "fg_voltage"

[field]
amplifier_gain = {gain}
electrode_gap_um = {gap}
{spectra}"""


def write_run(
    folder: Path, n_frames: int, n_particles: int, shape: tuple[int, int], *, seed: int = 0
) -> Path:
    """A complete imaging run folder (movie.tif, daq.csv, experiment.toml)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_movie(folder / "movie.tif", n_frames, n_particles, shape, seed=seed)
    write_daq(folder / "daq.csv", n_frames)
    movie = f'\n[movie]\npath = "movie.tif"\npixel_size_nm = {PIXEL_NM}\npsf_sigma_nm = {PSF_SIGMA_PX * PIXEL_NM}\n'
    (folder / "experiment.toml").write_text(EXPERIMENT.format(movie=movie, gain=GAIN, gap=GAP_UM, spectra=""))
    return folder


#: dispersion of the simulated spectrograph, lambda(px) = c0 + c1 px (nm)
DISPERSION_NM = (480.0, 0.2, 0.0)


def write_spectra_run(
    folder: Path, n_frames: int, *, n_tracks: int = 8, n_rows: int = 128, n_cols: int = 512, seed: int = 0
) -> Path:
    """A spectral run folder: ``spectra.tif`` (t, slit_row, wavelength_pixel), daq.csv, experiment.toml.

    Each of ``n_tracks`` particles is a stripe along the slit (Gaussian across it, sigma 1.2 rows) with a
    Lorentzian line (centre 520-545 nm, FWHM 15-25 nm) whose centre shifts by
    -0.02 nm per kV/cm while the field is ON; constant background, Gaussian
    noise of sqrt(mean) plus read noise.
    """
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    _, field = schedule(n_frames)
    wl = DISPERSION_NM[0] + DISPERSION_NM[1] * np.arange(n_cols)
    centre = rng.uniform(520.0, 545.0, n_tracks)
    hwhm = rng.uniform(7.5, 12.5, n_tracks)
    height = rng.uniform(300.0, 1000.0, n_tracks)
    track_rows = np.linspace(10.0, n_rows - 11.0, n_tracks)
    rows = np.arange(n_rows)[:, None]
    across = np.exp(-0.5 * ((rows - track_rows[None, :]) / 1.2) ** 2)  # (rows, tracks): the slit profile
    with tifffile.TiffWriter(folder / "spectra.tif") as tif:
        for k in range(n_frames):
            c = centre - 0.02 * field[k]
            lines = height[:, None] / (1.0 + ((wl[None, :] - c[:, None]) / hwhm[:, None]) ** 2)
            lam = BACKGROUND + across @ lines
            img = lam + rng.standard_normal(lam.shape) * np.sqrt(lam + READ_NOISE_ADU**2) + OFFSET_ADU
            tif.write(
                np.clip(np.rint(img), 0, 65535).astype(np.uint16), contiguous=True, photometric="minisblack"
            )
    write_daq(folder / "daq.csv", n_frames)
    spectra = (
        '\n[spectra]\npath = "spectra.tif"\ncamera_ttl = "camera_ttl"\n'
        f"dispersion_nm = [{DISPERSION_NM[0]}, {DISPERSION_NM[1]}, {DISPERSION_NM[2]}]\n"
    )
    (folder / "experiment.toml").write_text(
        EXPERIMENT.format(movie="", gain=GAIN, gap=GAP_UM, spectra=spectra)
    )
    return folder
