"""Evaluation tools: a round's diagnosis, and the end of a search (test-split score and report)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from mcp.server import MCPServer

from trex_mcp.tools.common import READ, WRITE, WRITE_IDEMPOTENT, Id, LabGetter, as_dict, expected_errors


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=READ, title="Get a round's diagnosis")
    def get_diagnosis(node_id: Id) -> dict[str, Any]:
        """The diagnosis of a finished round: its best run's wrong validation predictions grouped by cause
        (label confusions, wrong format, empty or truncated output, length problems) with counts and examples,
        and each run's outcome. Read it before planning the next round."""
        with expected_errors():
            return as_dict(lab().diagnosis(node_id))

    @server.tool(annotations=WRITE, title="Finalise a tree")
    async def finalize_tree(tree_id: Id) -> dict[str, Any]:
        """End a search: mark the tree finished, score its best node ONCE on the held-out test split (with the base
        model on the same split for the normalised gain), and write the HTML report. No rounds after this."""
        with expected_errors():
            return as_dict(await anyio.to_thread.run_sync(lab().finalize, tree_id))

    @server.tool(annotations=WRITE_IDEMPOTENT, title="Write a tree's report")
    async def write_report(tree_id: Id) -> dict[str, Any]:
        """Write (or rewrite) the self-contained HTML report of a tree: the tree drawn with scores, the
        best-so-far curve, the runs table and the final test result. Returns the file path."""
        with expected_errors():
            the_lab = lab()

            def _write() -> str:
                from trex_mcp.report.html import write_report as write

                the_lab.store.get_tree(tree_id)
                return str(write(the_lab.store, tree_id, the_lab.settings.reports_dir / f"{tree_id}.html"))

            return {"tree_id": tree_id, "path": await anyio.to_thread.run_sync(_write)}
