"""The one page template and the one style sheet of every plscope HTML page (Jinja2, autoescaped).

Pages are self-contained: the CSS is inlined and figures are PNG data URIs.
Sections are built by their modules as HTML fragments whose every value was
escaped there; the page template escapes whatever it is given as text.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

__all__ = ["css", "render_fragment", "render_page", "script"]


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("plscope.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def _template(name: str) -> Template:
    return _environment().get_template(name)


@cache
def css() -> str:
    """The style sheet shared by every page (``templates/plscope.css``)."""
    loader = _environment().loader
    assert loader is not None
    return loader.get_source(_environment(), "plscope.css")[0]


@cache
def script() -> str:
    """The report's small inline script (``templates/report.js``): sortable and filterable tables."""
    loader = _environment().loader
    assert loader is not None
    return loader.get_source(_environment(), "report.js")[0]


def render_page(title: str, body_html: str, *, with_script: bool = False) -> str:
    """A whole HTML page around ``body_html`` (an already escaped fragment).

    Parameters
    ----------
    title : str
        Page title, plain text (escaped here).
    body_html : str
        The page's content as HTML, every value in it escaped by its builder.
    with_script : bool
        Inline :func:`script` (pages with sortable tables); pages built from
        names the user chose (the batch index) stay script-free.

    Examples
    --------
    >>> page = render_page("a < b", "<h1>a &lt; b</h1>")
    >>> "<title>a &lt; b</title>" in page and page.endswith("</html>\\n")
    True
    """
    return _template("page.html.j2").render(
        title=title,
        css=Markup(css()),
        body=Markup(body_html),
        script=Markup(script()) if with_script else "",
    )


def render_fragment(name: str, **context) -> str:
    """An HTML fragment from the template ``templates/<name>`` (every value autoescaped).

    Parameters
    ----------
    name : str
        Template file name, e.g. ``"provenance.html.j2"``.
    **context
        The template's variables (plain values; markup only as :class:`markupsafe.Markup`).
    """
    return _template(name).render(**context)
