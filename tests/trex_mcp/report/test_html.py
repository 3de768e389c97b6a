from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tree_store import InMemoryTreeStore, NotFoundError, State
from trex_mcp.report import ReportError, render_report, report_main, write_report
from trex_mcp.report.html import plotly_bundle
from trex_mcp.settings import Settings

MARKUP = '</script><img src=x onerror="window.__pwned=1">'


def _payload(html: str) -> dict[str, Any]:
    m = re.search(r'<script id="trex-payload" type="application/octet-stream" data-encoding="gzip\+base64">'
                  r"([A-Za-z0-9+/=]+)</script>", html)
    assert m, "payload block missing"
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(m.group(1))))
    return data


def test_report_is_one_self_contained_file_with_plotly_inline_once(small_tree: Any) -> None:
    html = render_report(small_tree.store.export_tree(small_tree.tree_id))
    assert html.startswith("<!DOCTYPE html>")
    assert html.count(plotly_bundle()[0]) == 1
    # nothing is fetched: no external scripts, stylesheets, images or frames
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=", html, re.I)
    assert _payload(html)["tree"]["name"] == "sentiment search"


def test_render_report_is_deterministic(small_tree: Any) -> None:
    export = small_tree.store.export_tree(small_tree.tree_id)
    assert render_report(export) == render_report(export)


def test_summary_shows_best_validation_test_result_gain_and_budget_used(small_tree: Any) -> None:
    html = render_report(small_tree.store.export_tree(small_tree.tree_id))
    assert "best validation accuracy" in html and "node #3" in html
    assert "test accuracy" in html and "normalised gain G 75.0% · base 0.52 · 200 examples" in html
    assert "7 / 20" in html  # rounds used / budget
    assert "mini/sentiment" in html and "tiny:2m" in html


def test_test_result_argument_overrides_the_tree_meta(small_tree: Any) -> None:
    html = render_report(small_tree.store.export_tree(small_tree.tree_id),
                         test_result={"test_score": 0.7, "split": "test"})
    assert "normalised gain G 50.0%" in html  # computed from base 0.5 and reference 0.9


def test_report_without_a_final_result_says_the_test_split_was_not_run(build_tree: Callable[..., Any]) -> None:
    tree = build_tree(InMemoryTreeStore(), final=False)
    html = render_report(tree.store.export_tree(tree.tree_id))
    assert "not evaluated on the test split yet" in html


def test_text_from_the_tree_never_becomes_markup(small_tree: Any) -> None:
    small_tree.store.update_tree(small_tree.tree_id, name=f"evil {MARKUP}")
    html = render_report(small_tree.store.export_tree(small_tree.tree_id))
    assert MARKUP not in html  # escaped in the static parts, packed in the payload
    assert "evil &lt;/script&gt;" in html
    plan = _payload(html)["nodes"]["2"]["plan"]["direction"]
    assert MARKUP in plan  # kept verbatim as data; the page writes it with textContent


@pytest.mark.parametrize("shape", ["empty", "root_only", "no_scores"])
def test_report_renders_trees_with_nothing_to_plot_yet(shape: str) -> None:
    store = InMemoryTreeStore()
    tree = store.create_tree("t", task_name="x", higher_is_better=True)
    if shape != "empty":
        root = store.add_node(tree.id, None)
        if shape == "no_scores":
            child = store.add_node(tree.id, root.id)
            store.finish_node(child.id, State.FAIL)
    payload = _payload(render_report(store.export_tree(tree.id)))
    assert payload["best"] is None
    assert len(payload["nodes"]) == {"empty": 0, "root_only": 1, "no_scores": 2}[shape]


def test_report_carries_nan_scores_as_text_not_invalid_json() -> None:
    store = InMemoryTreeStore()
    tree = store.create_tree("t", task_name="x", higher_is_better=True, base_score=float("nan"))
    root = store.add_node(tree.id, None)
    run = store.add_run(root.id)
    store.record_run_metrics(run.id, {"loss": float("inf")})
    payload = _payload(render_report(store.export_tree(tree.id)))
    assert payload["tree"]["base_score"] == "NaN"
    assert payload["runs"][0]["metrics"]["loss"] == "Infinity"


def test_write_report_writes_atomically_into_new_folders(small_tree: Any, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    written = write_report(small_tree.store, small_tree.tree_id, target)
    assert written == target.resolve()
    assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary file left behind


def test_write_report_names_an_unwritable_path(small_tree: Any, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot write the report"):
        write_report(small_tree.store, small_tree.tree_id, tmp_path)  # a folder, not a file
    with pytest.raises(NotFoundError):
        write_report(small_tree.store, "no-such-tree", tmp_path / "r.html")


def test_cli_reports_a_tree_of_the_store_under_home(sqlite_tree: tuple[Path, Any],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    home, tree = sqlite_tree
    assert report_main([tree.tree_id[:8], "--home", str(home)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == Settings(home=home).reports_dir / f"{tree.tree_id}.html"
    assert "sentiment search" in written.read_text(encoding="utf-8")


def test_cli_reports_an_exported_json_file(small_tree: Any, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "tree.json"
    export.write_text(json.dumps(small_tree.store.export_tree(small_tree.tree_id)), encoding="utf-8")
    assert report_main([str(export), "-o", str(tmp_path / "out.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out.html")
    assert report_main([str(export)]) == 0
    assert (tmp_path / "tree.html").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no tree store at"),
    (["zzzzzzzz"], "no tree 'zzzzzzzz' in the store"),
])
def test_cli_explains_what_to_pass_when_the_tree_is_not_found(sqlite_tree: tuple[Path, Any], args: list[str],
                                                              message: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    home, _ = sqlite_tree
    home_arg = str(tmp_path / "elsewhere") if message.startswith("no tree store") else str(home)
    assert report_main([*args, "--home", home_arg]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "elsewhere").exists()  # a wrong --home creates nothing


def test_cli_refuses_a_json_file_that_is_not_an_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert report_main([str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad.write_text('{"format": "csv"}', encoding="utf-8")
    assert report_main([str(bad)]) == 2
    assert "not a trex-tree export" in capsys.readouterr().err


def test_importing_the_report_package_does_not_import_plotly() -> None:
    code = "import sys, trex_mcp.report, trex_mcp.report.cli; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_the_vendored_plotly_bundle_matches_the_plotly_major_version() -> None:
    from plotly.offline import get_plotlyjs_version

    text, name = plotly_bundle()
    assert "vendored" in name, "trex_mcp/report/vendor/plotly-basic.min.js is missing"
    m = re.search(r"plotly\.js \(basic - minified\) v(\d+)\.", text[:300])
    assert m and m.group(1) == get_plotlyjs_version().split(".")[0], (
        "the plotly package now targets another plotly.js major version; update the vendored bundle")


def test_a_500_node_report_with_every_run_detail_stays_under_5_mb() -> None:
    from trex_mcp.report.synthetic import build_synthetic_tree

    store = InMemoryTreeStore()
    tree_id = build_synthetic_tree(store, nodes=500)
    export = store.export_tree(tree_id)
    assert len(export["runs"]) > 1500
    html = render_report(export)
    assert len(html.encode("utf-8")) < 5_000_000
    payload = _payload(html)
    assert len(payload["nodes"]) == 500 and len(payload["runs"]) == len(export["runs"])
