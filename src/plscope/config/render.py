"""Text generated from the configuration models: the defaults TOML and the docs tables.

Nothing here is written by hand per key: a field added to a model appears in
``plscope config --print-defaults`` and in ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from ._base import bounds, fields_of, nested_model, unit_of


def toml_value(value: Any) -> str:
    """A Python value as TOML source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _extra(info: Any) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _default(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    if info.default is dataclasses.MISSING or repr(info.default) == "PydanticUndefined":
        return dataclasses.MISSING
    return info.default


def _section(annotation: Any) -> tuple[type | None, bool]:
    """(model, is_array) of a section field: ``Model``, ``Model | None`` or ``list[Model]``."""
    if typing.get_origin(annotation) is list:
        (arg,) = typing.get_args(annotation)
        return nested_model(arg), True
    return nested_model(annotation), False


def defaults_toml(cls: type, header: str, *, width: int = 24) -> str:
    """The commented defaults file of a model whose fields are sections.

    Keys without a default value (optional, computed from the data) are shown
    commented out with their ``example``.
    """
    lines = [header.rstrip(), ""]
    for section, sinfo in fields_of(cls).items():
        sub, array = _section(sinfo.annotation)
        if sub is None:
            continue
        lines.append(f"[[{section}]]" if array else f"[{section}]")
        entries: list[tuple[str, str]] = []
        for key, info in fields_of(sub).items():
            default = _default(info)
            example = _extra(info).get("example")
            doc = info.description or ""
            if default is dataclasses.MISSING:
                text = f"{key} = {toml_value(example) if example is not None else '...'}"
                doc = f"(required) {doc}".rstrip()
            elif default is None:
                text = f"# {key} = {toml_value(example) if example is not None else '...'}"
            else:
                text = f"{key} = {toml_value(default)}"
            entries.append((text, doc))
        width = max([width - 1] + [len(t) for t, _ in entries]) + 1
        lines.extend(f"{t.ljust(width)} # {d}" if d else t for t, d in entries)
        lines.append("")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, __import__("types").UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return "list of " + _plural(_type_name(args[0]))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return "list of " + _plural(_type_name(args[0]))
        return f"list of {len(args)} " + _plural(_type_name(args[0]))
    if annotation is float:
        return "number"
    if annotation is int:
        return "integer"
    if annotation is bool:
        return "true/false"
    if annotation is str:
        return "text"
    return getattr(annotation, "__name__", str(annotation))


def _plural(name: str) -> str:
    return name if name.endswith("s") or " " in name else name + "s"


def _range(info: Any) -> str:
    b = bounds(info)
    parts = []
    for name, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if name in b:
            parts.append(f"{sym} {b[name]:g}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(cls: type, prefix: str = "") -> str:
    """A Markdown table of one model: key, type, default, range, unit, meaning."""
    rows = ["| key | type | default | range | unit | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for key, info in fields_of(cls, in_file=True).items():
        if _section(info.annotation)[0] is not None:
            continue
        key = info.alias or key
        default = _default(info)
        if default is dataclasses.MISSING:
            shown = "**required**"
        elif default is None:
            shown = "—"
        else:
            shown = f"`{toml_value(default)}`"
        rows.append(
            f"| `{prefix}{key}` | {_type_name(info.annotation)} | {shown} | {_cell(_range(info))} | "
            f"{_cell(unit_of(info))} | {_cell(info.description or '')} |"
        )
    return "\n".join(rows)


def markdown_sections(cls: type, *, level: int = 3) -> str:
    """One Markdown table per section (nested model) of ``cls``, then its own keys."""
    out = []
    own = [k for k, i in fields_of(cls, in_file=True).items() if _section(i.annotation)[0] is None]
    if own:
        out.append(markdown_table(cls))
    for section, info in fields_of(cls).items():
        sub, array = _section(info.annotation)
        if sub is None:
            continue
        doc = (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else ""
        name = f"[[{section}]]" if array else f"[{section}]"
        out.append(f"{'#' * level} `{name}`\n\n{doc}\n\n{markdown_table(sub)}")
    return "\n\n".join(out)
