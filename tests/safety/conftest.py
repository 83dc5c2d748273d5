"""Fixtures of the safety tests: a tiny simulated run folder, its analysed output, tree snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_src(tmp_path_factory, simulate_tiny) -> Path:
    """The tiny run of tests/conftest.py (3 particles, 64x64 px, one level, 2 cycles), no ground truth."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    simulate_tiny(out, seed=5)
    (out / "ground_truth.json").unlink()
    return out


@pytest.fixture
def tiny_run(tiny_src, tmp_path) -> Path:
    """A private copy of the tiny run folder (tmp_path/session/run)."""
    dst = tmp_path / "session" / "run"
    shutil.copytree(tiny_src, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_output(tiny_src, tmp_path_factory) -> Path:
    """The tiny run analysed once by `plscope run` (copy it before changing it)."""
    from plscope.cli import main

    out = tmp_path_factory.mktemp("tinyout") / "out"
    assert main(["-q", "run", str(tiny_src), "--out", str(out), "--no-progress"]) == 0
    return out
