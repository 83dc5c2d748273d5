"""The per-particle gallery: every particle at a glance, drawn from the saved tables.

One card per particle: a thumbnail (crop of the saved reference image), its
whole trace with the field-on intervals, its cycle averages at every field
with their fits, its time constants and whether (and why not) it entered the
statistics. Drawn as small inline SVG (and a tiny PNG for the thumbnail), so
the report stays one self-contained file that renders in a few seconds for
hundreds of particles; nothing is fitted or selected here.

Inputs are the saved results: ``particles.csv``, ``kinetics.csv``,
``traces.parquet``, ``cycles.csv``, ``curves.parquet``
(:meth:`plscope.results.RunResult.curve_table`) and ``reference.npy``.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from .figures import OFF_COLOR, ON_COLOR
from .page import render_fragment

__all__ = ["gallery_html", "particle_status"]

#: size of the sparklines, CSS px (drawn at this size; the SVG scales with the card)
TRACE_W, TRACE_H = 232, 44
CURVE_W, CURVE_H = 112, 44
#: most points of a drawn line (traces are averaged in bins down to this)
MAX_TRACE_POINTS, MAX_CURVE_POINTS = 240, 60


@functools.lru_cache(maxsize=64)
def _bins(n: int, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of the ``n_max`` bins of :func:`_decimate` over ``n`` points (made once)."""
    edges = np.linspace(0, n, n_max + 1).astype(int)
    return edges[:-1], np.diff(edges)


def _decimate(x: np.ndarray, y: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin means of ``x, y`` down to at most ``n_max`` points (NaN-aware; for drawing only)."""
    if x.size <= n_max:
        return x, y
    starts, counts = _bins(x.size, n_max)
    xs = np.add.reduceat(x, starts) / counts
    fin = np.isfinite(y)
    with np.errstate(invalid="ignore"):
        ys = np.add.reduceat(np.where(fin, y, 0.0), starts) / np.add.reduceat(fin, starts)
    return xs, ys


def _points(x, y, xlim, ylim, w: float, h: float, pad: float = 2.0) -> str:
    """SVG ``points`` of a polyline (NaNs dropped) in a ``w`` × ``h`` box, in tenths of a pixel.

    Integer coordinates (drawn inside ``<g transform="scale(.1)">``) keep the
    file small and the formatting fast.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        if not ok.any():
            return ""
        x, y = x[ok], y[ok]
    sx = (w - 2 * pad) / max(xlim[1] - xlim[0], 1e-12)
    sy = (h - 2 * pad) / max(ylim[1] - ylim[0], 1e-12)
    xy = np.empty((x.size, 2))
    xy[:, 0] = pad + (x - xlim[0]) * sx
    xy[:, 1] = h - pad - (np.minimum(np.maximum(y, ylim[0]), ylim[1]) - ylim[0]) * sy
    return " ".join(map(str, np.rint(10.0 * xy).astype(np.int64).ravel().tolist()))


def _limits_many(groups: Sequence[Sequence[np.ndarray]], pad: float = 0.05) -> list[tuple[float, float]]:
    """Drawing range of the finite values of each group of arrays: their 0.5-99.5 % percentiles widened
    by ``pad`` ((0, 1) without any); the percentiles of equally many values in one call
    (:func:`numpy.percentile` along an axis: each row's as alone)."""
    vals = []
    for arrays in groups:
        v = np.concatenate([np.asarray(a, float).ravel() for a in arrays]) if len(arrays) else np.empty(0)
        fin = np.isfinite(v)
        vals.append(v if fin.all() else v[fin])
    out = [(0.0, 1.0)] * len(vals)
    by_size: dict[int, list[int]] = {}
    for i, v in enumerate(vals):
        if v.size:
            by_size.setdefault(v.size, []).append(i)
    for rows in by_size.values():
        q = np.percentile(np.stack([vals[i] for i in rows]), [0.5, 99.5], axis=1)
        for i, lo, hi in zip(rows, q[0], q[1], strict=True):
            span = hi - lo if hi > lo else max(abs(hi), 1e-9)
            out[i] = (float(lo - pad * span), float(hi + pad * span))
    return out


def _points_many(x, y, xlim, ylim, w: float, h: float, pad: float = 2.0) -> list[str]:
    """:func:`_points` of every row of ``x, y`` (2-D, one line a row; ``xlim, ylim``: one row each).

    Elementwise the same arithmetic, so the same strings; the rows are formatted from one list.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    xlim, ylim = np.asarray(xlim, float), np.asarray(ylim, float)
    x0, x1, y0, y1 = xlim[:, :1], xlim[:, 1:], ylim[:, :1], ylim[:, 1:]
    xy = np.empty((*x.shape, 2))
    xy[..., 0] = pad + (x - x0) * ((w - 2 * pad) / np.maximum(x1 - x0, 1e-12))
    xy[..., 1] = (
        h - pad - (np.minimum(np.maximum(y, y0), y1) - y0) * ((h - 2 * pad) / np.maximum(y1 - y0, 1e-12))
    )
    ok = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):  # the NaN points are dropped below
        ints = np.rint(10.0 * xy).astype(np.int64)
    whole = ok.all(axis=1)
    rows = ints.reshape(len(ints), 2 * x.shape[1]).tolist()
    return [
        " ".join(map(str, r)) if full else " ".join(map(str, v[k].ravel().tolist())) if k.any() else ""
        for r, full, v, k in zip(rows, whole, ints, ok, strict=True)
    ]


def _crop(image: np.ndarray, r: int, c: int, half_px: int) -> np.ndarray:
    """``image[r - half_px : r + half_px + 1, c - half_px : c + half_px + 1]`` as float, NaN outside the image."""
    n = 2 * half_px + 1
    out = np.full((n, n), np.nan)
    rows, cols = np.shape(image)
    r0, c0 = r - half_px, c - half_px
    rs, cs = slice(max(r0, 0), max(min(r0 + n, rows), 0)), slice(max(c0, 0), max(min(c0 + n, cols), 0))
    if rs.stop > rs.start and cs.stop > cs.start:
        out[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0] = np.asarray(image)[rs, cs]
    return out


def _thumbnails(image: np.ndarray, boxes: Sequence[tuple[float, float, int]]) -> list[str]:
    """Base64 PNG of the reference image around every ``(x_px, y_px, half_px)`` (x: column, y: row),
    contrast set by each crop: the bytes of ``matplotlib.image.imsave``.

    The grey colour map is applied to every crop at once (``imsave`` made a colour map and its
    lookup table per image) and each PNG written by Pillow as ``imsave`` writes it (same
    ``Software`` text, 100 dpi): the same bytes at a fraction of the time (tested).
    """
    import matplotlib as mpl
    from PIL import Image, PngImagePlugin

    crops, scaled = [], []
    for x_px, y_px, half_px in boxes:
        crop = _crop(image, int(round(y_px)), int(round(x_px)), half_px)
        fin = crop[np.isfinite(crop)]
        lo, hi = np.percentile(fin, [1, 99.5]) if fin.size else (0.0, 1.0)
        vmin, vmax = float(lo), float(hi if hi > lo else lo + 1)
        if mpl.rcParams["image.origin"] == "lower":
            crop = crop[::-1]
        # matplotlib.colors.Normalize: a copy, minus vmin, divided by (vmax - vmin); zeros when equal
        x = np.nan_to_num(crop, nan=lo)
        if vmin == vmax:
            x.fill(0)
        else:
            x -= vmin
            x /= vmax - vmin
        crops.append(crop.shape)
        scaled.append(x.ravel())
    if not scaled:
        return []
    with np.errstate(over="ignore"):  # an infinite pixel (made the largest float) times 256
        rgba = mpl.colormaps["gray"](np.concatenate(scaled), bytes=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"Matplotlib version{mpl.__version__}, https://matplotlib.org/")
    out, start = [], 0
    for rows, cols in crops:
        part = np.ascontiguousarray(rgba[start : start + rows * cols])
        start += rows * cols
        buf = io.BytesIO()
        Image.frombuffer("RGBA", (cols, rows), part, "raw", "RGBA", 0, 1).save(
            buf, pnginfo=info, format="png", dpi=(100, 100)
        )
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


def _field_shading(cycles: pd.DataFrame, xlim: tuple[float, float]) -> str:
    """The field-on rectangles of a trace sparkline (defined once, used by every card)."""
    if not len(cycles):
        return ""
    sx = (TRACE_W - 4.0) / max(xlim[1] - xlim[0], 1e-12)
    rects = [
        f'<rect x="{2 + (c.on_start_s - xlim[0]) * sx:.1f}" y="0" '
        f'width="{max((c.on_end_s - c.on_start_s) * sx, 0.5):.1f}" height="{TRACE_H}"/>'
        for c in cycles.itertuples()
    ]
    return "".join(rects)


def particle_status(excluded: str, rows: pd.DataFrame | list[dict]) -> tuple[str, str]:
    """(status, reason) of a particle: 'used', 'partly used', 'not used' or 'excluded'.

    ``excluded`` is the particle's ``particles.csv`` reason (empty: kept);
    ``rows`` its ``kinetics.csv`` rows (``used``, ``exclusion_reason``), a
    table or a list of records.
    """
    recs = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    if excluded:
        return "excluded", excluded.replace(";", "; ")
    if not recs:
        return "not used", "no kinetics (no field cycles)"
    used = [_true(r.get("used")) for r in recs]
    why = [
        f"{r['field_kV_per_cm']:.0f} kV/cm: {r.get('exclusion_reason')}"
        for r, u in zip(recs, used, strict=True)
        if not u and _text(r.get("exclusion_reason"))
    ]
    if all(used):
        return "used", ""
    return ("partly used" if any(used) else "not used"), "; ".join(why) or "fits not usable"


def _true(v) -> bool:
    return bool(v) if v is not None and not (isinstance(v, float) and np.isnan(v)) else False


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _fmt_tau(v: Any, err: Any) -> str:
    v = float(v) if v is not None else np.nan
    if not np.isfinite(v):
        return "—"
    e = float(err) if err is not None else np.nan
    return f"{v:.2f} ± {e:.2f}" if np.isfinite(e) else f"{v:.2f}"


def _curve_panels(curves: dict, pids: Sequence, fields: Sequence[float], on_s: float) -> dict:
    """One small panel per field and particle (``pid -> panels``): polarization then recovery (shifted
    by the ON time), mean and fit; the lines of all panels drawn together.

    ``curves`` maps ``(particle_id, field_kV_per_cm, phase)`` to ``(t_s, mean, fit)`` arrays.
    """
    out: dict = {}
    pending = []  # (panel, parts, xlim)
    for pid in pids:
        panels = out[pid] = []
        for f in fields:
            parts = []
            for phase, off in (("pol", 0.0), ("rec", on_s)):
                c = curves.get((pid, f, phase))
                if c is not None and c[0].size:
                    parts.append((phase, c[0] + off, c[1], c[2]))
            panel: dict[str, Any] = {"field": f"{f:.0f}", "lines": [], "on_x": None}
            panels.append(panel)
            if parts:
                xlim = (0.0, max(float(np.nanmax(p[1])) for p in parts))
                on_x = 2 + on_s * (CURVE_W - 4) / max(xlim[1] - xlim[0], 1e-12)
                panel["on_x"] = f"{on_x:.1f}"
                pending.append((panel, parts, xlim))
    ylims = _limits_many([[*[p[2] for p in parts], *[p[3] for p in parts]] for _, parts, _ in pending])
    lines = []  # (panel, t, y, xlim, ylim, color, dash) in the order drawn
    for (panel, parts, xlim), ylim in zip(pending, ylims, strict=True):
        for phase, t, mean, fit in parts:
            lines.append((panel, t, mean, xlim, ylim, ON_COLOR if phase == "pol" else OFF_COLOR, ""))
            lines.append((panel, t, fit, xlim, ylim, "#000", "30,20"))
    for panel, pts, color, dash in _draw_lines(lines, MAX_CURVE_POINTS, CURVE_W, CURVE_H):
        panel["lines"].append({"points": pts, "color": color, "dash": dash})
    return out


def _draw_lines(lines: list, n_max: int, w: float, h: float) -> list:
    """``(owner, points, color, dash)`` of every ``(owner, t, y, xlim, ylim, color, dash)``, in order:
    :func:`_decimate` then :func:`_points`, lines of one length together. A fit (``dash``) none of whose
    bins is finite is left out."""
    by_size: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        by_size.setdefault(line[1].size, []).append(i)
    drawn: list = [None] * len(lines)
    for n, rows in by_size.items():
        t = np.stack([np.asarray(lines[i][1], float) for i in rows])
        y = np.stack([np.asarray(lines[i][2], float) for i in rows])
        if n > n_max:
            if n <= 2 * n_max:  # bins of one or two points: their sums do not depend on the order of adding
                t, y = _decimate_rows(t, y, n_max)
            else:
                pairs = [_decimate(a, b, n_max) for a, b in zip(t, y, strict=True)]
                t, y = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        xlim = [lines[i][3] for i in rows]
        ylim = [lines[i][4] for i in rows]
        pts = _points_many(t, y, xlim, ylim, w, h)
        some = np.isfinite(y).any(axis=1)
        for j, i in enumerate(rows):
            owner, *_, color, dash = lines[i]
            drawn[i] = None if dash and not some[j] else (owner, pts[j], color, dash)
    return [d for d in drawn if d is not None]


def _decimate_rows(x: np.ndarray, y: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_decimate` of every row of the 2-D ``x, y`` (the same values: each bin summed along its row)."""
    starts, counts = _bins(x.shape[1], n_max)
    xs = np.add.reduceat(x, starts, axis=1) / counts
    fin = np.isfinite(y)
    with np.errstate(invalid="ignore"):
        ys = np.add.reduceat(np.where(fin, y, 0.0), starts, axis=1) / np.add.reduceat(fin, starts, axis=1)
    return xs, ys


def _curve_arrays(curves: pd.DataFrame) -> dict:
    """``(particle_id, field, phase) -> (t_s, mean, fit)`` arrays of the saved curve table (one pass)."""
    if not len(curves):
        return {}
    t = curves["t_s"].to_numpy(float)
    m = curves["mean"].to_numpy(float)
    f = curves["fit"].to_numpy(float) if "fit" in curves else np.full(t.size, np.nan)
    groups = curves.groupby(["particle_id", "field_kV_per_cm", "phase"], sort=False).indices
    return {(k[0], float(k[1]), k[2]): (t[i], m[i], f[i]) for k, i in groups.items()}


class _TraceArrays:
    """``particle_id -> (frame, intensity)`` arrays sorted by frame, made when a card asks.

    The rows of every particle are found in one pass; a particle's arrays are
    copied out only for its card, so the whole trace table is never copied
    (its per-particle copies were 25 MB at 8000 frames x 200 particles).
    """

    def __init__(self, traces: pd.DataFrame) -> None:
        self._rows = traces.groupby("particle_id", sort=False).indices if len(traces) else {}
        self._frame = traces["frame"].to_numpy(int) if len(traces) else np.empty(0, int)
        self._y = traces["intensity"].to_numpy(float) if len(traces) else np.empty(0)

    def get(self, pid) -> tuple[np.ndarray, np.ndarray] | None:
        i = self._rows.get(pid)
        if i is None:
            return None
        order = np.argsort(self._frame[i], kind="stable")
        return self._frame[i][order], self._y[i][order]


def gallery_html(
    *,
    particles: pd.DataFrame,
    kinetics: pd.DataFrame,
    traces: pd.DataFrame,
    frame_time_s: np.ndarray,
    cycles: pd.DataFrame,
    curves: pd.DataFrame,
    reference_image: np.ndarray,
    pixel_size_nm: float,
) -> str:
    """The gallery section (``<section id="gallery">``): one card per particle of ``particles``.

    Parameters
    ----------
    particles : DataFrame
        ``particles.csv``: ``particle_id, x_px, y_px, size_nm`` (+ ``size_err_nm``, ``excluded``).
    kinetics : DataFrame
        ``kinetics.csv``: per particle and field ``tau_pol_s, tau_rec_s`` (+ errors),
        ``switching_efficiency, used, exclusion_reason, flags``.
    traces : DataFrame
        ``frame, particle_id, intensity`` (the saved traces).
    frame_time_s : ndarray
        Mid-exposure time of every frame, s.
    cycles : DataFrame
        ``on_start_s, on_end_s`` of every field cycle.
    curves : DataFrame
        The saved cycle averages (``curves.parquet``): ``particle_id,
        field_kV_per_cm, phase, t_s, mean, fit``.
    reference_image : ndarray, shape (rows, columns)
    pixel_size_nm : float
    """
    t = np.asarray(frame_time_s, float)
    xlim = (float(np.nanmin(t)), float(np.nanmax(t))) if t.size else (0.0, 1.0)
    fields = sorted(float(f) for f in kinetics["field_kV_per_cm"].dropna().unique()) if len(kinetics) else []
    on_s = float(np.median(cycles["on_end_s"] - cycles["on_start_s"])) if len(cycles) else 0.0
    kin_rows: dict = {}
    if len(kinetics):
        for r in kinetics.sort_values(["particle_id", "field_kV_per_cm"]).to_dict("records"):
            kin_rows.setdefault(r["particle_id"], []).append(r)
    arrays = traces if hasattr(traces, "per_particle") else _TraceArrays(traces)  # a store: get(pid) already
    curve_arrays = _curve_arrays(curves)
    data = {"traces": arrays, "kinetics": kin_rows, "curves": curve_arrays}
    records = particles.drop_duplicates("particle_id").sort_values("particle_id").to_dict("records")
    pids = [p["particle_id"] for p in records]
    drawn = {
        "thumb": _thumbnails(reference_image, [_thumb_box(p, pixel_size_nm) for p in records]),
        "trace": _trace_points(data["traces"], pids, t, xlim),
        "curves": list(_curve_panels(curve_arrays, pids, fields, on_s).values()),
    }
    cards = [_card(p, data, {k: v[i] for k, v in drawn.items()}) for i, p in enumerate(records)]
    counts = pd.Series([c["status"] for c in cards]).value_counts().to_dict() if cards else {}
    return render_fragment(
        "gallery.html.j2",
        cards=cards,
        counts=counts,
        shading=Markup(_field_shading(cycles, xlim)),
        trace_w=TRACE_W,
        trace_h=TRACE_H,
        curve_w=CURVE_W,
        curve_h=CURVE_H,
        on_color=ON_COLOR,
        off_color=OFF_COLOR,
        t_range=f"{xlim[0]:.0f}–{xlim[1]:.0f} s",
    )


def _side_px(p: dict, pixel_size_nm: float) -> float:
    size = float(p.get("size_nm", np.nan))
    return size / pixel_size_nm if np.isfinite(size) else 4.0


def _thumb_box(p: dict, pixel_size_nm: float) -> tuple[float, float, int]:
    """``(x_px, y_px, half_px)`` of a particle's thumbnail (``p``: its particles.csv record)."""
    x = p.get("x_ref_px", p["x_px"])  # the reference image's own coordinates (before drift)
    y = p.get("y_ref_px", p["y_px"])
    return x, y, int(max(6, np.ceil(1.2 * _side_px(p, pixel_size_nm))))


def _trace_points(traces, pids: Sequence, t: np.ndarray, xlim: tuple[float, float]) -> list[str]:
    """The trace sparkline's ``points`` of every particle ("" without a trace): its PL binned, its own
    range, the movie's time axis (``traces.get(pid)``: frames and PL)."""
    binned = []
    for i, pid in enumerate(pids):
        tr = traces.get(pid)
        if tr is not None:
            frames, y = tr
            ok = frames < t.size
            binned.append((i, *_decimate(t[frames[ok]], y[ok], MAX_TRACE_POINTS)))
    ylims = _limits_many([[yy] for _, _, yy in binned])
    lines = [  # (index, t, y, xlim, ylim, color, dash)
        (i, tt, yy, xlim, ylim, "", "") for (i, tt, yy), ylim in zip(binned, ylims, strict=True)
    ]
    out = [""] * len(pids)
    for i, pts, _, _ in _draw_lines(lines, len(t) + 1, TRACE_W, TRACE_H):  # binned already
        out[i] = pts
    return out


def _card(p: dict, data: dict, drawn: dict) -> dict:
    """The template values of one particle's card (``p``: its particles.csv record; ``drawn``: its
    thumbnail, trace and curve panels)."""
    pid = p["particle_id"]
    rows = data["kinetics"].get(pid, [])
    status, reason = particle_status(_text(p.get("excluded")), rows)
    size = float(p.get("size_nm", np.nan))
    per_field = [
        {
            "field": f"{r['field_kV_per_cm']:.0f}",
            "tau_pol": _fmt_tau(r.get("tau_pol_s"), r.get("tau_pol_err_s")),
            "tau_rec": _fmt_tau(r.get("tau_rec_s"), r.get("tau_rec_err_s")),
            "se": _fmt_num(r.get("switching_efficiency"), ".3f"),
            "used": _true(r.get("used")),
        }
        for r in rows
    ]
    flags = sorted({f for r in rows for f in _text(r.get("flags")).split(";") if f})
    size_err = float(p.get("size_err_nm", np.nan))
    return {
        "pid": pid,
        "size": _fmt_num(size, ".0f"),
        "size_err": "" if not np.isfinite(size_err) else f"{size_err:.0f}",
        "size_value": f"{size:.6g}" if np.isfinite(size) else "",
        "status": status,
        "status_class": status.replace(" ", "-"),
        "reason": reason,
        "thumb": drawn["thumb"],
        "trace": drawn["trace"],
        "curves": drawn["curves"],
        "per_field": per_field,
        "flags": flags,
    }


def _fmt_num(v, spec: str) -> str:
    x = np.nan if v is None else float(v)
    return "—" if not np.isfinite(x) else format(x, spec)
