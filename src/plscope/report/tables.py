"""The report's tables: the key columns of particles.csv and kinetics.csv, sortable and filterable.

Each table shows a chosen set of columns (the whole table stays in the CSV,
linked), a header that sorts on click and a filter box (the small inline
script of ``templates/report.js``; the page stays one file that works
offline). A glossary under each table gives every shown column's unit and
meaning, from :data:`plscope.columns.MEANINGS`. Values are shown as saved;
a column may be shown in a scaled unit (named in its header), with the saved
value in the cell's ``data-value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..columns import MEANINGS, unit_of
from .figures import MU_SCALE, MU_UNIT
from .page import render_fragment

__all__ = ["KINETICS_SHOWN", "PARTICLES_SHOWN", "Column", "table_html"]


@dataclass(frozen=True)
class Column:
    """A shown column: name in the CSV, header, display unit and scale, format, meaning override."""

    name: str
    header: str
    unit: str | None = None  # None: the unit read from the name
    scale: float = 1.0
    fmt: str = ".4g"
    meaning: str | None = None


PARTICLES_SHOWN: tuple[Column, ...] = (
    Column("particle_id", "particle", fmt="d"),
    Column("x_px", "x", fmt=".1f"),
    Column("y_px", "y", fmt=".1f"),
    Column("size_nm", "size", fmt=".0f"),
    Column("size_err_nm", "± size", fmt=".0f"),
    Column("aspect_ratio", "aspect", fmt=".2f"),
    Column("snr", "SNR", fmt=".3g"),
    Column("blink_fraction", "blinked", fmt=".2f"),
    Column("bleach_fraction", "bleached", fmt=".2f"),
    Column("reason", "quality flags"),
    Column("excluded", "excluded"),
)

KINETICS_SHOWN: tuple[Column, ...] = (
    Column("particle_id", "particle", fmt="d"),
    Column("field_kV_per_cm", "E", fmt=".1f"),
    Column("size_nm", "size", fmt=".0f"),
    Column("tau_pol_s", "τ_pol", fmt=".3g"),
    Column("tau_pol_err_s", "± τ_pol", fmt=".2g"),
    Column("tau_rec_s", "τ_rec", fmt=".3g"),
    Column("tau_rec_err_s", "± τ_rec", fmt=".2g"),
    Column("switching_efficiency", "SE", fmt=".3f"),
    Column("velocity_nm_per_s", "v", fmt=".3g"),
    Column("mobility_cm2_per_Vs", "µ", unit=MU_UNIT, scale=MU_SCALE, fmt=".3g"),
    Column("mobility_err_cm2_per_Vs", "± µ", unit=MU_UNIT, scale=MU_SCALE, fmt=".2g"),
    Column("used", "used", meaning="the row enters the population statistics (µ, τ against size and field)"),
    Column("exclusion_reason", "why not used (fits)"),
    Column(
        "excluded", "particle excluded", meaning="the particle's own exclusion (particles.csv 'excluded')"
    ),
)


def _cell(v, col: Column) -> tuple[str, str]:
    """(shown text, sort key) of one value."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or v is pd.NA:
        return "—", ""
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), ("1" if v else "0")
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        x = float(v)
        if col.fmt == "d":
            return f"{int(x)}", repr(x)
        return format(x * col.scale, col.fmt), repr(x)
    text = str(v).replace(";", "; ")
    return text, text


def table_html(df: pd.DataFrame, shown: Sequence[Column], *, table_id: str, title: str, csv_name: str) -> str:
    """One sortable, filterable table of the columns ``shown`` that ``df`` has, with its glossary.

    Parameters
    ----------
    df : DataFrame
        The saved table (e.g. ``particles.csv``).
    shown : sequence of Column
        The columns to show, in order (those missing from ``df`` are skipped).
    table_id : str
        ``id`` of the ``<table>``.
    title : str
        Heading.
    csv_name : str
        The file that holds the whole table (linked).
    """
    cols = [c for c in shown if c.name in df.columns]
    heads = []
    for c in cols:
        unit = c.unit if c.unit is not None else unit_of(c.name)
        numeric = pd.api.types.is_numeric_dtype(df[c.name]) and not pd.api.types.is_bool_dtype(df[c.name])
        heads.append({"header": c.header, "unit": unit, "name": c.name, "numeric": numeric})
    rows = []
    for rec in df[[c.name for c in cols]].itertuples(index=False, name=None):
        rows.append([_cell(v, c) for v, c in zip(rec, cols, strict=True)])
    glossary = [
        {
            "header": c.header,
            "name": c.name,
            "unit": h["unit"] or "–",
            "meaning": c.meaning or MEANINGS.get(c.name, ""),
        }
        for c, h in zip(cols, heads, strict=True)
    ]
    return render_fragment(
        "table.html.j2",
        table_id=table_id,
        title=title,
        csv_name=csv_name,
        heads=heads,
        rows=rows,
        glossary=glossary,
        n_columns_all=len(df.columns),
    )
