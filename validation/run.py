"""Run validation scenarios through ``plscope run`` and tabulate errors against the truth.

``python -m validation [--quick] [--seeds N] [--scenarios a,b] [--out docs/validation.md]``

Each scenario x seed is rendered by the independent forward model, analysed
by ``plscope run`` in a child process (as a user would), and compared with
its ``truth.json``. Metrics (NaN where a scenario does not define them):

- ``size_err_pct``: median relative error of ``size_nm`` over matched particles;
- ``size_cover``: fraction of particles with ``|size - truth| <= 1.96 size_err_nm``, or, for a
  particle reported as an upper bound (``near_diffraction_limit``), with ``truth <= size_upper_bound_nm``;
- ``size_bounded``: fraction of matched particles whose size is reported as an upper bound;
- ``pairs_ok``: fraction of touching pairs found as two particles or as one flagged ``possibly_merged``
  (its size fit not ok);
- ``psf_err_pct``: relative error of the run's ``psf_sigma_nm``;
- ``tau_pol_err_pct``, ``tau_rec_err_pct``: median relative error over particle x field rows
  (``*_abs_err_pct``: median of its absolute value, the issue-12 targets);
- ``tau_pol_cover``: fraction of rows with ``|tau_pol - truth| <= 1.96 tau_pol_err_s``;
- ``se_err``: median error of ``switching_efficiency`` (against the settled depth of the row's field
  where the truth gives one per field, ``switching_efficiency_by_field``);
- ``mu_mean_err_pct`` and ``mu_mean_cover`` (truth inside ``ion_mobility_ci95``);
- ``mu_slope_err_pct`` and ``mu_slope_cover`` (truth inside ``ion_mobility_fit_ci95``);
- ``lost_named``: every lost frame named in a warning (``frame k``), or the run refused;
- ``flags``: number of summary warnings and the QC status.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .registry import load_all

REPO = Path(__file__).resolve().parents[1]

#: issue 11 and 12 targets: metric -> limit on |value|, checked in every seed (size: the median)
TARGETS = {
    "squares_any_angle": {"size_err_pct": 3.0, "mu_mean_err_pct": 4.0, "psf_err_pct": 5.0},
    "rectangles_aspect_1.5": {"size_err_pct": 3.0, "mu_mean_err_pct": 4.0, "psf_err_pct": 5.0},
    "lost_frame_1": {"mu_slope_err_pct": 8.0},
    "lost_frames_3": {"mu_slope_err_pct": 8.0},
    # issue 12, the kinetics scenarios at image level
    "img_per_particle_shapes": {"tau_pol_abs_err_pct": 5.0, "tau_rec_abs_err_pct": 5.0},
    "img_slow_biexp": {"tau_pol_abs_err_pct": 5.0, "se_err": 0.01},
    "img_half_mobility": {"tau_pol_abs_err_pct": 5.0, "se_err": 0.01},
    "img_two_cycles_blinks": {"mu_mean_err_pct": 6.0, "mu_slope_err_pct": 10.0},
    "img_signal_div6": {"tau_pol_abs_err_pct": 8.0, "tau_rec_abs_err_pct": 8.0, "mu_mean_err_pct": 6.0},
}


def run_plscope(run_dir: Path, out_dir: Path, timeout_s: float = 1800.0) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "plscope", "run", str(run_dir), "--out", str(out_dir), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
    )


def _match(found: pd.DataFrame, truth: list[dict], max_dist_px: float = 2.0) -> list[tuple[int, int]]:
    """(truth index, found row) pairs, nearest first, one to one."""
    if len(found) == 0 or not truth:
        return []
    fx = found["x_px"].to_numpy(float)
    fy = found["y_px"].to_numpy(float)
    tx = np.array([p["x_px"] for p in truth])
    ty = np.array([p["y_px"] for p in truth])
    d = np.hypot(tx[:, None] - fx[None, :], ty[:, None] - fy[None, :])
    pairs, used_t, used_f = [], set(), set()
    for flat in np.argsort(d, axis=None):
        i, j = np.unravel_index(flat, d.shape)
        if d[i, j] > max_dist_px:
            break
        if i in used_t or j in used_f:
            continue
        pairs.append((int(i), int(j)))
        used_t.add(i)
        used_f.add(j)
    return pairs


def _named(pulse: int, warnings: list[str]) -> bool:
    """A warning names the lost frame: 'frame k', 'TTL pulse k' or 'between TTL pulses a and b' around k."""
    import re

    for w in warnings:
        if re.search(rf"\b(frame|TTL pulse) {pulse}\b", w):
            return True
        for a, b in re.findall(r"between TTL pulses (\d+) and (\d+)", w):
            if int(a) <= pulse <= int(b):
                return True
    return False


def _pairs_ok(particles: pd.DataFrame, tp: list[dict], pairs: list[tuple[int, int]], truth_pairs) -> float:
    """Fraction of touching pairs found as two particles, or flagged ``possibly_merged``.

    A merged particle's size must not be reported as fine: no particle at the pair may have
    ``size_fit_ok`` True (a failed fit beside the flagged one reports no size).
    """
    matched = {i for i, _ in pairs}
    good = []
    for a, b in truth_pairs:
        if a in matched and b in matched:
            good.append(True)
            continue
        xm = 0.5 * (tp[a]["x_px"] + tp[b]["x_px"])
        ym = 0.5 * (tp[a]["y_px"] + tp[b]["y_px"])
        half = 0.5 * math.hypot(tp[a]["x_px"] - tp[b]["x_px"], tp[a]["y_px"] - tp[b]["y_px"])
        d = np.hypot(particles["x_px"].to_numpy(float) - xm, particles["y_px"].to_numpy(float) - ym)
        near = particles[d <= half + 2.0]
        flagged = near.get("possibly_merged", pd.Series(False, index=near.index)).astype(bool)
        # flagged as merged, and no particle there reports a size as fine (a failed fit beside it
        # reports none)
        good.append(bool(flagged.any()) and not near["size_fit_ok"].astype(bool).any())
    return float(np.mean(good)) if good else float("nan")


def _pct(a: float, b: float) -> float:
    return 100.0 * (a - b) / b if a is not None and b and np.isfinite(a) else float("nan")


def _inside(ci, value: float) -> float:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return float("nan")
    return float(ci[0] <= value <= ci[1])


def evaluate(truth: dict, out_dir: Path, proc: subprocess.CompletedProcess) -> dict:
    """Metrics of one analysed run against its truth."""
    m: dict = {"rc": proc.returncode}
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("plscope: error")]
        m["refused"] = err[-1] if err else proc.stderr.strip().splitlines()[-1:]
        m["lost_named"] = float(bool(truth.get("lost_frames"))) if err else float("nan")
        return m
    summary = json.loads((out_dir / "summary.json").read_text())
    particles = pd.read_csv(out_dir / "particles.csv")
    kin = pd.read_csv(out_dir / "kinetics.csv")
    tp = truth["particles"]
    pairs = _match(particles, tp)
    m["matched"] = f"{len(pairs)}/{len(tp)}"
    rel, cover, bounded = [], [], []
    for i, j in pairs:
        row = particles.iloc[j]
        s, e, t = row["size_nm"], row["size_err_nm"], tp[i]["size_nm"]
        if bool(row.get("near_diffraction_limit", False)) and np.isfinite(
            row.get("size_upper_bound_nm", np.nan)
        ):
            # reported as an upper bound: covered when the truth lies below it
            bounded.append(True)
            cover.append(bool(t <= row["size_upper_bound_nm"]))
            continue
        if np.isfinite(s):
            bounded.append(False)
            rel.append(100.0 * (s - t) / t)
            cover.append(abs(s - t) <= 1.96 * e if np.isfinite(e) else False)
    m["size_err_pct"] = float(np.median(rel)) if rel else float("nan")
    m["size_abs_err_pct"] = float(np.median(np.abs(rel))) if rel else float("nan")
    m["size_cover"] = float(np.mean(cover)) if cover else float("nan")
    m["size_bounded"] = float(np.mean(bounded)) if bounded else float("nan")
    if truth.get("extra", {}).get("pairs"):
        m["pairs_ok"] = _pairs_ok(particles, tp, pairs, truth["extra"]["pairs"])
    m["psf_err_pct"] = _pct(summary.get("psf_sigma_nm"), truth["psf_sigma_nm"])
    rows = {"tau_pol": [], "tau_rec": [], "se": [], "cover": []}
    for i, j in pairs:
        pid = particles["particle_id"].iloc[j]
        for r in kin[kin["particle_id"] == pid].itertuples():
            fields = {float(k): v for k, v in tp[i]["tau_pol_s"].items()}
            e = min(fields, key=lambda f: abs(f - r.field_kV_per_cm))
            if abs(e - r.field_kV_per_cm) > 0.05 * e:
                continue
            if np.isfinite(r.tau_pol_s):
                rows["tau_pol"].append(_pct(r.tau_pol_s, fields[e]))
                err = getattr(r, "tau_pol_err_s", float("nan"))
                rows["cover"].append(
                    abs(r.tau_pol_s - fields[e]) <= 1.96 * err if np.isfinite(err) else False
                )
            if np.isfinite(r.tau_rec_s):
                rows["tau_rec"].append(_pct(r.tau_rec_s, tp[i]["tau_rec_s"]))
            if np.isfinite(r.switching_efficiency):
                se_by_field = tp[i].get("switching_efficiency_by_field")
                se = se_by_field[str(e)] if se_by_field else tp[i]["switching_efficiency"]
                rows["se"].append(r.switching_efficiency - se)
    med = lambda v: float(np.median(v)) if v else float("nan")  # noqa: E731
    m["tau_pol_err_pct"] = med(rows["tau_pol"])
    m["tau_rec_err_pct"] = med(rows["tau_rec"])
    m["tau_pol_abs_err_pct"] = med(np.abs(rows["tau_pol"]).tolist())
    m["tau_rec_abs_err_pct"] = med(np.abs(rows["tau_rec"]).tolist())
    m["se_err"] = med(rows["se"])
    m["tau_pol_cover"] = float(np.mean(rows["cover"])) if rows["cover"] else float("nan")
    mu = truth["mobility_mean_cm2_per_Vs"]
    m["mu_mean_err_pct"] = _pct(summary.get("ion_mobility_cm2_per_Vs"), mu)
    m["mu_mean_cover"] = _inside(summary.get("ion_mobility_ci95_cm2_per_Vs"), mu)
    m["mu_slope_err_pct"] = _pct(summary.get("ion_mobility_fit_cm2_per_Vs"), mu)
    m["mu_slope_cover"] = _inside(summary.get("ion_mobility_fit_ci95_cm2_per_Vs"), mu)
    warnings = summary.get("warnings", [])
    lost = truth.get("lost_frames", [])
    if lost:
        m["lost_named"] = float(all(_named(k, warnings) for k in lost))
    qc = summary.get("qc") or {}
    m["flags"] = f"{len(warnings)} warning(s), QC {qc.get('status', '?') if isinstance(qc, dict) else qc}"
    return m


def run_scenarios(names: list[str], seeds: list[int], workdir: Path, log=print) -> pd.DataFrame:
    scenarios = load_all()
    rows = []
    for name in names:
        sc = scenarios[name]
        for seed in seeds:
            run_dir = workdir / f"{name}_s{seed}"
            out_dir = workdir / f"{name}_s{seed}_out"
            truth = sc.build(run_dir, seed)
            proc = run_plscope(run_dir, out_dir)
            m = evaluate(truth, out_dir, proc)
            rows.append({"scenario": name, "topic": sc.topic, "seed": seed, **m})
            log(f"{name} seed {seed}: " + ", ".join(f"{k}={v}" for k, v in m.items()))
    return pd.DataFrame(rows)


#: scenarios whose targets may instead be met by the run's QC saying the numbers are unreliable (issue 12)
_OR_QC_WARN = ("img_two_cycles_blinks",)


def check_targets(df: pd.DataFrame) -> list[str]:
    """Lines 'scenario: metric median |x| vs target: met/MISSED'."""
    out = []
    for name, targets in TARGETS.items():
        sub = df[df["scenario"] == name]
        if sub.empty:
            continue
        for metric, limit in targets.items():
            vals = np.abs(sub[metric].to_numpy(float)) if metric in sub else np.array([np.nan])
            value = float(np.nanmedian(vals)) if np.isfinite(vals).any() else float("nan")
            worst = float(np.max(vals)) if np.isfinite(vals).all() else float("nan")
            # the size target is a median; every other target must hold in every seed
            judged = value if metric == "size_err_pct" else worst
            ok = np.isfinite(judged) and judged <= limit
            verdict = "met" if ok else "MISSED"
            if not ok and name in _OR_QC_WARN and sub["flags"].astype(str).str.contains("QC warn").all():
                verdict = "met (QC says unreliable in every seed)"
            out.append(
                f"{name}: |{metric}| median {value:.2f}, worst seed {worst:.2f} (target <= {limit}"
                f"{', median' if metric == 'size_err_pct' else ', every seed'}): {verdict}"
            )
    cov = df[df["topic"] == "particles"]["size_cover"].to_numpy(float) if "size_cover" in df else []
    cov = np.asarray(cov)[np.isfinite(cov)]
    if cov.size:
        v = float(np.mean(cov))
        out.append(
            f"size 1.96 sigma coverage over all particle runs {v:.2f} (target >= 0.85): {'met' if v >= 0.85 else 'MISSED'}"
        )
    if "pairs_ok" in df:
        pv = df["pairs_ok"].to_numpy(float)
        pv = pv[np.isfinite(pv)]
        if pv.size:
            ok = bool(np.all(pv == 1.0))
            out.append(
                f"touching pairs found as two or flagged as merged in every seed: {'met' if ok else 'MISSED'} "
                f"(mean {pv.mean():.2f})"
            )
    if "lost_named" in df:
        lost = df[df["scenario"].str.startswith("lost_frame")]["lost_named"].to_numpy(float)
        if lost.size:
            ok = bool(np.all(lost == 1.0))
            out.append(
                f"lost frames named (or refused) in every seed: {'met' if ok else 'MISSED'} ({np.nansum(lost):.0f}/{lost.size})"
            )
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def to_markdown(df: pd.DataFrame, command: str) -> str:
    scenarios = load_all()
    cols = [
        "scenario",
        "seed",
        "rc",
        "matched",
        "size_err_pct",
        "size_abs_err_pct",
        "size_cover",
        "size_bounded",
        "pairs_ok",
        "psf_err_pct",
        "tau_pol_err_pct",
        "tau_rec_err_pct",
        "tau_pol_abs_err_pct",
        "tau_rec_abs_err_pct",
        "tau_pol_cover",
        "se_err",
        "mu_mean_err_pct",
        "mu_mean_cover",
        "mu_slope_err_pct",
        "mu_slope_cover",
        "lost_named",
        "flags",
        "refused",
    ]
    cols = [c for c in cols if c in df.columns]
    lines = [
        "# Validation against an independent forward model",
        "",
        f"Produced by `{command}` (do not edit by hand). Run folders are rendered by",
        "`validation/forward/` (brute-force supersampled shapes x sampled PSF, sCMOS camera,",
        "its own PL response and DAQ log; it imports nothing from plscope) and analysed by",
        "`plscope run`. Errors are signed, in % of the truth (`se_err` absolute); `*_cover` is",
        "the fraction of truths inside the reported 95 % interval (1.96 sigma).",
        "",
        "## Scenarios",
        "",
    ]
    for name in dict.fromkeys(df["scenario"]):
        lines.append(f"- `{name}` ({scenarios[name].topic}): {scenarios[name].description}")
    lines += ["", "## Targets (issues 11 and 12)", ""]
    lines += [f"- {t}" for t in check_targets(df)]
    lines += ["", "## Runs", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        d = r._asdict()
        lines.append("| " + " | ".join(_fmt(d.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m validation", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the scenarios marked quick, 1 seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    ap.add_argument("--topic", default="", help="only scenarios of this topic")
    ap.add_argument("--out", default=str(REPO / "docs" / "validation.md"))
    ap.add_argument("--workdir", default="", help="keep run folders here (default: a temporary folder)")
    ap.add_argument("--csv", default="", help="also save the per-run table here")
    ap.add_argument(
        "--combine",
        default="",
        help="comma-separated --csv tables of earlier runs: write --out from them only",
    )
    args = ap.parse_args(argv)
    command = "python -m validation " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.combine:
        df = pd.concat([pd.read_csv(f) for f in args.combine.split(",") if f], ignore_index=True)
        Path(args.out).write_text(to_markdown(df, command.strip()))
        print(f"wrote {args.out}")
        return 0
    scenarios = load_all()
    names = [n for n in args.scenarios.split(",") if n] or [
        n
        for n, s in scenarios.items()
        if (not args.quick or s.quick) and (not args.topic or s.topic == args.topic)
    ]
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        print(f"validation: error: unknown scenario(s) {unknown}; known: {list(scenarios)}", file=sys.stderr)
        return 2
    seeds = list(range(args.first_seed, args.first_seed + (1 if args.quick else args.seeds)))
    with tempfile.TemporaryDirectory(prefix="plscope-validation-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        df = run_scenarios(names, seeds, workdir, log=lambda s: print(s, flush=True))
    if args.csv:
        df.to_csv(args.csv, index=False)
    Path(args.out).write_text(to_markdown(df, command.strip()))
    print(f"wrote {args.out}")
    return 0
