"""Report figures draw from plain tables, and missing data give an empty panel, not an error."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from plscope.report import figures


def _draw(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def _curve(tau, *, rise=False, cycles=3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(0.175, 20, 0.2)
    y = 0.7 + 0.3 * np.exp(-t / tau) if not rise else 1.0 - 0.3 * np.exp(-t / tau)
    df = pd.DataFrame({"t_s": t, "mean": y, "sem": np.full(t.size, 0.005), "n_cycles": cycles, "fit": y})
    for c in range(cycles):
        df[f"cycle_{c}"] = y + 0.01 * rng.standard_normal(t.size)
    return df


def _kinetics():
    rows = []
    for pid, size in enumerate((450.0, 700.0, 1000.0, 1200.0)):
        for E in (90.0, 130.0):
            tau = size * 1e-7 / (2.56e-10 * E * 1e3)
            rows.append(
                {
                    "particle_id": pid,
                    "field_kV_per_cm": E,
                    "tau_pol_s": tau,
                    "tau_pol_err_s": 0.05 * tau,
                    "tau_rec_s": 3e-3 * size,
                    "tau_rec_err_s": 0.1,
                    "switching_efficiency": 0.3 * E / 130,
                    "switching_efficiency_std": 0.01,
                    "fit_ok": True,
                    "size_nm": size,
                    "velocity_nm_per_s": size / tau,
                    "velocity_err_nm_per_s": 0.05 * size / tau,
                    "mobility_cm2_per_Vs": 2.56e-10,
                    "exclusion_reason": "",
                }
            )
    return pd.DataFrame(rows)


def test_every_paper_figure_draws_from_tables():
    kin = _kinetics()
    parts = kin.drop_duplicates("particle_id")[["particle_id", "size_nm"]]
    se_cycles = pd.DataFrame(
        {
            "particle_id": 1,
            "cycle": range(4),
            "level": [0, 0, 1, 1],
            "field_kV_per_cm": [90.0, 90.0, 130.0, 130.0],
            "bright": 1.0,
            "quenched": 0.7,
            "switching_efficiency": [0.2, 0.21, 0.3, 0.31],
            "used": [True, False, True, True],
        }
    )
    cycles = pd.DataFrame({"on_start_s": [10.0, 50.0], "on_end_s": [30.0, 70.0]})
    t = np.arange(0, 90, 0.2)
    figs = [
        figures.trace_with_field(
            t,
            1 + 0.1 * np.sin(t),
            cycles,
            (t, np.where(np.sin(t) > 0, 130.0, 0.0)),
            title="p",
            bleach=lambda x: np.exp(-1e-3 * x),
        ),
        figures.cycle_superposition(_curve(1.0), _curve(2.0, rise=True), on_duration_s=20.0, title="p"),
        figures.switching_efficiency(kin, se_cycles=se_cycles, particle_id=1),
        figures.switching_efficiency(kin, particle_id=1),
        figures.size_examples(
            [
                {
                    "particle_id": i,
                    "size_nm": 500.0 + 300 * i,
                    "pol": _curve(1.0 + i),
                    "rec": _curve(1.5 + i, rise=True),
                    "tau_pol_s": 1.0 + i,
                    "tau_pol_err_s": 0.1,
                    "tau_rec_s": 1.5 + i,
                    "tau_rec_err_s": None,
                }
                for i in range(3)
            ],
            field_kV_per_cm=130.0,
        ),
        figures.tau_vs_size(kin, parts, field_kV_per_cm=130.0),
        figures.field_curves({90.0: _curve(2.0), 130.0: _curve(1.4)}, title="p"),
        figures.tau_vs_field(
            kin,
            particle_id=1,
            dependence={"tau_pol_s": {"exponent": -1.0, "ci_low": -1.1, "ci_high": -0.9, "p_value": 1e-9}},
        ),
        figures.mobility_histogram(kin, mean=2.56e-10, std=0.3e-10, ci=[2.4e-10, 2.7e-10]),
        figures.velocity_vs_field(kin, slope_cm2_per_Vs=2.56e-10, slope_err_cm2_per_Vs=1e-11),
        figures.cycle_curves({"pol": _curve(1.0), "rec": _curve(1.0, rise=True)}, title="p"),
    ]
    for fig in figs:
        assert _draw(fig)[:4] == b"\x89PNG"


def test_figures_with_no_usable_data_draw_an_empty_panel():
    kin = _kinetics()
    none_ok = kin.assign(fit_ok=False)
    empty = kin.iloc[:0]
    parts = kin.drop_duplicates("particle_id")[["particle_id", "size_nm"]]
    figs = [
        figures.cycle_superposition(None, None, on_duration_s=20.0, title="p"),
        figures.switching_efficiency(empty, particle_id=None),
        figures.size_examples([], field_kV_per_cm=130.0),
        figures.tau_vs_size(none_ok, parts, field_kV_per_cm=130.0),
        figures.field_curves({}, title="p"),
        figures.tau_vs_field(none_ok, particle_id=0),
        figures.mobility_histogram(none_ok, mean=None, std=None),
        figures.velocity_vs_field(empty, slope_cm2_per_Vs=None),
        figures.trace_with_field(
            np.arange(5.0),
            np.full(5, np.nan),
            empty.assign(on_start_s=[], on_end_s=[]),
            None,
            title="all NaN",
        ),
    ]
    for fig in figs:
        assert _draw(fig)[:4] == b"\x89PNG"
    assert any(
        "no data" in t.get_text() or "no " in t.get_text()
        for fig in figs[:3]
        for ax in fig.axes
        for t in ax.texts
    )


@pytest.mark.parametrize("ci", [None, [None, None], [float("nan"), 1.0]])
def test_mobility_histogram_tolerates_a_missing_interval(ci):
    assert _draw(figures.mobility_histogram(_kinetics(), mean=2.56e-10, std=None, ci=ci))[:4] == b"\x89PNG"


def _reference_one_patch_per_particle(image, particles, pixel_size_nm):
    """The reference figure as drawn before the outlines became one collection (issue 16): one
    Rectangle patch and one annotation per particle, the rest from :func:`figures.reference_image`."""
    from matplotlib.patches import Rectangle

    fig = figures.reference_image(image, particles.iloc[:0], pixel_size_nm=pixel_size_nm)
    ax = fig.axes[0]
    for row in particles.itertuples():
        side = row.size_nm / pixel_size_nm if np.isfinite(row.size_nm) else 4.0
        ax.add_patch(
            Rectangle(
                (row.x_px - side / 2, row.y_px - side / 2), side, side, fill=False, ec="#59a14f", lw=1.2
            )
        )
        ax.annotate(
            str(row.particle_id), (row.x_px + side / 2 + 1, row.y_px - side / 2), color="#edc948", fontsize=8
        )
    ax.set_title(f"Reference image, {len(particles)} particles (outlines: fitted side length)", fontsize=10)
    return fig


def test_reference_outlines_as_one_collection_draw_the_same_pixels():
    """Outlines as one collection and ids as texts: the PNG of the report is that of one patch and one
    annotation per particle, pixel for pixel (an id whose anchor is off the image is left out, as an
    annotation leaves it out; one particle without a fitted size gets the 4 px square)."""
    from PIL import Image

    rng = np.random.default_rng(3)
    image = rng.normal(100.0, 10.0, (64, 80))
    particles = pd.DataFrame(
        {
            "particle_id": [1, 2, 3, 4, 5],
            "x_px": [10.3, 40.7, 77.9, 60.2, 20.0],
            "y_px": [12.1, 30.4, 50.0, 2.2, 60.5],
            "size_nm": [700.0, 950.0, 800.0, np.nan, 500.0],
        }
    )
    new = figures.reference_image(image, particles, pixel_size_nm=100.0)
    old = _reference_one_patch_per_particle(image, particles, 100.0)
    ids = [t.get_text() for t in new.axes[0].texts]
    assert ids == ["1", "2", "4", "5"]  # particle 3's id would start right of the image
    pixels = [np.asarray(Image.open(io.BytesIO(_draw(f)))) for f in (new, old)]
    assert pixels[0].shape == pixels[1].shape
    assert np.array_equal(pixels[0], pixels[1])
