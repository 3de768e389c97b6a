"""`trex-mcp report`: write the HTML report of a tree from the store, or of an exported tree JSON file.

The store is only read (opening an absent store is refused, so a typo in --home creates nothing). The
report is written atomically; the path written is the one line printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trex_mcp.report.errors import ReportError

if TYPE_CHECKING:
    from trex_mcp.settings import Settings

__all__ = ["build_parser", "report_command", "report_main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trex-mcp report",
        description="Write a self-contained HTML report of a search tree (opens offline).")
    parser.add_argument("tree", help="a tree id (a unique id prefix or tree name also works) in the store under "
                                     "--home, or the path of an exported tree JSON file")
    parser.add_argument("-o", "--output", help="HTML file to write (default: <home>/reports/<tree id>.html, or "
                                               "next to the JSON file)")
    parser.add_argument("--home", help="trex home folder (default: $TREX_HOME or ~/.trex)")
    return parser


def _resolve_tree(store: Any, key: str) -> str:
    from tree_store import NotFoundError

    try:
        return str(store.get_tree(key).id)
    except NotFoundError:
        pass
    trees = store.list_trees()
    matches = [t for t in trees if t.name == key] or ([t for t in trees if t.id.startswith(key)]
                                                       if len(key) >= 4 else [])
    if len(matches) == 1:
        return str(matches[0].id)
    if matches:
        listed = ", ".join(f"{t.id} ({t.name})" for t in matches[:5])
        raise ReportError(f"{key!r} matches {len(matches)} trees: {listed}", field="tree",
                          hint="pass the full tree id")
    known = ", ".join(f"{t.id} ({t.name})" for t in trees[-5:]) or "none"
    raise ReportError(f"no tree {key!r} in the store; newest trees: {known}", field="tree",
                      hint="check the id, or pass --home for another store")


def _from_file(path: Path, output: str | os.PathLike[str] | None) -> Path:
    from trex_mcp.report.html import render_report, write_text_atomic

    try:
        export = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {path} as JSON: {exc}", field="tree",
                          hint="pass an exported tree (.json) or a tree id") from exc
    target = Path(output) if output else path.with_suffix(".html")
    return write_text_atomic(target, render_report(export))


def _from_store(key: str, output: str | os.PathLike[str] | None, settings: Settings) -> Path:
    from tree_store import TreeStoreError, open_store
    from trex_mcp.report.html import write_report

    if not settings.store_path.is_file():
        raise ReportError(f"no tree store at {settings.store_path} and no file named {key!r}", field="tree",
                          hint="pass --home (or set TREX_HOME) to the trex home of the search, "
                               "or the path of an exported tree JSON file")
    try:
        store = open_store(settings.store_path)
    except TreeStoreError as exc:
        raise ReportError(f"cannot open the tree store {settings.store_path}: {exc}") from exc
    try:
        tree_id = _resolve_tree(store, key)
        target = Path(output) if output else settings.reports_dir / f"{tree_id}.html"
        return write_report(store, tree_id, target)
    finally:
        store.close()


def report_command(tree: str, *, output: str | os.PathLike[str] | None = None,
                   settings: Settings | None = None) -> int:
    """Write the report of ``tree`` (a tree id, id prefix or name in the store of ``settings.home``, or the
    path of an exported tree JSON file) and print the path written. Returns 0.

    Raises ReportError with what was wrong and what to pass instead.
    """
    path = Path(tree).expanduser()
    if path.is_file():
        written = _from_file(path, output)
    else:
        from trex_mcp.settings import Settings

        written = _from_store(tree, output, settings or Settings())
    print(written)
    return 0


def report_main(argv: list[str] | None = None) -> int:
    """Run `trex-mcp report` from command-line arguments. Returns the exit code: 0 written, 2 an input error."""
    from trex_mcp.settings import Settings

    args = build_parser().parse_args(argv)
    try:
        return report_command(args.tree, output=args.output,
                              settings=Settings(home=Path(args.home)) if args.home else None)
    except ReportError as exc:
        print(f"trex-mcp report: error: {exc}", file=sys.stderr)
        return 2
