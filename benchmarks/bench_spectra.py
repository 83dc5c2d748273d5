"""Benchmark: batched Lorentzian fits (plscope) against a per-spectrum lmfit loop, same data, one run.

    python benchmarks/bench_spectra.py            # 10 000 spectra of 512 points, lmfit on all of them
    python benchmarks/bench_spectra.py --quick    # 2 000 spectra, lmfit on 200

Spectra: Lorentzian (centre 520-545 nm, FWHM 15-25 nm, height 300-1000
counts) on a sloped baseline over 485-585 nm, Poisson noise; seeded. Every
method fits the same spectra from its own starting values; the table gives
fits per second, the speed ratio against lmfit, the peak memory of the
fitting (tracemalloc, in a second run: tracing slows allocation-heavy code
down; lmfit's on 50 fits, its loop does not grow) and, for the spectra fitted by both, the largest
difference of the peak position from lmfit's. Results also go to
``benchmarks/results/spectra.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

N_POINTS = 512


def make_spectra(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from plscope.spectra import lorentzian_baseline

    rng = np.random.default_rng(seed)
    x = np.linspace(485.0, 585.0, N_POINTS)
    c = rng.uniform(520.0, 545.0, n)
    w = rng.uniform(15.0, 25.0, n)
    a = rng.uniform(300.0, 1000.0, n)
    y = lorentzian_baseline(x[None, :], c[:, None], w[:, None], a[:, None], 40.0, 0.3, x_ref=float(x.mean()))
    return x, rng.poisson(y).astype(float), c


def timed(fn):
    """Run ``fn`` once; (result, seconds)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def peak_mib(fn) -> float:
    """Peak memory allocated while ``fn`` runs (tracemalloc; a separate run: tracing slows code down)."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None) -> dict:
    import dask

    from plscope.spectra import fit_lorentzians, fit_lorentzians_dask, fits_to_frame, lmfit_lorentzian

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 000 spectra, lmfit on 200")
    ap.add_argument("--n", type=int, help="number of spectra (default 10 000, quick 2 000)")
    ap.add_argument("--lmfit-n", type=int, help="spectra fitted by lmfit (default: all; quick 200)")
    args = ap.parse_args(argv)
    n = args.n or (2000 if args.quick else 10_000)
    n_lm = min(n, args.lmfit_n or (200 if args.quick else n))
    x, y, truth = make_spectra(n)

    import dask.array as da

    def numpy_fit():
        return fit_lorentzians(x, y)

    def dask_fit():
        lazy = fit_lorentzians_dask(x, da.from_array(y, chunks=(256, N_POINTS)))
        with dask.config.set(scheduler="threads", num_workers=2):
            return lazy.compute()

    def lm_loop(k):
        out = np.full((k, 2), np.nan)
        ok = np.zeros(k, bool)
        for i in range(k):
            r = lmfit_lorentzian(x, y[i])
            out[i] = r.params["center"].value, r.params["fwhm"].value
            ok[i] = r.success
        return out, ok

    rows = []
    fits, t_np = timed(numpy_fit)
    rows.append(("plscope batched LM (numpy, 1 thread)", n, t_np, peak_mib(numpy_fit)))
    arr, t_dk = timed(dask_fit)
    fits_dk = fits_to_frame(arr)
    rows.append(("plscope batched LM (dask, 2 threads)", n, t_dk, peak_mib(dask_fit)))
    (lm, lm_ok), t_lm = timed(lambda: lm_loop(n_lm))
    rows.append(
        ("lmfit loop (LorentzianModel + LinearModel)", n_lm, t_lm, peak_mib(lambda: lm_loop(min(n_lm, 50))))
    )

    rate_lm = n_lm / t_lm
    both = lm_ok & fits["fit_ok"].to_numpy()[:n_lm]
    d_center = np.abs(fits["center"].to_numpy()[:n_lm] - lm[:, 0])[both]
    d_fwhm = np.abs(fits["fwhm"].to_numpy()[:n_lm] - lm[:, 1])[both]
    same_dask = float(np.nanmax(np.abs(fits_dk["center"].to_numpy() - fits["center"].to_numpy())))
    err_truth = np.abs(fits["center"].to_numpy() - truth)[fits["fit_ok"].to_numpy()]

    print(
        f"\n{n} spectra of {N_POINTS} points (Lorentzian + linear baseline, Poisson noise), "
        f"{platform.processor() or platform.machine()}\n"
    )
    print(f"{'method':44s} {'fits':>7s} {'time s':>8s} {'fits/s':>9s} {'vs lmfit':>9s} {'peak MiB':>9s}")
    results = []
    for name, k, t, mem in rows:
        rate = k / t
        print(f"{name:44s} {k:7d} {t:8.2f} {rate:9.0f} {rate / rate_lm:8.1f}x {mem:9.1f}")
        results.append(
            {
                "method": name,
                "n_fits": k,
                "seconds": t,
                "fits_per_s": rate,
                "ratio_vs_lmfit": rate / rate_lm,
                "peak_traced_MiB": mem,
            }
        )
    print(
        f"\nlargest |peak - lmfit peak| over {int(both.sum())} spectra fitted by both: {d_center.max():.2e} nm "
        f"(FWHM: {d_fwhm.max():.2e} nm)"
    )
    print(
        f"dask vs numpy result: largest peak difference {same_dask:.1e} nm; fits ok: "
        f"{fits['fit_ok'].mean() * 100:.2f} %; median |peak - truth| {np.median(err_truth):.3f} nm"
    )
    summary = {
        "n_spectra": n,
        "n_points": N_POINTS,
        "n_lmfit": n_lm,
        "methods": results,
        "max_peak_diff_vs_lmfit_nm": float(d_center.max()),
        "max_fwhm_diff_vs_lmfit_nm": float(d_fwhm.max()),
        "max_peak_diff_dask_vs_numpy_nm": same_dask,
        "fit_ok_fraction": float(fits["fit_ok"].mean()),
        "median_abs_peak_error_nm": float(np.median(err_truth)),
        "speed_ratio_numpy_vs_lmfit": results[0]["ratio_vs_lmfit"],
        "speed_ratio_dask_vs_lmfit": results[1]["ratio_vs_lmfit"],
        "quick": bool(args.quick),
    }
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "spectra.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
