"""The per-particle gallery: a card for every particle, drawn from the saved tables only (issue 15)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from plscope.report.gallery import gallery_html, particle_status


def _saved(n_particles: int, *, n_frames: int = 600, fields=(110.0, 130.0), seed: int = 0):
    """Tables shaped like the saved ones (particles.csv, kinetics.csv, traces, cycles, curves)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) * 0.2 + 0.1
    cycles = pd.DataFrame({"on_start_s": [10.0, 40.0, 70.0, 100.0], "on_end_s": [25.0, 55.0, 85.0, 115.0]})
    ids = np.arange(n_particles)
    particles = pd.DataFrame(
        {
            "particle_id": ids,
            "x_px": rng.uniform(5, 90, n_particles),
            "y_px": rng.uniform(5, 90, n_particles),
            "size_nm": rng.uniform(400, 1000, n_particles),
            "size_err_nm": 5.0,
            "excluded": ["touches_border<b>" if i == 1 else "" for i in ids],
        }
    )
    traces = pd.DataFrame(
        {
            "frame": np.tile(np.arange(n_frames), n_particles),
            "particle_id": np.repeat(ids, n_frames),
            "intensity": 100 + rng.normal(0, 3, n_frames * n_particles),
        }
    )
    rows, curves = [], []
    for pid in ids:
        for f in fields:
            used = not (pid in (1, 2) and f == fields[-1])
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": f,
                    "tau_pol_s": 2.0,
                    "tau_pol_err_s": 0.1,
                    "tau_rec_s": np.nan if pid == 2 else 1.5,
                    "tau_rec_err_s": 0.1,
                    "switching_efficiency": 0.4,
                    "used": used,
                    "exclusion_reason": "" if used or pid == 1 else "polarization: only 1 usable cycle(s)",
                    "flags": "pol:shape_prior;trace_fit",
                }
            )
            for phase in ("pol", "rec"):
                tt = np.arange(0.1, 15, 0.2)
                y = 0.6 + 0.4 * np.exp(-tt / 2) if phase == "pol" else 1 - 0.4 * np.exp(-tt / 1.5)
                curves.append(
                    pd.DataFrame(
                        {
                            "particle_id": pid,
                            "field_kV_per_cm": f,
                            "phase": phase,
                            "t_s": tt,
                            "mean": y,
                            "fit": y,
                        }
                    )
                )
    image = rng.normal(100, 5, (96, 96))
    return dict(
        particles=particles,
        kinetics=pd.DataFrame(rows),
        traces=traces,
        frame_time_s=t,
        cycles=cycles,
        curves=pd.concat(curves, ignore_index=True),
        reference_image=image,
        pixel_size_nm=100.0,
    )


def test_a_card_for_every_particle_with_its_status():
    text = gallery_html(**_saved(4))
    cards = re.findall(r'<div class="card ([a-z-]+)" id="particle-(\d+)"', text)
    assert [int(p) for _, p in cards] == [0, 1, 2, 3]
    assert dict((int(p), s) for s, p in cards) == {0: "used", 1: "excluded", 2: "partly-used", 3: "used"}
    assert "touches_border&lt;b&gt;" in text and "<b>touches_border" not in text  # names are data
    assert "130 kV/cm: polarization: only 1 usable cycle(s)" in text
    assert text.count('<img class="thumb"') == 4 and text.count('<use href="#field-on"/>') == 4
    # one small panel per field and particle, each with the mean and the fit of both phases
    assert text.count('<svg class="curve"') == 8
    assert text.count('stroke-dasharray="30,20"') == 16


def test_particle_status():
    rows = pd.DataFrame(
        {"field_kV_per_cm": [1.0, 2.0], "used": [False, False], "exclusion_reason": ["a", ""]}
    )
    assert particle_status("", rows) == ("not used", "1 kV/cm: a")
    assert particle_status("border;quality", rows) == ("excluded", "border; quality")
    assert particle_status("", rows.iloc[:0])[0] == "not used"


@pytest.mark.parametrize("n", [200])
def test_two_hundred_particles_stay_small(n):
    text = gallery_html(**_saved(n, n_frames=1500, fields=(90.0, 100.0, 110.0, 120.0, 130.0)))
    assert len(re.findall(r'<div class="card [a-z-]+" id="particle-', text)) == n
    size = len(text.encode())
    assert size < 40_000 * n, size  # < 8 MB for 200 particles at 5 fields (measured: see docs/outputs.md)


def test_thumbnail_crop_equals_the_padded_image_and_is_nan_outside():
    from plscope.report.gallery import _crop

    img = np.random.default_rng(0).normal(size=(37, 53))
    for half in (0, 3, 20):
        pad = np.pad(img, half, mode="constant", constant_values=np.nan)
        for r, c in [(0, 0), (10, 40), (36, 52), (18, 0)]:
            expected = pad[r : r + 2 * half + 1, c : c + 2 * half + 1]
            np.testing.assert_array_equal(_crop(img, r, c, half), expected)
    far = _crop(img, 200, -100, 2)  # wholly outside: all NaN, the full size
    assert far.shape == (5, 5) and np.isnan(far).all()


def _imsave_b64(image, x_px, y_px, half_px):
    """The thumbnail as it was made with matplotlib's ``imsave`` (one colour map per image)."""
    import base64
    import io

    from matplotlib.image import imsave

    from plscope.report.gallery import _crop

    crop = _crop(image, int(round(y_px)), int(round(x_px)), half_px)
    fin = crop[np.isfinite(crop)]
    lo, hi = np.percentile(fin, [1, 99.5]) if fin.size else (0.0, 1.0)
    buf = io.BytesIO()
    with np.errstate(over="ignore"):
        imsave(
            buf,
            np.nan_to_num(crop, nan=lo),
            cmap="gray",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            format="png",
        )
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_thumbnails_are_the_bytes_of_imsave():
    """All crops colour-mapped at once and written by Pillow: byte for byte matplotlib's imsave, at the
    border (NaN outside), wholly outside, on a flat patch (no contrast) and with an infinite pixel."""
    from plscope.report.gallery import _thumbnails

    rng = np.random.default_rng(3)
    image = rng.normal(100, 5, (60, 80))
    image[40:56, 5:21] = 7.0  # flat
    image[3, 70] = np.inf
    image[20:30, 30:40] = rng.integers(0, 65535, (10, 10))  # camera counts, wide range
    boxes = [(40.2, 30.7, 6), (0.0, 0.0, 6), (79.4, 59.6, 9), (13.0, 48.0, 6), (500.0, -90.0, 7)]
    boxes += [(70.0, 3.0, 6), (35.5, 25.5, 12), (10.0, 10.0, 0)]
    got = _thumbnails(image, boxes)
    assert got == [_imsave_b64(image, *b) for b in boxes]
    assert _thumbnails(image, []) == []


def _ref_decimate(x, y, n_max):
    """The sparkline bins as first written (plain numpy, one line at a time)."""
    if x.size <= n_max:
        return x, y
    edges = np.linspace(0, x.size, n_max + 1).astype(int)
    xs = np.add.reduceat(x, edges[:-1]) / np.diff(edges)
    with np.errstate(invalid="ignore"):
        fin = np.isfinite(y)
        ys = np.add.reduceat(np.where(fin, y, 0.0), edges[:-1]) / np.add.reduceat(fin, edges[:-1])
    return xs, ys


def _ref_points(x, y, xlim, ylim, w, h, pad=2.0):
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return ""
    sx = (w - 2 * pad) / max(xlim[1] - xlim[0], 1e-12)
    sy = (h - 2 * pad) / max(ylim[1] - ylim[0], 1e-12)
    px = pad + (x[ok] - xlim[0]) * sx
    py = h - pad - (np.clip(y[ok], ylim[0], ylim[1]) - ylim[0]) * sy
    return " ".join(map(str, np.rint(10.0 * np.column_stack([px, py])).astype(np.int64).ravel().tolist()))


def _ref_limits(*arrays, pad=0.05):
    vals = np.concatenate([np.asarray(a, float).ravel() for a in arrays]) if arrays else np.empty(0)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [0.5, 99.5])
    span = hi - lo if hi > lo else max(abs(hi), 1e-9)
    return float(lo - pad * span), float(hi + pad * span)


def _ref_curve_svgs(curves, pid, fields, on_s):
    """One particle's curve panels as first written (one panel, one line at a time)."""
    from plscope.report.gallery import CURVE_H, CURVE_W, MAX_CURVE_POINTS, OFF_COLOR, ON_COLOR

    out = []
    for f in fields:
        parts = []
        for phase, off in (("pol", 0.0), ("rec", on_s)):
            c = curves.get((pid, f, phase))
            if c is not None and c[0].size:
                parts.append((phase, c[0] + off, c[1], c[2]))
        if not parts:
            out.append({"field": f"{f:.0f}", "lines": [], "on_x": None})
            continue
        xlim = (0.0, max(float(np.nanmax(p[1])) for p in parts))
        ylim = _ref_limits(*[p[2] for p in parts], *[p[3] for p in parts])
        lines = []
        for phase, t, mean, fit in parts:
            tt, mm = _ref_decimate(t, mean, MAX_CURVE_POINTS)
            color = ON_COLOR if phase == "pol" else OFF_COLOR
            lines.append(
                {"points": _ref_points(tt, mm, xlim, ylim, CURVE_W, CURVE_H), "color": color, "dash": ""}
            )
            tt, ff = _ref_decimate(t, fit, MAX_CURVE_POINTS)
            if np.isfinite(ff).any():
                pts = _ref_points(tt, ff, xlim, ylim, CURVE_W, CURVE_H)
                lines.append({"points": pts, "color": "#000", "dash": "30,20"})
        on_x = 2 + on_s * (CURVE_W - 4) / max(xlim[1] - xlim[0], 1e-12)
        out.append({"field": f"{f:.0f}", "lines": lines, "on_x": f"{on_x:.1f}"})
    return out


def test_sparkline_points_and_bins_are_those_of_the_plain_numpy_code():
    """_decimate (bins made once per size), _points (no copies when every point is finite), their
    row-wise forms and _limits_many (one percentile call per size) give the values and strings of
    the straightforward code they replaced."""
    from plscope.report.gallery import _decimate, _decimate_rows, _limits_many, _points, _points_many

    rng = np.random.default_rng(5)
    for n, n_max in [(2000, 240), (100, 60), (120, 60), (61, 60), (60, 60), (7, 60), (1013, 240)]:
        x = np.sort(rng.uniform(0, 400, (5, n)), axis=1)
        y = rng.normal(1, 0.3, (5, n))
        y[rng.random((5, n)) < 0.05] = np.nan
        y[1] = np.nan_to_num(y[1], nan=1.0)
        y[2] = np.nan
        y[3, : n // 2] = np.round(y[3, : n // 2], 1)  # ties
        lims = [((0.0, 400.0), (0.5, 1.5)), ((3.0, 3.0), (1.0, 1.0)), ((0.0, 400.0), _ref_limits(y[0]))]
        for xx, yy in zip(x, y, strict=True):
            a, b = _decimate(xx, yy, n_max), _ref_decimate(xx, yy, n_max)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            for lim in lims:
                assert _points(*a, *lim, 232, 44) == _ref_points(*b, *lim, 232, 44)
        if n_max < n <= 2 * n_max:
            rows = _decimate_rows(x, y, n_max)
            for i in range(5):
                b = _ref_decimate(x[i], y[i], n_max)
                np.testing.assert_array_equal(rows[0][i], b[0])
                np.testing.assert_array_equal(rows[1][i], b[1])
        for xlim, ylim in lims:
            got = _points_many(x, y, [xlim] * 5, [ylim] * 5, 232, 44)
            assert got == [_ref_points(x[i], y[i], xlim, ylim, 232, 44) for i in range(5)]
        groups = [[y[0]], [y[1], y[3]], [y[2]], [], [y[3], y[0][:7]], [y[1]], [y[4]]]
        assert _limits_many(groups) == [_ref_limits(*g) for g in groups]


def test_the_panels_and_traces_drawn_together_are_those_drawn_one_at_a_time():
    """Curves of different lengths (bins of one or two points, and longer bins), NaN means, fits that
    are all NaN, a missing phase, a particle without curves; traces with NaN, empty or missing: the
    gallery's batched lines equal the per-particle code they replaced."""
    from plscope.report.gallery import (
        MAX_TRACE_POINTS,
        TRACE_H,
        TRACE_W,
        _curve_panels,
        _trace_points,
    )

    rng = np.random.default_rng(11)
    fields, on_s = [60.0, 90.0], 15.0
    curves = {}
    lengths = {0: 100, 1: 100, 2: 150, 3: 500, 4: 100, 5: 40}
    for pid, n in lengths.items():
        for f in fields:
            for phase in ("pol", "rec"):
                if pid == 4 and phase == "rec":
                    continue
                t = np.arange(n) * 0.1 + 0.05
                mean = 1 - 0.3 * np.exp(-t / 2) + rng.normal(0, 0.02, n)
                fit = 1 - 0.3 * np.exp(-t / 2)
                if pid == 1:
                    mean[::7] = np.nan
                    fit[:] = np.nan
                curves[(pid, f, phase)] = (t, mean, fit)
    pids = [0, 1, 2, 3, 4, 5, 6]
    got = _curve_panels(curves, pids, fields, on_s)
    assert got == {pid: _ref_curve_svgs(curves, pid, fields, on_s) for pid in pids}

    t = np.arange(2000) * 0.1 + 0.05
    traces = {
        0: (np.arange(2000), rng.normal(100, 3, 2000)),
        1: (np.arange(0, 2000, 3), rng.normal(50, 3, 667)),
        2: (np.arange(2005), rng.normal(10, 1, 2005)),  # frames past the time axis left out
        3: (np.arange(100), np.where(rng.random(100) < 0.2, np.nan, 5.0)),
        4: (np.arange(0), np.zeros(0)),
        5: (np.arange(2000), np.full(2000, np.nan)),
    }
    traces[1][1][100:400] = np.nan
    xlim = (float(t.min()), float(t.max()))
    ref = []
    for pid in pids:
        if pid not in traces:
            ref.append("")
            continue
        frames, y = traces[pid]
        ok = frames < t.size
        tt, yy = _ref_decimate(t[frames[ok]], y[ok], MAX_TRACE_POINTS)
        ref.append(_ref_points(tt, yy, xlim, _ref_limits(yy), TRACE_W, TRACE_H))
    assert _trace_points(traces, pids, t, xlim) == ref
