"""Functions in the science packages are short enough to read at once.

A function counts from its ``def`` to its last line (``ast`` ``end_lineno -
lineno + 1``) minus its docstring: a public function's numpydoc docstring
(Parameters, Returns, Examples) may make it longer than 80 lines in all, its
code may not. The code limit is below 80 so that the long public functions
(``measure_sizes``, ``extract_traces``, ``detect_particles``, ...: 40-65 lines
of code after their split into private helpers) stay readable at once with
their signature.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "plscope"

#: floor 2 of the design: the science and the readers
SCIENCE = ("io", "sync", "tracking", "kinetics", "spectra", "detector")

#: most lines of code (docstring left out) of one function
MAX_CODE_LINES = 65

#: known exceptions, with the reason
EXCEPTIONS: set[str] = set()


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return 0


def _functions():
    for package in SCIENCE:
        for path in sorted((PKG / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    total = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    name = f"{path.relative_to(PKG).as_posix()}:{node.name}"
                    yield name, total, total - _docstring_lines(node)


@pytest.mark.parametrize("package", SCIENCE)
def test_no_long_function_in_the_science_packages(package):
    long = [
        f"{name} ({code} lines of code, {total} in all)"
        for name, total, code in _functions()
        if name.startswith(package + "/") and code > MAX_CODE_LINES and name not in EXCEPTIONS
    ]
    assert not long, "split along their concepts into private helpers: " + "; ".join(long)


def test_the_functions_were_read():
    names = {name for name, _, _ in _functions()}
    assert "tracking/size.py:measure_sizes" in names
    assert "sync/frames.py:find_lost_frames" in names
