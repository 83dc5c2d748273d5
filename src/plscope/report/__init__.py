"""Self-contained HTML reports (figures embedded as PNG data URIs)."""

from .html import render_report, write_report

__all__ = ["render_report", "write_report"]
