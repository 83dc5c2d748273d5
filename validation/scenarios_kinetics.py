"""Kinetics scenarios of the validation table (issue 12: kinetics under other physics).

Each scenario simulates traces with the independent forward model
(:mod:`validation.forward.kinetics`), runs the analysis
(:func:`plscope.kinetics.analyze_population` and
:func:`plscope.kinetics.summarize_population`) on them and compares with the
truth. Trace level (no images): cheap enough for several seeds.

Run ``python -m validation.scenarios_kinetics [scenario ...] [--seeds 1-5]``
to print the table rows.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from validation.forward.kinetics import KineticsScenario, simulate_kinetics
from validation.forward.spectra import SpectralScenario, write_spectral_run

__all__ = [
    "KINETICS_SCENARIOS",
    "SPECTRAL_SCENARIOS",
    "TARGETS",
    "analyze",
    "kinetics_metrics",
    "run_kinetics_scenario",
    "run_spectral_scenario",
]

_BASE = KineticsScenario()
KINETICS_SCENARIOS: dict[str, KineticsScenario] = {
    "kin_default": _BASE,
    "kin_per_particle_shapes": _BASE.replace(
        name="kin_per_particle_shapes", fast_fraction=(0.3, 0.85), ratio=(1.5, 10.0)
    ),
    "kin_slow_biexp": _BASE.replace(name="kin_slow_biexp", fast_fraction=(0.7, 0.7), ratio=(14.0, 14.0)),
    "kin_half_mobility": _BASE.replace(name="kin_half_mobility", mobility_cm2_per_Vs=1.28e-10),
    "kin_two_cycles_blinks": _BASE.replace(
        name="kin_two_cycles_blinks", cycles_per_level=2, blink_rate_per_s=1 / 40
    ),
    "kin_signal_div3": _BASE.replace(name="kin_signal_div3", signal_divisor=3.0),
    "kin_signal_div6": _BASE.replace(name="kin_signal_div6", signal_divisor=6.0),
}
"""Scenario name -> forward-model parameters."""

SPECTRAL_SCENARIOS: dict[str, SpectralScenario] = {
    "spec_default": SpectralScenario(_BASE),
    "spec_slow_biexp": SpectralScenario(KINETICS_SCENARIOS["kin_slow_biexp"]),
    "spec_half_mobility": SpectralScenario(KINETICS_SCENARIOS["kin_half_mobility"]),
}
"""Spectral settled-shift scenarios: the kinetics scenario's particles and kinetics, 4 tracks per run."""

TARGETS: dict[str, dict[str, float]] = {
    "kin_default": {"tau_pol_median_err": 0.03, "tau_rec_median_err": 0.03, "mu_mean_err": 0.01},
    "kin_per_particle_shapes": {
        "tau_pol_median_err": 0.05,
        "tau_rec_median_err": 0.05,
        "coverage_min": 0.90,
        "coverage_max": 0.98,
    },
    "kin_slow_biexp": {"tau_pol_median_err": 0.05, "se_err": 0.01},
    "kin_half_mobility": {"tau_pol_median_err": 0.05, "se_err": 0.01},
    "kin_two_cycles_blinks": {"mu_mean_err": 0.06, "mu_slope_err": 0.10, "min_tau_frames": 2.0},
    "kin_signal_div3": {"tau_pol_median_err": 0.08, "mu_mean_err": 0.06},
    "kin_signal_div6": {"tau_pol_median_err": 0.08, "tau_rec_median_err": 0.08, "mu_mean_err": 0.06},
    "spec_slow_biexp": {"shift_err": 0.03},
    "spec_half_mobility": {"shift_err": 0.03},
}
"""Issue 12 targets (relative errors; ``se_err`` absolute; ``min_tau_frames`` in frames)."""


def analyze(sim, settings=None):
    """Run the analysis on simulated traces: ``(PopulationKinetics, summary dict)``."""
    from plscope.kinetics import analyze_population, summarize_population

    pop = analyze_population(
        sim.traces,
        sim.time_s,
        sim.cycles,
        exposure_s=sim.exposure_s,
        particles=sim.particles[["particle_id", "size_nm"]],
        settings=settings,
    )
    summary = summarize_population(
        pop.table,
        sim.particles[["particle_id", "size_nm"]],
        temperature_K=296.15,
        n_bootstrap=500,
        population=pop,
    )
    from plscope.kinetics import KineticsSettings
    from plscope.kinetics.qc import kinetics_qc

    used = KineticsSettings.from_any(settings)
    summary["qc"] = kinetics_qc(
        summary, pop.table, kinetics_settings=used.to_dict(), defaults=KineticsSettings().to_dict()
    )
    return pop, summary


def _rel(a, b) -> float:
    return float(a) / float(b) - 1.0 if a is not None and b else float("nan")


def kinetics_metrics(sim, pop, summary: dict, mu_population: float | None = None) -> dict:
    """Errors of one analysed run against the truth.

    ``mu_population`` is the scenario's population mean mobility (the particles' mobilities are
    drawn around it): ``mu_slope_z_pop`` compares the slope mobility with it.
    """
    t = pop.table
    m = sim.truth.merge(t, on=["particle_id", "field_kV_per_cm"], suffixes=("_true", ""))
    ok = m["fit_ok"].astype(bool) & (m["exclusion_reason"].fillna("") == "")
    mo = m[ok]
    err_pol = mo["tau_pol_s"] / mo["tau_pol_s_true"] - 1
    err_rec = mo["tau_rec_s"] / mo["tau_rec_s_true"] - 1
    z = np.concatenate(
        [
            ((mo["tau_pol_s"] - mo["tau_pol_s_true"]) / mo["tau_pol_err_s"]).to_numpy(float),
            ((mo["tau_rec_s"] - mo["tau_rec_s_true"]) / mo["tau_rec_err_s"]).to_numpy(float),
        ]
    )
    z = z[np.isfinite(z)]
    mu_true = float(sim.particles["mobility_cm2_per_Vs"].mean())
    frame = float(np.median(np.diff(sim.time_s)))
    fastest = np.nanmin(np.r_[mo["tau_pol_s"], mo["tau_rec_s"]]) / frame if len(mo) else float("nan")
    se_col = "switching_efficiency"
    qc = summary.get("qc") or {}
    return {
        "n_rows": len(m),
        "n_used": int(ok.sum()),
        "excluded_share": 1.0 - float(ok.mean()) if len(m) else float("nan"),
        "tau_pol_median_err": float(np.median(np.abs(err_pol))) if len(mo) else float("nan"),
        "tau_rec_median_err": float(np.median(np.abs(err_rec))) if len(mo) else float("nan"),
        "tau_pol_bias": float(np.median(err_pol)) if len(mo) else float("nan"),
        "coverage": float(np.mean(np.abs(z) <= 1.96)) if z.size else float("nan"),
        "mu_mean_err": _rel(summary.get("ion_mobility_cm2_per_Vs"), mu_true),
        "mu_slope_err": _rel(summary.get("ion_mobility_fit_cm2_per_Vs"), mu_true),
        "mu_ci_covers": _covers(summary.get("ion_mobility_ci95_cm2_per_Vs"), mu_true),
        "mu_slope_z": _z(summary, "ion_mobility_fit", mu_true),
        "mu_slope_z_pop": _z(summary, "ion_mobility_fit", mu_population) if mu_population else float("nan"),
        "mu_slope_ci_covers": _covers(summary.get("ion_mobility_fit_ci95_cm2_per_Vs"), mu_true),
        "se_err": float(np.median(np.abs(mo[se_col] - mo["se_settled"]))) if len(mo) else float("nan"),
        "min_tau_frames": float(fastest),
        "qc_status": qc.get("status", "n/a"),
        "qc_reasons": "; ".join(qc.get("reasons", [])),
    }


def _z(summary: dict, key: str, x: float) -> float:
    """``(estimate - truth) / standard error`` of ``{key}_cm2_per_Vs`` (NaN when either is missing)."""
    v, e = summary.get(f"{key}_cm2_per_Vs"), summary.get(f"{key}_err_cm2_per_Vs")
    return float((v - x) / e) if v is not None and e else float("nan")


def _covers(ci, x) -> float:
    if not ci or ci[0] is None or ci[1] is None:
        return float("nan")
    return float(ci[0] <= x <= ci[1])


def run_kinetics_scenario(name: str, seed: int, settings=None) -> dict:
    """Simulate, analyse and compare one scenario and seed."""
    sim = simulate_kinetics(KINETICS_SCENARIOS[name], seed)
    pop, summary = analyze(sim, settings if settings is not None else {"fit_method": "trace"})
    mu_pop = KINETICS_SCENARIOS[name].mobility_cm2_per_Vs
    return {"scenario": name, "seed": seed, **kinetics_metrics(sim, pop, summary, mu_pop)}


def run_spectral_scenario(name: str, seed: int) -> dict:
    """Render one spectra-only run folder (temporary), analyse it, compare the shifts with the truth.

    ``shift_err`` is the largest relative error over the field levels of the
    run's ``spectral_shift_nm`` (the settled shift, pooled over the
    particles) against the mean of the particles' true settled shifts;
    ``shift_window_err`` that of the window value (``shift_window_nm``);
    ``shift_cover`` the share of per-particle rows whose true shift lies
    within 1.96 of their standard errors, ``pooled_cover`` that of the
    pooled rows (truth: the mean of the particles' settled shifts).
    """
    import tempfile
    from pathlib import Path

    from plscope.pipeline.spectra import analyze_spectra

    with tempfile.TemporaryDirectory(prefix="plscope-val-spec-") as tmp:
        truth = write_spectral_run(Path(tmp) / "run", SPECTRAL_SCENARIOS[name], seed)
        result = analyze_spectra(Path(tmp) / "run")
    return {"scenario": name, "seed": seed, **spectral_metrics(truth, result.shifts, result.summary)}


def spectral_metrics(truth: dict, shifts: pd.DataFrame, summary: dict) -> dict:
    """Errors of one analysed spectral run against its truth."""
    want = {round(e["field_kV_per_cm"]): e["shift_nm"] for e in truth["spectral_shift_nm"]}
    pooled = shifts[(shifts["particle_id"] == -1) & (shifts["level"] >= 0)]
    e = pooled["field_kV_per_cm"].round().astype(int).map(want).to_numpy(float)
    rel = pooled["shift_nm"].to_numpy(float) / e - 1
    rel_w = pooled["shift_window_nm"].to_numpy(float) / e - 1
    per = shifts[(shifts["particle_id"] >= 0) & (shifts["level"] >= 0)]
    slopes = {p["track"]: p["slope_nm_per_kV_per_cm"] for p in truth["particles"]}
    true_per = per["particle_id"].map(slopes).to_numpy(float) * per["field_kV_per_cm"].to_numpy(float)
    z = (per["shift_nm"].to_numpy(float) - true_per) / per["shift_err_nm"].to_numpy(float)
    slope_true = truth["spectral_shift_slope_nm_per_kV_per_cm"]
    z_pooled = (pooled["shift_nm"].to_numpy(float) - e) / pooled["shift_err_nm"].to_numpy(float)
    return {
        "n_levels": len(pooled),
        "shift_err": float(np.max(np.abs(rel))) if rel.size else float("nan"),
        "shift_bias": float(np.mean(rel)) if rel.size else float("nan"),
        "shift_window_err": float(np.max(np.abs(rel_w))) if rel_w.size else float("nan"),
        "slope_err": _rel(summary.get("spectral_shift_slope_nm_per_kV_per_cm"), slope_true),
        "shift_cover": float(np.mean(np.abs(z[np.isfinite(z)]) <= 1.96))
        if np.isfinite(z).any()
        else float("nan"),
        "pooled_cover": float(np.mean(np.abs(z_pooled) <= 1.96)) if z_pooled.size else float("nan"),
        "method": ",".join(sorted(set(pooled["shift_method"].astype(str)))),
        "not_settled_levels": int(pooled["not_settled"].astype(bool).sum()),
        "pol_settled_fraction_min": float(pooled["pol_settled_fraction"].min()),
    }


# --- the same physics at image level: run folders analysed by ``plscope run`` (python -m validation) ---

_IMAGE_PARTICLES = 8


def _image_experiment(rng, ks: KineticsScenario):
    """An :class:`Experiment` whose particles follow ``ks``'s kinetics (shapes, blinks, per-field SE)."""
    from validation.forward.imaging import MovieSpec, ParticleSpec
    from validation.forward.kinetics import _blinks, _draw_particles, _quench_state, _segments
    from validation.forward.runfolder import Experiment
    from validation.scenarios import PHOTONS_PER_UM2, _layout

    movie = MovieSpec()
    parts = _draw_particles(ks.replace(n_particles=_IMAGE_PARTICLES), rng)
    pos = _layout(rng, _IMAGE_PARTICLES, movie.shape_px, min_gap_px=16.0, margin_px=10.0)
    specs = []
    for i, p in enumerate(parts.itertuples(index=False)):
        shape = {"kind": "square", "side_nm": float(p.size_nm), "angle_deg": float(rng.uniform(0, 90))}
        photons = PHOTONS_PER_UM2 * (p.size_nm / 1000.0) ** 2 / ks.signal_divisor
        specs.append(ParticleSpec(pos[i, 0], pos[i, 1], shape, photons, (0.0, 0.0)))

    def pl_model(i, starts, exposure_s, on):
        p = parts.iloc[i]
        cycles = pd.DataFrame(on, columns=["on_start_s", "on_end_s", "field_kV_per_cm"])
        t_end = float(on[-1][1] + ks.period_s * (1 - ks.duty))
        sub = (np.arange(16) + 0.5) / 16 * exposure_s
        t = (np.asarray(starts)[:, None] + sub[None, :]).ravel()
        q, _ = _quench_state(p, ks, _segments(ks, cycles, t_end), t)
        blink = np.ones_like(t)
        for b0, dur, depth in _blinks(ks, float(starts[0]), t_end, rng):
            blink[(t >= b0) & (t < b0 + dur)] = depth
        pl = (blink * (1.0 - q)).reshape(len(starts), 16).mean(axis=1)
        se = {str(float(e)): float(p.se_at_130 * e / 130.0) for e in ks.fields_kV_per_cm}
        shape = {"fast_fraction": float(p.fast_fraction), "pol_ratio": float(p.pol_ratio)}
        return pl, {"switching_efficiency_by_field": se, "kinetics_shape": shape}

    return Experiment(
        movie=movie,
        particles=specs,
        mobility_cm2_per_Vs=parts["mobility_cm2_per_Vs"].to_numpy(float),
        switching_efficiency=parts["se_at_130"].to_numpy(float),
        tau_rec_s=parts["tau_rec_s"].to_numpy(float),
        fields_kV_per_cm=tuple(ks.fields_kV_per_cm),
        cycles_per_level=ks.cycles_per_level,
        period_s=ks.period_s,
        duty=ks.duty,
        lead_in_s=ks.lead_in_s,
        frame_rate_hz=1.0 / ks.frame_interval_s,
        exposure_s=ks.exposure_s,
        pl_model=pl_model,
        extra={"kinetics_scenario": ks.name},
    )


def _register_image_scenarios() -> None:
    from pathlib import Path

    from validation.forward.runfolder import write_run_folder
    from validation.registry import scenario

    for name in (
        "kin_per_particle_shapes",
        "kin_slow_biexp",
        "kin_half_mobility",
        "kin_two_cycles_blinks",
        "kin_signal_div6",
    ):
        ks = KINETICS_SCENARIOS[name]

        def build(run_dir: Path, seed: int, ks=ks) -> dict:
            rng = np.random.default_rng([int(seed), 2412])
            return write_run_folder(run_dir, _image_experiment(rng, ks), seed)

        scenario(
            "img_" + name.removeprefix("kin_"),
            topic="kinetics",
            description=f"{_IMAGE_PARTICLES} squares whose PL follows `{name}` ({_describe(ks)}); "
            "Gaussian PSF 120 nm (estimated)",
        )(build)


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in spec.split(",")]


def summarize_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scenario: worst (largest |error|) over seeds, pooled coverage, QC statuses."""
    out = []
    for name, g in rows.groupby("scenario", sort=False):
        d = {"scenario": name, "seeds": len(g)}
        for c in ("tau_pol_median_err", "tau_rec_median_err", "se_err"):
            d[c + "_max"] = float(g[c].max())
        for c in ("mu_mean_err", "mu_slope_err"):
            d[c + "_maxabs"] = float(g[c].abs().max())
        d["coverage_mean"] = float(g["coverage"].mean())
        d["mu_slope_1.96sigma_coverage"] = float(np.mean(np.abs(g["mu_slope_z"]) <= 1.96))
        d["mu_slope_ci95_coverage"] = float(g["mu_slope_ci_covers"].mean())
        d["min_tau_frames"] = float(g["min_tau_frames"].min())
        d["excluded_share_mean"] = float(g["excluded_share"].mean())
        d["qc"] = ",".join(g["qc_status"].astype(str))
        out.append(d)
    return pd.DataFrame(out)


def check_targets(rows: pd.DataFrame) -> list[str]:
    """One line per target of :data:`TARGETS`: worst seed against the target, met or MISSED."""
    lines = []
    for name, t in TARGETS.items():
        g = rows[rows["scenario"] == name]
        if len(g) == 0:
            continue
        for key, target in t.items():
            lines.append(_target_line(name, g, key, target))
    return lines


def _target_line(name: str, g: pd.DataFrame, key: str, target: float) -> str:
    if key in ("coverage_min", "coverage_max"):
        v = float(g["coverage"].mean())
        ok = v >= target if key == "coverage_min" else v <= target
        op = ">=" if key == "coverage_min" else "<="
        return f"- {name}: tau 1.96 sigma coverage (all seeds) {v:.3f} (target {op} {target}): " + (
            "met" if ok else "MISSED"
        )
    if key == "min_tau_frames":
        v = float(g["min_tau_frames"].min())
        return f"- {name}: fastest fit_ok tau {v:.2f} frames (target >= {target}): " + (
            "met" if v >= target else "MISSED"
        )
    v = float(g[key].abs().max())
    ok, note = v <= target, ""
    if not ok and name == "kin_two_cycles_blinks" and (g["qc_status"] == "warn").all():
        ok, note = True, " (QC says unreliable in every seed)"
    return f"- {name}: max |{key}| over seeds {v:.4f} (target <= {target}): " + (
        "met" + note if ok else "MISSED"
    )


def _table(rows: pd.DataFrame, drop=("qc_reasons",)) -> str:
    cols = [c for c in rows.columns if c not in drop]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return head + "".join("| " + " | ".join(fmt(r[c]) for c in cols) + " |\n" for _, r in rows.iterrows())


def coverage_lines(rows: pd.DataFrame) -> list[str]:
    """Per scenario: the share of seeds (or rows) whose truth lies inside the stated intervals."""
    out = []
    for name, g in rows.groupby("scenario", sort=False):
        z = g["mu_slope_z"].to_numpy(float)
        z = z[np.isfinite(z)]
        zp = g["mu_slope_z_pop"].to_numpy(float)
        zp = zp[np.isfinite(zp)]
        out.append(
            f"| {name} | {len(g)} | {g['coverage'].mean():.3f} | "
            f"{np.mean(np.abs(z) <= 1.96) if z.size else float('nan'):.3f} ({z.size}) | "
            f"{g['mu_slope_ci_covers'].mean():.3f} | {g['mu_ci_covers'].mean():.3f} | "
            f"{np.sqrt(np.mean(z**2)) if z.size else float('nan'):.2f} | "
            f"{np.mean(np.abs(zp) <= 1.96) if zp.size else float('nan'):.3f} |"
        )
    return out


def to_markdown(rows: pd.DataFrame, command: str, spectral: pd.DataFrame | None = None) -> str:
    """The kinetics validation page (docs/validation-kinetics.md)."""
    scen = "".join(f"- `{n}`: {_describe(sc)}\n" for n, sc in KINETICS_SCENARIOS.items())
    reasons = "".join(
        f"- {r.scenario} seed {r.seed}: {r.qc_reasons}\n" for r in rows.itertuples() if r.qc_reasons
    )
    both = rows if spectral is None else pd.concat([rows, spectral], ignore_index=True)
    cover = (
        "| scenario | seeds | tau 1.96 sigma (rows) | slope-mu 1.96 sigma (seeds) | slope-mu ci95 | "
        "mean-mu ci95 | rms z slope-mu | slope-mu 1.96 sigma vs population mu |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(coverage_lines(rows)) + "\n"
    )
    return (
        "# Kinetics validation (issue 12)\n\n"
        f"Produced by `{command}` (do not edit by hand). Traces are simulated by the independent "
        "forward model `validation/forward/kinetics.py` (imports nothing from plscope; state carried "
        "across half cycles, per-particle biexponential shapes, blinks, bleaching, Poisson + background "
        "noise) and analysed by `plscope.kinetics.analyze_population` / `summarize_population` "
        "(trace level, no images). Errors are relative to the truth (`se_err` absolute, against the "
        "settled depth); `coverage` is the share of rows whose true tau lies within 1.96 sigma; "
        "`min_tau_frames` the fastest fit_ok time constant in frames; `mu_*` against the mean of the "
        "particles' true mobilities; `mu_slope_z` is (slope mu - truth) / its standard error "
        "(`ion_mobility_fit_err_cm2_per_Vs`, cluster bootstrap over particles times the fields' scale factor when above 1).\n\n"
        f"## Scenarios\n\n{scen}\n## Targets (issue 12)\n\n" + "\n".join(check_targets(both)) + "\n\n"
        f"## Interval coverage\n\n{cover}\n"
        f"## Runs\n\n{_table(rows)}\n## QC reasons\n\n{reasons or 'none'}\n\n" + _spectral_section(spectral)
    )


def _spectral_section(spectral: pd.DataFrame | None) -> str:
    if spectral is None or len(spectral) == 0:
        return "## Spectral settled shift\n\nNot run.\n"
    scen = "".join(f"- `{n}`: {_describe(sc.kinetics)}\n" for n, sc in SPECTRAL_SCENARIOS.items())
    return (
        "## Spectral settled shift\n\n"
        "Spectra-only run folders rendered by the independent forward model "
        "`validation/forward/spectra.py` (the kinetics forward model's particles and kinetics; the peak "
        "shifts in proportion to the quench state, settled shift `slope * E`; 4 tracks of a multi-track "
        "read-out, Lorentzian peaks of FWHM 18-24 nm on a 256-pixel axis, bleaching, Poisson + read "
        "noise, camera offset, DAQ log with a noisy voltage) and analysed by "
        "`plscope.pipeline.spectra.analyze_spectra`. `shift_err`: largest relative error over the field "
        "levels of `spectral_shift_nm` (settled, pooled) against the mean of the particles' true settled "
        "shifts; `shift_window_err` the same for the window value (`shift_window_nm`, the end-of-window "
        "histogram used before); `shift_cover`: share of per-particle rows whose truth lies within "
        "1.96 of their standard errors, `pooled_cover` the same for the pooled rows.\n\n"
        f"{scen}\n{_table(spectral)}"
    )


def _describe(sc: KineticsScenario) -> str:
    base = KineticsScenario()
    diff = {k: v for k, v in sc.__dict__.items() if k != "name" and v != getattr(base, k)}
    return "the demo's parameters" + (
        "" if not diff else "; " + ", ".join(f"{k} = {v}" for k, v in diff.items())
    )


def _code_version() -> str:
    """``git describe`` of the analysed code (``unknown`` outside a git checkout); ``-dirty`` with edits."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _job(job: tuple[str, str, int]) -> dict:
    kind, name, seed = job
    return run_kinetics_scenario(name, seed) if kind == "kin" else run_spectral_scenario(name, seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", default=[*KINETICS_SCENARIOS, *SPECTRAL_SCENARIOS])
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument(
        "--spectral-seeds", default=None, help="seeds of the spectral scenarios (default: --seeds)"
    )
    ap.add_argument(
        "--more-seeds",
        action="append",
        default=[],
        metavar="NAME=SEEDS",
        help="other seeds for one scenario (e.g. kin_per_particle_shapes=1-12 for interval coverage)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="scenario runs in parallel (processes)")
    ap.add_argument("--markdown", help="write the validation page to this file")
    args = ap.parse_args(argv)
    more = dict(m.split("=", 1) for m in args.more_seeds)
    spec_seeds = args.spectral_seeds or args.seeds
    jobs = [
        ("kin" if n in KINETICS_SCENARIOS else "spec", n, s)
        for n in args.scenarios
        if n in KINETICS_SCENARIOS or n in SPECTRAL_SCENARIOS
        for s in _seeds(more.get(n, args.seeds if n in KINETICS_SCENARIOS else spec_seeds))
    ]
    if args.jobs > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_job, jobs, chunksize=1)
    else:
        results = [_job(j) for j in jobs]
    rows = pd.DataFrame([r for j, r in zip(jobs, results) if j[0] == "kin"])
    srows = pd.DataFrame([r for j, r in zip(jobs, results) if j[0] == "spec"])
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.precision", 4):
        if len(rows):
            print(rows.drop(columns=["qc_reasons"]).to_string(index=False))
            print(summarize_rows(rows).to_string(index=False))
        if len(srows):
            print(srows.to_string(index=False))
    print("\n".join(check_targets(pd.concat([rows, srows], ignore_index=True))))
    if args.markdown:
        extra = f" --spectral-seeds {args.spectral_seeds}" if args.spectral_seeds else ""
        extra += "".join(f" --more-seeds {m}" for m in args.more_seeds)
        cmd = (
            f"python -m validation.scenarios_kinetics --seeds {args.seeds}{extra} --markdown {args.markdown}"
        )
        page = to_markdown(rows, f"{cmd}` on commit `{_code_version()}", srows)  # before the file is opened
        with open(args.markdown, "w") as fh:
            fh.write(page)
    return 0


_register_image_scenarios()

if __name__ == "__main__":
    raise SystemExit(main())
