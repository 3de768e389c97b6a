"""`python -m trex_mcp.report <tree id or export.json> [-o file.html] [--home DIR]`."""

from __future__ import annotations

from trex_mcp.report.cli import report_main

raise SystemExit(report_main())
