"""Shared machinery of the configuration models.

Every model of :mod:`plscope.config` is a frozen pydantic (v2) dataclass whose
fields are declared once with :func:`setting`: type, default, range
(``ge``/``gt``/``le``/``lt``), unit and one line of documentation. From that one
declaration come the validation (``config --check``, ``run``, ``reanalyze``,
the Python API), the error messages, ``config --print-defaults`` and
``docs/configuration.md``.

Why pydantic rather than attrs: the field constraints are data that pydantic
exposes (``__pydantic_fields__``, JSON schema), so the defaults file and the
documentation are generated from the same declaration that validates; every
error comes with its precise location (``kinetics.tau_bounds_s.1``), so a
message can name the file and key; and pydantic dataclasses remain standard
dataclasses (``dataclasses.replace``/``asdict`` keep working for the code and
tests that use them).

Messages are one line, name the file and the key, and never quote more than a
short, escaped excerpt of what the file holds.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from ..errors import ConfigError

#: Configuration of every model: unknown keys refused, no NaN/inf, frozen.
MODEL_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=False)

#: Largest configuration file read (bytes): a TOML of settings is a few kB.
MAX_FILE_BYTES = 1_000_000

_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = 40
_EXCERPT.maxother = 40
_EXCERPT.maxlist = 4
_EXCERPT.maxtuple = 4
_EXCERPT.maxdict = 4
_EXCERPT.maxlevel = 2


def excerpt(value: Any) -> str:
    """Short, escaped representation of a value read from a file (for messages)."""
    try:
        return _EXCERPT.repr(value)
    except (RecursionError, ValueError):  # pragma: no cover - reprlib bounds depth already
        return f"<{type(value).__name__}>"


# --------------------------------------------------------------------------
# field types: numbers are numbers (no bool, no string), tuples from TOML lists
# --------------------------------------------------------------------------


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or (type(v).__module__ == "numpy" and type(v).__name__ in ("bool_", "bool"))


def _is_number(v: Any) -> bool:
    if _is_bool(v) or isinstance(v, (str, bytes)):
        return False
    return isinstance(v, (int, float)) or hasattr(v, "__float__") and hasattr(v, "dtype")


def _number(v: Any) -> Any:
    if not _is_number(v):
        raise PydanticCustomError("number_type", "must be a number")
    return float(v)


def _integer(v: Any) -> Any:
    if not _is_number(v):
        raise PydanticCustomError("int_type", "must be an integer")
    if isinstance(v, int):
        return v
    f = float(v)
    if not math.isfinite(f) or not f.is_integer():
        raise PydanticCustomError("int_type", "must be an integer")
    return int(f)


def _boolean(v: Any) -> Any:
    if not _is_bool(v):
        raise PydanticCustomError("bool_type", "must be true or false")
    return bool(v)


def _text(v: Any) -> Any:
    if not isinstance(v, str):
        raise PydanticCustomError("string_type", "must be a string")
    return v


def _nonempty(v: Any) -> Any:
    v = _text(v)
    if not v.strip():
        raise PydanticCustomError("empty", "must not be empty")
    return v


def _sequence(v: Any) -> Any:
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, (list, tuple)) and not hasattr(v, "__len__"):
        raise PydanticCustomError("list_type", "must be a list of numbers")
    return tuple(v)


def _channel(v: Any) -> Any:
    if isinstance(v, str):
        return _nonempty(v)
    if _is_number(v) and float(v).is_integer() and float(v) >= 0:
        return int(v)
    raise PydanticCustomError("channel_type", "must be an index >= 0 or a channel name")


Float = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Bool = Annotated[bool, BeforeValidator(_boolean)]
Str = Annotated[str, BeforeValidator(_text)]
NonEmptyStr = Annotated[str, BeforeValidator(_nonempty)]
FloatTuple = Annotated[tuple[Float, ...], BeforeValidator(_sequence)]
FloatPair = Annotated[tuple[Float, Float], BeforeValidator(_sequence)]
IntPair = Annotated[tuple[Int, Int], BeforeValidator(_sequence)]
#: an index (>= 0) or a name, e.g. the channel of a multi-channel file
IndexOrName = Annotated[int | str, BeforeValidator(_channel)]


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    unit: str = "",
    rule: str | None = None,
    example: Any = None,
    in_file: bool = True,
    default_factory: Any = None,
    **constraints: Any,
) -> Any:
    """Declare a configuration field: default, range, unit and one line of documentation.

    Parameters
    ----------
    default : object
        The default value (omit for a required key).
    doc : str
        One line of documentation (shown in the defaults file and the docs).
    unit : str
        Unit of the value (``"nm"``, ``"s"``, ``"kV/cm"``), ``""`` when dimensionless.
    rule : str, optional
        Wording of the range check in messages (default: derived from the constraints).
    example : object, optional
        A typical value of an optional key without default (shown commented out).
    in_file : bool
        False for a field that is not a key of the file (set by the loader).
    **constraints
        ``ge``, ``gt``, ``le``, ``lt``, ``min_length``, ``max_length`` as in :func:`pydantic.Field`.
    """
    extra: dict[str, Any] = {"unit": unit}
    if rule:
        extra["rule"] = rule
    if example is not None:
        extra["example"] = example
    if not in_file:
        extra["in_file"] = False
    kwargs: dict[str, Any] = dict(description=doc, json_schema_extra=extra, **constraints)
    if default_factory is not None:
        return Field(default_factory=default_factory, **kwargs)
    if default is dataclasses.MISSING:
        return Field(**kwargs)
    return Field(default, **kwargs)


def spec(*, doc: str, unit: str = "", rule: str | None = None, **constraints: Any) -> Any:
    """The constraints of a field declared as ``Annotated[type, spec(...)] = default``.

    Used where the models are plain (stdlib) dataclasses validated by
    :func:`check_fields` (the simulator parameters); same meaning as
    :func:`setting`.
    """
    extra: dict[str, Any] = {"unit": unit}
    if rule:
        extra["rule"] = rule
    return Field(description=doc, json_schema_extra=extra, **constraints)


# --------------------------------------------------------------------------
# introspection (shared by the messages, the defaults file and the docs)
# --------------------------------------------------------------------------


def fields_of(cls: type, *, in_file: bool = False) -> dict[str, Any]:
    """The pydantic ``FieldInfo`` of each field of a model, in declaration order.

    With ``in_file``, only the fields that are keys of the file.
    """
    if hasattr(cls, "__pydantic_fields__"):
        out = dict(cls.__pydantic_fields__)
    elif dataclasses.is_dataclass(cls):
        out = _plain_fields(cls)
    else:
        out = {}
    if in_file:
        out = {k: v for k, v in out.items() if (v.json_schema_extra or {}).get("in_file", True)}
    return out


_PLAIN_FIELDS: dict[type, dict[str, Any]] = {}


def _plain_fields(cls: type) -> dict[str, Any]:
    """FieldInfo of a stdlib dataclass whose fields are ``Annotated[type, spec(...)]``."""
    if cls not in _PLAIN_FIELDS:
        hints = typing.get_type_hints(cls, include_extras=True)
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else PydanticUndefined
            info = FieldInfo.from_annotated_attribute(hints[f.name], default)
            info.annotation = hints[f.name]
            out[f.name] = info
        _PLAIN_FIELDS[cls] = out
    return _PLAIN_FIELDS[cls]


_FIELD_ADAPTERS: dict[Any, TypeAdapter] = {}


def _field_adapter(annotation: Any) -> TypeAdapter:
    if annotation not in _FIELD_ADAPTERS:
        _FIELD_ADAPTERS[annotation] = TypeAdapter(annotation, config=ConfigDict(allow_inf_nan=False))
    return _FIELD_ADAPTERS[annotation]


def check_fields(obj: Any, error: type[Exception], what: str) -> None:
    """Validate (and coerce, e.g. lists to tuples) every field of a plain frozen dataclass.

    Call from ``__post_init__``; raises ``error`` with one line listing every
    problem: ``"invalid <what>: 'duty' must be a positive number in (0, 1), got 1.0"``.
    """
    cls = type(obj)
    problems: list[str] = []
    for name, info in _plain_fields(cls).items():
        try:
            value = _field_adapter(info.annotation).validate_python(getattr(obj, name))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                problems.append(_message(cls, {**err, "loc": (name, *err["loc"])}))
            continue
        except RecursionError:
            problems.append(f"'{name}' is nested too deeply")
            continue
        object.__setattr__(obj, name, value)
    if problems:
        raise error(f"invalid {what}: " + "; ".join(problems))


def nested_model(annotation: Any) -> type | None:
    """The model class inside an annotation such as ``MovieConfig | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = nested_model(arg)
            if found is not None:
                return found
        return None
    if origin is Annotated:
        return nested_model(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and hasattr(annotation, "__pydantic_fields__"):
        return annotation
    return None


def bounds(info: Any) -> dict[str, float]:
    """The numeric constraints of a field: ``{'ge': ..., 'le': ...}``."""
    out: dict[str, float] = {}
    for m in info.metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            v = getattr(m, name, None)
            if v is not None and isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le, at.MinLen, at.MaxLen)):
                out[name] = v
    return out


def _fmt(v: float) -> str:
    return f"{v:g}"


def rule_of(info: Any) -> str:
    """How a field's range reads in a message: 'must be a positive number in (0, 1e+06]'."""
    extra = info.json_schema_extra or {}
    if isinstance(extra, dict) and extra.get("rule"):
        return str(extra["rule"])
    b = bounds(info)
    lo = b.get("gt", b.get("ge"))
    hi = b.get("lt", b.get("le"))
    positive = ("gt" in b and b["gt"] >= 0) or ("ge" in b and b["ge"] > 0)
    noun = "integer" if _is_int(info.annotation) else "number"
    kind = f"a positive {noun}" if positive else f"a{'n' if noun == 'integer' else ''} {noun}"
    if hi is None:
        if lo is None or (positive and b.get("gt") == 0):
            return f"must be {kind}"
        return f"must be {kind} {'>=' if 'ge' in b else '>'} {_fmt(lo)}"
    left = "[" if "ge" in b else "("
    right = "]" if "le" in b else ")"
    lo_s = _fmt(lo) if lo is not None else "-inf"
    return f"must be {kind} in {left}{lo_s}, {_fmt(hi)}{right}"


def _is_int(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_int(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation is int


def unit_of(info: Any) -> str:
    extra = info.json_schema_extra or {}
    return str(extra.get("unit", "")) if isinstance(extra, dict) else ""


def _info_at(cls: type, loc: tuple) -> Any:
    """FieldInfo of the field at an error location, or None."""
    info = None
    current: type | None = cls
    for part in loc:
        if not isinstance(part, str) or current is None:
            break
        info = fields_of(current).get(part)
        if info is None:
            return None
        current = nested_model(info.annotation)
    return info


def _choices(info: Any) -> str | None:
    if info is None:
        return None
    ann = info.annotation
    args: tuple = ()
    if typing.get_origin(ann) is Literal:
        args = typing.get_args(ann)
    elif typing.get_origin(ann) in (typing.Union, types.UnionType):
        for a in typing.get_args(ann):
            if typing.get_origin(a) is Literal:
                args = typing.get_args(a)
    if not args:
        return None
    quoted = [f"'{a}'" for a in args]
    if len(quoted) == 2:
        return f"must be {quoted[0]} or {quoted[1]}"
    return "must be one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]


# --------------------------------------------------------------------------
# unknown keys
# --------------------------------------------------------------------------


def suggestion(key: str, known: typing.Iterable[str]) -> str | None:
    """The closest known key (difflib), or None."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return close[0] if close else None


def clean_key(key: Any) -> str:
    """A key read from a file, safe to print: control characters replaced, at most 60 characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(key))
    return text if len(text) <= 60 else text[:57] + "..."


def split_unknown(cls: type, data: Any, prefix: str = "") -> tuple[Any, list[str]]:
    """Drop keys that ``cls`` does not declare as keys of the file (recursively).

    Returns
    -------
    (dict, list of str)
        The mapping without them, and one warning per key dropped.
    """
    if not isinstance(data, Mapping):
        return data, []
    known = fields_of(cls, in_file=True)
    clean: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in data.items():
        if key not in known:
            close = suggestion(str(key), known)
            hint = f" (did you mean '{close}'?)" if close else ""
            notes.append(f"unknown key '{prefix}{clean_key(key)}' ignored{hint}")
            continue
        sub = nested_model(known[key].annotation)
        if sub is not None and isinstance(value, Mapping):
            value, more = split_unknown(sub, value, f"{prefix}{key}.")
            notes.extend(more)
        clean[key] = value
    return clean, notes


# --------------------------------------------------------------------------
# validation with one-line messages
# --------------------------------------------------------------------------


def _message(cls: type, err: Any) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    names = [clean_key(p) for p in loc]
    key = ".".join(names)
    info = _info_at(cls, loc)
    got = f", got {excerpt(err.get('input'))}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent = _info_at(cls, loc[:-1]) if len(loc) > 1 else None
        parent_cls = nested_model(parent.annotation) if parent is not None else cls
        close = suggestion(names[-1], fields_of(parent_cls) if parent_cls else {})
        where = ".".join(names[:-1])
        hint = f" (did you mean '{where + '.' if where else ''}{close}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    if kind == "missing" and loc and isinstance(loc[-1], int):
        base = ".".join(n for n, p in zip(names, loc, strict=True) if not isinstance(p, int))
        return f"'{base}' has too few values"
    if kind == "missing":
        return f"required key '{key}' is missing"
    if kind in ("dataclass_type", "dataclass_exact_type", "dict_type", "model_type"):
        return f"[{key}] must be a table" if key else "must be a table"
    if kind == "literal_error":
        return f"'{key}' {_choices(info) or err['msg']}{got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if info is None or not isinstance(loc[-1], str):
            return f"'{key}' {str(err['msg']).lower()}{got}"
        rule = rule_of(info)
        head = rule.split(" in [")[0].split(" in (")[0]
        value = err.get("input")
        if head.endswith("a positive number") and isinstance(value, (int, float)) and value <= 0:
            return f"'{key}' {head}{got}" + (f" (allowed: {rule[len(head) + 4 :]})" if rule != head else "")
        return f"'{key}' {rule}{got}"
    if kind == "finite_number":
        return f"'{key}' must be a finite number{got}"
    if kind in ("too_short", "too_long"):
        return f"'{key}' {err['msg'][0].lower()}{err['msg'][1:]}{got}"
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"'{key}' {msg}" if key else msg
    if kind == "assertion_error":
        return str(err["msg"]).removeprefix("Assertion failed, ")
    msg = str(err["msg"])
    return f"'{key}' {msg}{got}" if key else msg


def problems_of(cls: type, exc: ValidationError) -> list[str]:
    """One message per error of a pydantic ValidationError, in file order."""
    out: list[str] = []
    for err in exc.errors(include_url=False):
        text = _message(cls, err)
        if text not in out:
            out.append(text)
    return out


_ADAPTERS: dict[Any, TypeAdapter] = {}


def adapter(cls: Any) -> TypeAdapter:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def validate(cls: type, data: Any, *, source: str | os.PathLike, context: str = "") -> Any:
    """Build ``cls`` from a (partial) mapping; :class:`ConfigError` naming source and keys.

    Parameters
    ----------
    cls : type
        A model of :mod:`plscope.config`.
    data : mapping
        The parsed TOML (or keyword arguments).
    source : path-like
        File name for the messages.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, f"{context or 'the file'} must be a table of keys, got {type(data).__name__}"
        )
    try:
        return adapter(cls).validate_python(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, "; ".join(problems_of(cls, exc))) from None
    except RecursionError:
        raise ConfigError(source, "values nested too deeply") from None


def load_toml(path: str | os.PathLike, *, what: str = "file") -> dict[str, Any]:
    """Read a TOML file; :class:`ConfigError` with one line for every way it can fail."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(path, f"{what} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(path, f"{what} is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(path, f"too large for a configuration file (> {MAX_FILE_BYTES // 1000} kB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {_first_line(str(exc))}") from None
    except RecursionError:
        raise ConfigError(path, "not valid TOML: nested too deeply") from None


def _first_line(text: str) -> str:
    line = text.splitlines()[0] if text else "parse error"
    return "".join(ch if ch.isprintable() else "?" for ch in line)[:200]


def to_plain(obj: Any) -> Any:
    """Plain dict/list form of a model (tuples as lists), for JSON and TOML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
