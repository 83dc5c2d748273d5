"""Sphinx configuration of the plscope documentation.

Build (warnings are errors, as in CI)::

    python -m sphinx -W -b html docs docs/_build/html

The tutorial notebook (``tutorial.md``, a MyST-NB text notebook) is executed
during the build; the table of output columns is generated from
:mod:`plscope.columns` (``_generated/columns.md``) so that it cannot drift.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(ROOT / "src"))

import _columns  # noqa: E402  (docs/_columns.py, after the path is set)

import plscope  # noqa: E402

project = "plscope"
author = "plscope developers"
copyright = "plscope developers"
release = plscope.__version__
version = release

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
    "jupyter_execute",
    "_generated",
]

# ---- MyST / MyST-NB ---------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # the tutorial runs at every build (CI included)
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_merge_streams = True

# ---- autodoc / numpydoc -------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc shows the types from the docstrings
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()


# ---- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"plscope {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path: list[str] = []


def _api_top() -> str:
    """The top-level API (``plscope.api``: analyze, load, reanalyze, simulate) when present."""
    try:
        importlib.import_module("plscope.api")
    except ImportError:
        return ""
    return "## The top-level functions\n\n```{eval-rst}\n.. automodule:: plscope.api\n   :members:\n```\n"


def _generate(app) -> None:
    """Write the generated pages before Sphinx reads the sources."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    pages = {
        "columns.md": _columns.columns_markdown(),
        "units.md": _columns.units_markdown(),
        "api_top.md": _api_top(),
    }
    for name, text in pages.items():
        target = out / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", _generate)
