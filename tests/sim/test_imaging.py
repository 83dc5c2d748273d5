"""The simulator: its files agree with its ground truth and with the physics."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy.constants import e as ELEMENTARY_CHARGE
from scipy.constants import k as BOLTZMANN

from plscope.io import load_experiment
from plscope.sim import (
    NUISANCES,
    ImagingSimParams,
    SimulationError,
    background_image,
    biexponential_weights,
    diffusion_coefficient_cm2_per_s,
    draw_population,
    exposure_average,
    field_at,
    frame_photons,
    place_particles,
    polarization_time_s,
    quench_state,
    relative_pl,
    render_particles,
    simulate_imaging_run,
    step_response,
    switch_schedule,
)
from plscope.sim.render import ROI_SIGMAS, drift_path
from plscope.tracking.models import blurred_square

FILES = ("movie.tif", "daq.csv", "experiment.toml", "ground_truth.json")

#: small run: 1 level x 2 cycles, 96x96, 3 particles -> 150 frames, ~30k DAQ rows
SMALL = ImagingSimParams(
    n_particles=3,
    image_shape=(96, 96),
    fields_kV_per_cm=(130.0,),
    cycles_per_level=2,
    period_s=10.0,
    lead_in_s=10.0,
    blink_rate_per_s=0.2,
)


def rising_edges(signal: np.ndarray, threshold: float = 2.5) -> np.ndarray:
    high = signal > threshold
    return np.flatnonzero(~high[:-1] & high[1:]) + 1


def particle_windows(truth: dict, params: ImagingSimParams):
    """Pixel windows that hold (all but ~1e-9 of) each particle's light."""
    sigma_px = params.psf_sigma_nm / params.pixel_size_nm
    rows, cols = params.image_shape
    for p in truth["particles"]:
        half = p["size_px"] / 2 + ROI_SIGMAS * sigma_px
        c0, c1 = max(int(np.floor(p["x_px"] - half)), 0), min(int(np.ceil(p["x_px"] + half)) + 1, cols)
        r0, r1 = max(int(np.floor(p["y_px"] - half)), 0), min(int(np.ceil(p["y_px"] + half)) + 1, rows)
        yield slice(r0, r1), slice(c0, c1)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    truth = simulate_imaging_run(out, SMALL, seed=3)
    return out, truth


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    params = dataclasses.replace(SMALL.clean(), photons_per_um2=2e6)  # bright: rounding is negligible
    out = tmp_path_factory.mktemp("clean")
    truth = simulate_imaging_run(out, params, seed=3)
    return out, truth, params


# --------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------


def test_clean_switches_every_nuisance_off():
    p = ImagingSimParams()
    assert all(getattr(p, name) for name in NUISANCES)
    c = p.clean()
    assert not any(getattr(c, name) for name in NUISANCES)
    assert dataclasses.replace(c, **{n: True for n in NUISANCES}) == p


def test_params_round_trip_through_json(small_run):
    _, truth = small_run
    assert ImagingSimParams(**json.loads(json.dumps(truth["params"]))) == SMALL


@pytest.mark.parametrize(
    "change, match",
    [
        ({"duty": 1.0}, "duty"),
        ({"se_at_130": (0.5, 0.9), "fields_kV_per_cm": (150.0,)}, "switching efficiency"),
        ({"fields_kV_per_cm": ()}, "fields_kV_per_cm"),
        ({"size_range_nm": (500.0, 400.0)}, "size_range_nm"),
        ({"exposure_s": 0.2}, "exposure_s"),
        ({"fast_fraction": 0.9, "fast_ratio": 1.2}, "fast_ratio"),
        ({"image_shape": (96,)}, "image_shape"),
        ({"noise": "yes"}, "noise"),
        ({"daq_lead_s": 0.0}, "daq_lead_s"),
    ],
)
def test_invalid_params_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SMALL, **change)


def test_particles_that_do_not_fit_raise(tmp_path):
    params = dataclasses.replace(SMALL, n_particles=40)
    with pytest.raises(SimulationError, match="cannot place 40 particles") as info:
        simulate_imaging_run(tmp_path / "run", params)
    assert str(info.value).startswith("cannot place")  # one clean line for the CLI
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------
# pure model
# --------------------------------------------------------------------------


def test_polarization_time_of_a_micron_particle_at_130_kV_per_cm():
    assert polarization_time_s(1000.0, 2.56e-10, 130.0) == pytest.approx(1e-4 / (2.56e-10 * 1.3e5), rel=1e-12)
    assert polarization_time_s(1000.0, 2.56e-10, 130.0) == pytest.approx(3.0, abs=0.01)


def test_biexponential_weights_keep_the_amplitude_weighted_time():
    a, c = biexponential_weights(0.6, 0.6)
    assert a.sum() == pytest.approx(1.0)
    assert a @ c == pytest.approx(1.0)
    assert c == pytest.approx([0.6, 1.6])
    t = np.linspace(0, 200, 200_001)
    assert np.trapezoid(step_response(t, 2.5, fast_fraction=0.6, fast_ratio=0.6), t) == pytest.approx(
        2.5, rel=1e-6
    )


@pytest.mark.parametrize("size_nm, field", [(400.0, 90.0), (1000.0, 130.0), (1300.0, 110.0)])
def test_tau_from_area_of_model_step_response_is_L_over_mu_E(size_nm, field):
    mu, tau_rec, se = 2.3e-10, 2.0, 0.45
    switch_times, fields = switch_schedule(
        (field,), cycles_per_level=1, period_s=400.0, duty=0.5, first_on_s=5.0
    )
    t = np.arange(0.0, 400.0, 1e-3)
    q = quench_state(
        t,
        switch_times,
        fields,
        size_nm=[size_nm],
        mobility_cm2_per_Vs=[mu],
        tau_rec_s=[tau_rec],
        se_at_130=[se],
        fast_fraction=0.6,
        fast_ratio=0.6,
    )[0]
    se_e = se * field / 130.0
    on = (t >= 5.0) & (t < 205.0)
    off = t >= 205.0
    tau_pol = np.trapezoid(1.0 - q[on] / se_e, t[on])
    tau_off = np.trapezoid(q[off] / q[off][0], t[off])
    assert tau_pol == pytest.approx(size_nm * 1e-7 / (mu * field * 1e3), rel=0.01)
    assert tau_off == pytest.approx(tau_rec, rel=0.01)
    assert q[on][-1] == pytest.approx(se_e, rel=1e-9)  # settles at SE(E)
    assert np.all(q[t < 5.0] == 0.0)


def test_quench_state_is_continuous_across_switch_edges():
    switch_times, fields = switch_schedule(
        (90.0, 130.0), cycles_per_level=2, period_s=6.0, duty=0.5, first_on_s=1.0
    )
    edges = switch_times.ravel()
    kw = dict(
        size_nm=[800.0, 1200.0],
        mobility_cm2_per_Vs=[2.5e-10, 3e-10],
        tau_rec_s=[2.4, 3.6],
        se_at_130=[0.4, 0.5],
        fast_fraction=0.6,
        fast_ratio=0.6,
    )
    before = quench_state(edges - 1e-9, switch_times, fields, **kw)
    after = quench_state(edges + 1e-9, switch_times, fields, **kw)
    np.testing.assert_allclose(before, after, atol=1e-8)
    # the field is off at t < first edge and on in [on_start, on_end)
    assert field_at([0.99, 1.0, 3.999, 4.0], switch_times, fields).tolist() == [0.0, 90.0, 90.0, 0.0]


def test_exposure_average_is_the_window_mean():
    starts = np.array([0.0, 1.0, 2.5])
    got = exposure_average(
        lambda t: np.vstack([3 * t + 1, np.ones_like(t)]), starts, exposure_s=0.2, n_sub=7, chunk_samples=10
    )
    np.testing.assert_allclose(got, [3 * (starts + 0.1) + 1, np.ones(3)])


def test_render_particles_matches_the_exact_full_frame_model():
    shape = (60, 70)
    img = render_particles(shape, [20.3, 45.7], [30.1, 22.9], [8.5, 4.2], [1e4, 3e3], sigma_px=1.3)
    ref = blurred_square(shape, 20.3, 30.1, 8.5, 1.3, total=1e4) + blurred_square(
        shape, 45.7, 22.9, 4.2, 1.3, total=3e3
    )
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-6)
    assert img.sum() == pytest.approx(1.3e4, rel=1e-8)


def test_placement_keeps_clearance_and_border():
    rng = np.random.default_rng(1)
    sides = rng.uniform(4, 13, 16)
    x, y = place_particles(sides, (160, 160), rng=rng, clearance_px=12, border_px=14)
    assert np.all(x - sides / 2 >= 13.5) and np.all(x + sides / 2 <= 145.5)
    assert np.all(y - sides / 2 >= 13.5) and np.all(y + sides / 2 <= 145.5)
    for i in range(16):
        for j in range(i):
            half = (sides[i] + sides[j]) / 2
            assert max(abs(x[i] - x[j]) - half, abs(y[i] - y[j]) - half) >= 12
    with pytest.raises(ValueError, match="cannot place"):
        place_particles(np.full(30, 10.0), (96, 96), rng=rng, max_tries=50, max_restarts=2)


def test_drift_starts_at_zero_and_reaches_its_maximum():
    path = drift_path(500, max_px=1.5, rng=np.random.default_rng(0))
    assert path.shape == (500, 2)
    assert np.all(path[0] == 0)
    assert np.hypot(*path.T).max() == pytest.approx(1.5)
    assert np.abs(np.diff(path, axis=0)).max() < 0.05  # smooth


def test_einstein_relation():
    assert diffusion_coefficient_cm2_per_s(2.56e-10, 296.15) == pytest.approx(
        2.56e-10 * BOLTZMANN * 296.15 / ELEMENTARY_CHARGE, rel=1e-12
    )
    assert diffusion_coefficient_cm2_per_s(2.56e-10, 296.0) == pytest.approx(6.5e-12, rel=0.01)


# --------------------------------------------------------------------------
# files against ground truth
# --------------------------------------------------------------------------


def test_run_folder_loads_and_names_the_files(small_run):
    out, truth = small_run
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    cfg = load_experiment(out)
    assert cfg.warnings == ()
    assert cfg.movie.pixel_size_nm == SMALL.pixel_size_nm
    assert cfg.movie.frame_rate_hz == SMALL.frame_rate_hz
    assert cfg.movie.psf_sigma_nm is None  # the analysis estimates it
    assert (cfg.daq.camera_ttl, cfg.daq.voltage) == ("camera_ttl", "fg_voltage")
    assert cfg.field.amplifier_gain == SMALL.amplifier_gain
    assert cfg.field.electrode_gap_um == SMALL.electrode_gap_um
    assert cfg.sample.temperature_K == SMALL.temperature_K
    assert json.loads((out / "ground_truth.json").read_text()) == truth


def test_ground_truth_has_the_documented_keys(small_run):
    _, truth = small_run
    for key in (
        "seed",
        "params",
        "pixel_size_nm",
        "psf_sigma_nm",
        "temperature_K",
        "mobility_mean_cm2_per_Vs",
        "diffusion_coefficient_cm2_per_s",
        "fields_kV_per_cm",
        "n_frames",
        "frame_interval_s",
        "exposure_s",
        "first_frame_time_s",
        "switch_times_s",
        "particles",
        "kinetics",
        "drift_px",
        "blinks",
    ):
        assert key in truth
    assert set(truth["particles"][0]) >= {
        "particle_id",
        "x_px",
        "y_px",
        "size_nm",
        "mobility_cm2_per_Vs",
        "tau_rec_s",
        "se_at_130",
    }
    assert set(truth["kinetics"][0]) >= {
        "particle_id",
        "field_kV_per_cm",
        "tau_pol_s",
        "tau_rec_s",
        "switching_efficiency",
    }
    assert len(truth["kinetics"]) == len(truth["particles"]) * len(truth["fields_kV_per_cm"])
    assert truth["n_frames"] == 150 and truth["first_frame_time_s"] == SMALL.daq_lead_s
    assert len(truth["blinks"]) > 0


def test_ground_truth_physics_is_consistent(small_run):
    _, truth = small_run
    mu = np.array([p["mobility_cm2_per_Vs"] for p in truth["particles"]])
    assert truth["mobility_mean_cm2_per_Vs"] == pytest.approx(mu.mean(), rel=1e-12)
    assert truth["diffusion_coefficient_cm2_per_s"] == pytest.approx(
        mu.mean() * BOLTZMANN * SMALL.temperature_K / ELEMENTARY_CHARGE, rel=1e-12
    )
    by_id = {p["particle_id"]: p for p in truth["particles"]}
    for row in truth["kinetics"]:
        p = by_id[row["particle_id"]]
        e = row["field_kV_per_cm"]
        assert row["tau_pol_s"] == pytest.approx(
            p["size_nm"] * 1e-7 / (p["mobility_cm2_per_Vs"] * e * 1e3), rel=1e-12
        )
        assert row["switching_efficiency"] == pytest.approx(p["se_at_130"] * e / 130.0, rel=1e-12)
        assert 0.35 * e / 130 <= row["switching_efficiency"] <= 0.55 * e / 130
        assert row["tau_rec_s"] == p["tau_rec_s"]
    sizes = np.array([p["size_nm"] for p in truth["particles"]])
    assert np.all((sizes >= 400) & (sizes <= 1300))


def test_tiff_pages_match_frames(small_run):
    out, truth = small_run
    with tifffile.TiffFile(out / "movie.tif") as tif:
        assert len(tif.pages) == truth["n_frames"]
        series = tif.series[0]
        assert series.shape == (truth["n_frames"], *SMALL.image_shape)
        assert series.dtype == np.uint16
        movie = series.asarray()
    assert movie.min() > 0  # camera offset


def test_ttl_edges_time_the_frames_plus_extra_pulses(small_run):
    out, truth = small_run
    daq = pd.read_csv(out / "daq.csv")
    assert list(daq.columns) == ["time_s", "camera_ttl", "fg_voltage", "aux_photodiode"]
    assert daq["time_s"].iloc[0] == 0.0
    np.testing.assert_allclose(np.diff(daq["time_s"]), 1 / SMALL.daq_rate_hz, atol=1e-9)
    edges = rising_edges(daq["camera_ttl"].to_numpy())
    assert edges.size == truth["n_frames"] + SMALL.extra_ttl_pulses
    expected = truth["first_frame_time_s"] + np.arange(edges.size) * truth["frame_interval_s"]
    np.testing.assert_allclose(daq["time_s"].to_numpy()[edges], expected, atol=1e-9)
    high = (daq["camera_ttl"] > 2.5).to_numpy()
    assert high.sum() == pytest.approx(edges.size * SMALL.exposure_s * SMALL.daq_rate_hz, abs=edges.size)
    assert daq["time_s"].iloc[-1] > daq["time_s"].to_numpy()[edges[-1]] + SMALL.exposure_s


def test_voltage_plateaus_give_the_field_levels(small_run):
    out, truth = small_run
    daq = pd.read_csv(out / "daq.csv")
    t = daq["time_s"].to_numpy()
    field = daq["fg_voltage"].to_numpy() * SMALL.amplifier_gain / (SMALL.electrode_gap_um * 1e-4) / 1e3
    for (on, off), e in zip(truth["switch_times_s"], truth["switch_fields_kV_per_cm"]):
        assert np.median(field[(t >= on) & (t < off)]) == pytest.approx(e, rel=0.01)
        assert abs(np.median(field[(t >= off) & (t < off + 1.0)])) < 1.0
    assert truth["fields_kV_per_cm"] == [130.0]
    assert np.std(daq["fg_voltage"].to_numpy()[t < truth["switch_times_s"][0][0]]) == pytest.approx(
        SMALL.voltage_noise_V, rel=0.1
    )


def test_clean_daq_has_no_quirks(clean_run):
    out, truth, params = clean_run
    daq = pd.read_csv(out / "daq.csv")
    assert list(daq.columns) == ["time_s", "camera_ttl", "fg_voltage"]
    edges = rising_edges(daq["camera_ttl"].to_numpy())
    assert edges.size == truth["n_frames"]
    # without the DAQ lead the camera starts one DAQ sample after the DAQ, so
    # that the first frame, too, has a rising edge
    assert truth["first_frame_time_s"] == 1 / params.daq_rate_hz
    assert daq["camera_ttl"].iloc[0] == 0.0 and daq["camera_ttl"].iloc[1] == 5.0
    assert set(np.round(daq["fg_voltage"], 9)) == {0.0, 6.5}  # 130 kV/cm * 10 um / 20
    assert truth["blinks"] == [] and truth["drift_max_px"] == 0.0


def test_clean_image_intensity_matches_the_kinetic_model(clean_run):
    out, truth, params = clean_run
    movie = tifffile.imread(out / "movie.tif")
    assert movie.max() < 65535  # not saturated
    bg = background_image(
        params.image_shape, params.background_photons, angle_rad=truth["background"]["gradient_angle_rad"]
    )
    signal = movie - bg
    population = draw_population(params, seed=3)
    model = frame_photons(population, params)  # (n_particles, n_frames)
    for i, (rows, cols) in enumerate(particle_windows(truth, params)):
        measured = signal[:, rows, cols].sum(axis=(1, 2))
        n_px = (rows.stop - rows.start) * (cols.stop - cols.start)
        np.testing.assert_allclose(measured, model[i], rtol=1e-9, atol=n_px / 2)  # bound of uint16 rounding
        full = params.photons_per_um2 * (truth["particles"][i]["size_nm"] * 1e-3) ** 2
        assert model[i, 0] == pytest.approx(full, rel=1e-9)  # unquenched before the first ON edge


def test_frames_average_the_pl_over_the_exposure(clean_run):
    _, truth, params = clean_run
    # move the first ON edge 50 ms into an exposure
    params = dataclasses.replace(params, lead_in_s=params.lead_in_s + 0.05)
    population = draw_population(params, seed=3)
    model = frame_photons(population, params)
    on = params.schedule()[0][0, 0]
    k = int(np.floor((on - params.first_frame_time_s) * params.frame_rate_hz))
    t0 = params.frame_start_times_s()[k]
    assert t0 < on < t0 + params.exposure_s
    t = np.linspace(t0, t0 + params.exposure_s, 20_001)
    mean = np.trapezoid(relative_pl(t, population, params), t, axis=1) / params.exposure_s
    full = params.photons_per_um2 * (population.size_nm * 1e-3) ** 2
    np.testing.assert_allclose(model[:, k] / full, mean, rtol=1e-6)
    assert np.all(mean < 1.0 - 1e-4)  # partly quenched ...
    np.testing.assert_allclose(relative_pl([t0], population, params)[:, 0], 1.0)  # ... unlike its start


def test_clean_fast_kinetics_drop_by_switching_efficiency(tmp_path):
    # tau << half period: the response settles, so PL(end of ON) / PL(end of OFF) = 1 - SE
    params = dataclasses.replace(
        SMALL.clean(),
        mobility_cm2_per_Vs=2e-8,
        tau_rec_s_per_um=0.1,
        photons_per_um2=2e5,
        fields_kV_per_cm=(90.0, 130.0),
        cycles_per_level=1,
    )
    truth = simulate_imaging_run(tmp_path, params, seed=5)
    movie = tifffile.imread(tmp_path / "movie.tif").astype(float)
    bg = background_image(
        params.image_shape, params.background_photons, angle_rad=truth["background"]["gradient_angle_rad"]
    )
    frame_t = truth["first_frame_time_s"] + np.arange(truth["n_frames"]) * truth["frame_interval_s"]
    for i, (rows, cols) in enumerate(particle_windows(truth, params)):
        trace = (movie - bg)[:, rows, cols].sum(axis=(1, 2))
        for (on, off), e in zip(truth["switch_times_s"], truth["switch_fields_kV_per_cm"]):
            bright = trace[(frame_t + params.exposure_s < on) & (frame_t > on - 2.0)].mean()
            dark = trace[(frame_t + params.exposure_s < off) & (frame_t > off - 2.0)].mean()
            row = next(r for r in truth["kinetics"] if r["particle_id"] == i and r["field_kV_per_cm"] == e)
            assert 1 - dark / bright == pytest.approx(row["switching_efficiency"], abs=2e-3)
            assert row["switching_efficiency_end_of_on"] == pytest.approx(
                row["switching_efficiency"], rel=1e-9
            )


def test_nuisances_do_not_change_the_particles(small_run, clean_run):
    _, truth = small_run
    _, clean_truth, _ = clean_run

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "brightness_photons"} for r in rows]

    assert strip(clean_truth["particles"]) == strip(truth["particles"])
    assert clean_truth["kinetics"] == truth["kinetics"]
    assert clean_truth["background"] == truth["background"]


# --------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------


def test_same_seed_same_files_other_seed_other_files(tmp_path, small_run):
    out, truth = small_run
    again = simulate_imaging_run(tmp_path / "again", SMALL, seed=3)
    assert again == truth
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    other = simulate_imaging_run(tmp_path / "other", SMALL, seed=4)
    assert other["particles"] != truth["particles"]
    for name in ("movie.tif", "daq.csv", "ground_truth.json"):
        assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes(), name


def test_progress_bar_and_rewrite_in_place(tmp_path, capsys):
    params = dataclasses.replace(SMALL, cycles_per_level=1, lead_in_s=2.0)
    simulate_imaging_run(tmp_path, params, seed=0, progress=True)
    assert "frames" in capsys.readouterr().err
    simulate_imaging_run(tmp_path, params, seed=1)  # replaces the previous simulation
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert json.loads((tmp_path / "ground_truth.json").read_text())["seed"] == 1


@pytest.mark.slow
def test_default_run(tmp_path):
    truth = simulate_imaging_run(tmp_path, seed=0)
    p = ImagingSimParams()
    assert truth["n_frames"] == 1850  # (10 s + 9 cycles x 40 s) x 5 Hz
    assert truth["fields_kV_per_cm"] == [90.0, 110.0, 130.0]
    assert len(truth["particles"]) == 16 and len(truth["kinetics"]) == 48
    assert truth["diffusion_coefficient_cm2_per_s"] == pytest.approx(6.5e-12, rel=0.05)
    with tifffile.TiffFile(tmp_path / "movie.tif") as tif:
        assert len(tif.pages) == 1850
    daq = pd.read_csv(tmp_path / "daq.csv")
    assert rising_edges(daq["camera_ttl"].to_numpy()).size == 1850 + p.extra_ttl_pulses
    field = daq["fg_voltage"].to_numpy() * p.amplifier_gain / (p.electrode_gap_um * 1e-4) / 1e3
    t = daq["time_s"].to_numpy()
    levels = [np.median(field[(t >= on) & (t < off)]) for on, off in truth["switch_times_s"]]
    np.testing.assert_allclose(levels, np.repeat([90.0, 110.0, 130.0], 3), rtol=0.005)
    tau = np.array([r["tau_pol_s"] for r in truth["kinetics"] if r["field_kV_per_cm"] == 130.0])
    assert 1.0 < tau.min() and tau.max() < 6.0


def test_cli_nuisance_switches_match_simulator():
    from plscope import cli
    from plscope.sim import NUISANCES

    options = {a.dest for a in cli._build_parser()._subparsers._group_actions[0].choices["simulate"]._actions}
    assert {f"no_{name}" for name in NUISANCES} <= options
