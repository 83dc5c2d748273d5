"""The report's provenance section: settings (changed ones highlighted), inputs, versions, date, command.

Rendered from the provenance record the pipeline wrote
(:func:`plscope.pipeline.provenance.provenance`, ``provenance.json``); the
settings are compared with the defaults declared in
:mod:`plscope.config.settings`. Nothing is recomputed: checksums, dates and
command lines are shown as recorded.

The part that changes from one invocation to the next (dates, command
lines) sits in ``<div id="provenance-run">``; the rest of the report is the
same bytes for the same input and settings.
"""

from __future__ import annotations

import shlex
from typing import Any

from .page import render_fragment

__all__ = ["provenance_section_html", "settings_rows"]


def _fmt_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def settings_rows(settings: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per analysis setting: ``key, value, default, unit, doc, changed``.

    Keys are dotted (``kinetics.model``), in the order the settings are
    declared; a key the recorded settings lack is shown with its default.
    """
    from ..config._base import fields_of, nested_model, unit_of
    from ..config.settings import AnalysisSettings

    settings = settings or {}
    defaults = AnalysisSettings().to_dict()
    rows = []
    for section, sinfo in fields_of(AnalysisSettings).items():
        model = nested_model(sinfo.annotation)
        if model is None:
            continue
        given = settings.get(section) or {}
        for key, info in fields_of(model).items():
            default = defaults.get(section, {}).get(key)
            value = given.get(key, default)
            rows.append(
                {
                    "key": f"{section}.{key}",
                    "value": _fmt_value(value),
                    "default": _fmt_value(default),
                    "unit": unit_of(info),
                    "doc": info.description or "",
                    "changed": _fmt_value(value) != _fmt_value(default),
                }
            )
    return rows


def _command(cmd: Any) -> str:
    """A recorded command line (argv, shell-quoted) or Python API call (``["plscope.analyze(...)"]``)."""
    if not cmd:
        return "—"
    if isinstance(cmd, (list, tuple)) and len(cmd) == 1 and str(cmd[0]).startswith("plscope."):
        return str(cmd[0])
    return shlex.join(str(c) for c in cmd) if isinstance(cmd, (list, tuple)) else str(cmd)


def provenance_section_html(prov: dict[str, Any] | None) -> str:
    """The ``<h2 id="provenance">`` section of the report, from a provenance record.

    Parameters
    ----------
    prov : dict or None
        ``provenance.json`` of the run: ``versions, platform, settings,
        settings_digest, inputs {path: {sha256, bytes}}, started_utc,
        finished_utc, command_line`` and ``reanalyses`` (each with
        ``at_utc, command_line, changes``).
    """
    prov = prov or {}
    rows = settings_rows(prov.get("settings"))
    inputs = [
        {"path": p, "sha256": (d or {}).get("sha256", "—"), "bytes": (d or {}).get("bytes")}
        for p, d in (prov.get("inputs") or {}).items()
    ]
    reanalyses = [
        {
            "at": r.get("at_utc", "—"),
            "command": _command(r.get("command_line")),
            "changed": ", ".join(sorted(((r.get("changes") or {}).get("settings") or {}).keys())) or "none",
        }
        for r in prov.get("reanalyses") or []
    ]
    return render_fragment(
        "provenance.html.j2",
        rows=rows,
        n_changed=sum(r["changed"] for r in rows),
        settings_recorded=prov.get("settings") is not None,
        digest=prov.get("settings_digest"),
        inputs=inputs,
        versions=prov.get("versions") or {},
        platform=prov.get("platform"),
        started=prov.get("started_utc"),
        finished=prov.get("finished_utc"),
        command=_command(prov.get("command_line")),
        reanalyses=reanalyses,
    )
