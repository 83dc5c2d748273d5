"""Generate the page of output columns (``_generated/columns.md``) from :mod:`plscope.columns`.

Every ``*_COLUMNS`` tuple of :mod:`plscope.columns` becomes a table of its
columns, each with the unit read from its name (:func:`plscope.columns.unit_of`)
and, where known, a meaning from :data:`MEANINGS`. The table's caption is the
constant's own ``#:`` comment, so a column added to :mod:`plscope.columns`
appears here at the next build.
"""

from __future__ import annotations

from sphinx.pycode import ModuleAnalyzer

from plscope import columns
from plscope.columns import MEANINGS


def _caption(lines: list[str]) -> str:
    text = " ".join(line.strip() for line in lines).strip()
    # roles of the Python docs become literals here (the page is Markdown)
    for role in (":func:", ":attr:", ":data:", ":mod:", ":class:"):
        text = text.replace(role, "")
    return text.replace("``", "`")


def _table(names: tuple[str, ...]) -> list[str]:
    rows = ["| column | unit | meaning |", "| --- | --- | --- |"]
    for name in names:
        unit = columns.unit_of(name) or "–"
        rows.append(f"| `{name}` | {unit} | {MEANINGS.get(name, '')} |")
    return rows


def units_markdown() -> str:
    """The Markdown table of unit suffixes (:data:`plscope.columns.UNITS`)."""
    rows = ["| suffix | unit |", "| --- | --- |"]
    rows += [f"| `{suffix}` | {unit} |" for suffix, unit in columns.UNITS.items()]
    return "\n".join(rows) + "\n"


def columns_markdown() -> str:
    """The Markdown of the generated page (every table, column, unit)."""
    docs = ModuleAnalyzer.for_module("plscope.columns").find_attr_docs()
    out = [
        "<!-- generated from plscope.columns by docs/_columns.py at each build; do not edit -->",
        "",
    ]
    for (_, name), lines in docs.items():
        value = getattr(columns, name, None)
        if not name.endswith("_COLUMNS") or not isinstance(value, tuple):
            continue
        out += [f"### `{name}`", "", _caption(lines), ""] + _table(value) + [""]
    return "\n".join(out)
