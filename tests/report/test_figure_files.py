"""The figure files (PNG, SVG, PDF) depend only on what a figure shows (issue 16).

Constrained layout's solver can give positions that differ in their last bits from one process to
the next (its sums run in an order set by where its objects sit in memory); the SVG backend names
every clip path after the full-precision rectangle, so the same results gave other clip-path ids
now and then (seen in ``figures/fig-tau-field.svg``). The report rounds the laid-out positions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.layout_engine import ConstrainedLayoutEngine

from plscope.report import figures
from plscope.report.html import _png_bytes, save_figure_files


def _kinetics() -> pd.DataFrame:
    rows = []
    for pid, size in enumerate((450.0, 700.0, 1000.0, 1200.0, 800.0, 650.0)):
        for field in (130.0,):
            tau = size * 1e-7 / (2.56e-10 * field * 1e3)
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": field,
                    "tau_pol_s": tau,
                    "tau_pol_err_s": 0.05 * tau,
                    "tau_rec_s": 3e-3 * size,
                    "tau_rec_err_s": 0.1,
                    "used": True,
                }
            )
    return pd.DataFrame(rows)


def _files(tmp_path, name: str) -> tuple[dict[str, bytes], list[np.ndarray]]:
    """Fig. 3b-d (a grid of small panels: the figure whose clip-path ids changed) as its three files,
    and the extents of its axes."""
    fig = figures.tau_vs_field(_kinetics(), particle_id=2)
    save_figure_files({"fig-tau-field": (fig, _png_bytes(fig))}, tmp_path / name)
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())}
    assert all(ax.get_in_layout() for ax in fig.axes)  # rounding the positions leaves them in the layout
    return files, [ax.get_position(original=True).extents for ax in fig.axes]


@pytest.fixture
def nudged_layout(monkeypatch):
    """Constrained layout whose every axes position is moved by two units in the last place."""
    execute = ConstrainedLayoutEngine.execute

    def nudged(self, fig):
        info = execute(self, fig)
        for ax in fig.axes:
            box = ax.get_position(original=True)
            ext = np.nextafter(np.nextafter(box.extents, np.inf), np.inf)
            ax._set_position(type(box).from_extents(*ext))
        return info

    monkeypatch.setattr(ConstrainedLayoutEngine, "execute", nudged)


def test_last_bit_differences_of_the_layout_do_not_change_the_files(tmp_path, request):
    plain, extents = _files(tmp_path, "plain")
    assert sorted(plain) == ["fig-tau-field.pdf", "fig-tau-field.png", "fig-tau-field.svg"]
    assert b'clip-path="url(#p' in plain["fig-tau-field.svg"]
    assert all(np.array_equal(e, np.round(e, 6)) for e in extents)  # positions rounded to 1e-6
    request.getfixturevalue("nudged_layout")
    nudged, _ = _files(tmp_path, "nudged")
    assert nudged == plain


def _placeholder_files(fig, folder) -> dict[str, bytes]:
    """SVG and PDF as saved with the placeholder engine ``"none"`` (savefig then draws twice)."""
    from matplotlib import rc_context

    fig.set_layout_engine("none")
    folder.mkdir()
    with rc_context({"svg.hashsalt": "plscope", "pdf.compression": 6}):
        fig.savefig(folder / "f.svg", format="svg", dpi=110, metadata={"Date": None})
        fig.savefig(folder / "f.pdf", format="pdf", dpi=110, metadata={"CreationDate": None, "ModDate": None})
    return {p.suffix: p.read_bytes() for p in folder.iterdir()}


def test_svg_and_pdf_drawn_once_without_a_layout_engine_are_the_bytes_of_the_placeholder(tmp_path):
    """save_figure_files leaves the laid-out figure with no layout engine (savefig draws it once, not a
    dry draw first): the SVG and PDF bytes of saving with the placeholder engine "none"."""
    rng = np.random.default_rng(1)
    parts = pd.DataFrame(
        {"particle_id": range(30), "x_px": rng.uniform(0, 64, 30), "y_px": rng.uniform(0, 64, 30)}
    )
    parts["size_nm"] = rng.uniform(300, 900, 30)
    image = rng.normal(100, 5, (64, 64))
    builds = {
        "tau": lambda: figures.tau_vs_field(_kinetics(), particle_id=2),
        "ref": lambda: figures.reference_image(image, parts, pixel_size_nm=100.0),
    }
    for name, build in builds.items():
        fig = build()
        save_figure_files({name: (fig, _png_bytes(fig))}, tmp_path / name)
        assert fig.get_layout_engine() is None
        got = {p.suffix: p.read_bytes() for p in (tmp_path / name).iterdir() if p.suffix != ".png"}
        fig = build()
        _png_bytes(fig)
        assert got == _placeholder_files(fig, tmp_path / f"{name}-placeholder")


def test_no_layout_engine_comes_back_from_the_settings():
    """Where the settings give new figures an engine, the laid-out figure keeps the placeholder."""
    import matplotlib as mpl
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    from plscope.report.html import _fixed_layout

    for key in ("figure.autolayout", "figure.constrained_layout.use"):
        fig = Figure(figsize=(2, 2), layout="constrained")
        fig.add_subplot().plot([0, 1], [1, 0])
        _png_bytes(fig)
        with mpl.rc_context({key: True}):
            _fixed_layout(fig)
        assert isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine)


def _plain_png(fig) -> bytes:
    """The PNG as savefig makes it with the steady layout (its dry draw drawing every artist)."""
    import io

    from plscope.report.html import _steady_layout

    _steady_layout(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def test_the_png_dry_draw_reduced_to_the_layout_gives_the_same_bytes(monkeypatch):
    """_png_bytes keeps only the layout of savefig's dry draw (the texts of a reference image with
    many labels, a grid of small panels, a figure without a layout engine): the same PNG bytes, the
    figure left without the override, and the layout run once."""
    from matplotlib.figure import Figure

    from plscope.report.html import _SteadyLayout

    rng = np.random.default_rng(2)
    parts = pd.DataFrame(
        {"particle_id": range(80), "x_px": rng.uniform(0, 64, 80), "y_px": rng.uniform(0, 64, 80)}
    )
    parts["size_nm"] = rng.uniform(300, 900, 80)
    image = rng.normal(100, 5, (64, 64))

    def bare():
        fig = Figure(figsize=(3, 2))
        fig.add_subplot().plot([0, 1, 3], [2, 0, 1])
        return fig

    builds = [
        lambda: figures.reference_image(image, parts, pixel_size_nm=100.0),
        lambda: figures.tau_vs_field(_kinetics(), particle_id=2),
        bare,
    ]
    layouts = []
    execute = _SteadyLayout.execute
    monkeypatch.setattr(_SteadyLayout, "execute", lambda self, fig: layouts.append(1) or execute(self, fig))
    for build in builds:
        fig = build()
        got = _png_bytes(fig)
        assert "draw" not in vars(fig)
        assert got == _plain_png(build())
    assert len(layouts) == 4  # once per laid-out figure and save


def test_the_png_draws_each_axes_once(monkeypatch):
    """savefig alone draws every axes twice (the dry draw, then the PNG); _png_bytes once."""
    from matplotlib.axes import Axes

    calls = []
    draw = Axes.draw
    monkeypatch.setattr(Axes, "draw", lambda self, renderer: calls.append(1) or draw(self, renderer))
    _plain_png(figures.tau_vs_field(_kinetics(), particle_id=2))
    plain, calls[:] = len(calls), []
    fig = figures.tau_vs_field(_kinetics(), particle_id=2)
    _png_bytes(fig)
    assert plain == 2 * len(fig.axes) and len(calls) == len(fig.axes)
