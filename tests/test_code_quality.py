"""Code-quality gates run by the README's single test command (and so by CI).

ruff (lint and format) on the whole repository and mypy on ``src/``, both
configured in pyproject.toml. They are tests rather than separate CI steps so
that ``python -m pytest`` alone says whether a change may land, locally as in CI.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

needs_ruff = pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed")
needs_mypy = pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@needs_ruff
def test_ruff_check():
    proc = _run("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@needs_ruff
def test_ruff_format():
    proc = _run("ruff", "format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, "run `ruff format .`:\n" + proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.slow
@needs_mypy
def test_mypy():
    """``mypy`` (configured in pyproject.toml: src/) finds no error."""
    proc = _run("mypy")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
