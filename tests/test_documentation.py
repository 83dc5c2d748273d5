"""The documentation: the Sphinx site builds with warnings as errors (the tutorial
notebook executed), and the ``>>>`` examples of the public modules run.

The build is the one command of the README (``python -m sphinx -W -b html docs
docs/_build/html``), here into a temporary folder.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "plscope"

_HAVE_SPHINX = all(importlib.util.find_spec(m) is not None for m in ("sphinx", "myst_nb", "numpydoc"))


def _modules_with_examples() -> list[str]:
    """Every plscope module whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(SRC.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            rel = path.relative_to(SRC.parent).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module", _modules_with_examples())
def test_doctests(module, tmp_path, monkeypatch):
    """The ``>>>`` examples of the docstrings run and print what they show."""
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {module} failed (see above)"
    )


@pytest.mark.slow
@pytest.mark.skipif(not _HAVE_SPHINX, reason='the docs extra is not installed (pip install -e ".[docs]")')
def test_docs_build_without_warnings(tmp_path):
    """``sphinx-build -W``: every page, the API reference and the executed tutorial."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(REPO / "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in (
        "index",
        "getting-started",
        "tutorial",
        "bring-your-own-data",
        "outputs",
        "configuration",
        "run-folder",
        "detector-folder",
        "validation",
        "api",
        "how-it-works/kinetics",
    ):
        assert (out / f"{page}.html").is_file(), page
    tutorial = (out / "tutorial.html").read_text(encoding="utf-8")
    assert "truth" in tutorial and "cm2/(V s)" in tutorial  # the notebook's outputs are in the page
    assert list((out / "_images").glob("*.png")), "the tutorial's figure is missing"
