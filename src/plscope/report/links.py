"""Names are data: links and table cells built from run-folder names that no browser or spreadsheet runs.

A run folder may be called ``javascript:void(document.title='PWNED')``,
``a#b``, ``x"onmouseover=...`` or ``=HYPERLINK(...)``. Links are always
relative (``./name/report.html``) with every path segment percent-encoded
(so ``:``, ``#``, ``?``, ``%`` and quotes are plain characters of a folder
name), and then HTML-escaped for the attribute. For Jinja2 templates
register :func:`relative_href` as a filter; autoescape does the HTML part.
"""

from __future__ import annotations

import html
from urllib.parse import quote

__all__ = ["link_html", "relative_href"]


def relative_href(*segments: str) -> str:
    """A relative URL ``./seg1/seg2/...`` with each segment percent-encoded (no scheme, no fragment).

    Examples
    --------
    >>> relative_href("javascript:void(0)", "report.html")
    './javascript%3Avoid%280%29/report.html'
    >>> relative_href("a#b", "report.html")
    './a%23b/report.html'
    """
    return "./" + "/".join(quote(str(s), safe="") for s in segments)


def link_html(text: str, *segments: str) -> str:
    """``<a href="./...">text</a>``: URL-encoded relative target, HTML-escaped text and attribute."""
    href = html.escape(relative_href(*segments), quote=True)
    return f'<a href="{href}">{html.escape(str(text), quote=True)}</a>'
