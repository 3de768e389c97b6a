"""The search tree as a picture: a self-contained HTML report with the tree, score curves and a runs table.

Entry points: :func:`render_report` (export dict -> HTML, pure), :func:`write_report` (store + tree id ->
file, atomic) and :func:`report_main` (the `trex-mcp report` command). Importing this package is cheap:
plotly is imported only when a report is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ReportError", "render_report", "report_main", "write_report"]

if TYPE_CHECKING:
    from trex_mcp.report.cli import report_main
    from trex_mcp.report.errors import ReportError
    from trex_mcp.report.html import render_report, write_report


def __getattr__(name: str) -> Any:
    # Lazy: `import trex_mcp.report` stays cheap for the server's start-up.
    if name == "ReportError":
        from trex_mcp.report.errors import ReportError

        return ReportError
    if name in ("render_report", "write_report"):
        from trex_mcp.report import html

        return getattr(html, name)
    if name == "report_main":
        from trex_mcp.report.cli import report_main

        return report_main
    raise AttributeError(f"module 'trex_mcp.report' has no attribute {name!r}")
