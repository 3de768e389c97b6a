"""One self-contained HTML file per search tree: no network is needed to open it.

The page embeds plotly.js once, inline (see ``plotly_bundle``), and the report data as gzip + base64, which
the page inflates with the browser's DecompressionStream: a 500-node tree with every run's details stays
far under 5 MB. The summary, task spec and budget are plain HTML, so they read even where
scripts are off. ``render_report`` is pure and deterministic: the same export
gives the same bytes (no clock is read). ``write_report`` writes atomically (temporary file + os.replace).

Not covered: browsers without DecompressionStream (before Chrome 80, Firefox 113, Safari 16.4) show the
static parts and a message instead of the plots.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import os
from collections.abc import Mapping
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from tree_store.records import is_valid_score
from trex_mcp.report.errors import ReportError
from trex_mcp.report.page import page_payload
from trex_mcp.report.view import (
    TreeData,
    best_node,
    compute_seconds,
    final_result,
    normalised_gain,
    parse_export,
    rounds_used,
    state_counts,
)

__all__ = ["plotly_bundle", "render_report", "write_report", "write_text_atomic"]


@cache
def _asset(name: str) -> str:
    return resources.files("trex_mcp.report").joinpath(name).read_text(encoding="utf-8")


def _pack(raw: bytes) -> str:
    """gzip + base64; mtime 0 so the same input always gives the same text."""
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


VENDORED_PLOTLY = "vendor/plotly-basic.min.js"


@cache
def plotly_bundle() -> tuple[str, str]:
    """The plotly.js the page embeds, and its name.

    The vendored basic bundle (scatter, bar, pie: all this report draws; plotly.js 4.1.1, MIT, from npm's
    plotly.js-basic-dist-min) starts five to ten times faster than the full 4.8 MB bundle of the plotly
    package, which is what keeps a 500-node report under 2 s to draw. Without the vendored file, the full
    bundle is used.
    """
    vendored = resources.files("trex_mcp.report").joinpath(VENDORED_PLOTLY)
    if vendored.is_file():
        return vendored.read_text(encoding="utf-8"), "plotly.js basic 4.1.1 (vendored)"
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    return str(get_plotlyjs()), f"plotly.js {get_plotlyjs_version()} (full bundle of the plotly package)"


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float) or not is_valid_score(float(x)):
        return "–"
    return f"{x:.{digits}g}"


def _pct(g: float | None) -> str:
    return "–" if g is None or not is_valid_score(g) else f"{g * 100:.1f}%"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m:02d}m" if hours else f"{m}m {s:02d}s"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _card(label: str, value: str, sub: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="card-label">{escape(label)}</div>'
            f'<div class="card-value">{escape(value)}</div><div class="card-sub">{escape(sub)}</div></div>')


def _counts(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{v} {k.lower()}" for k, v in counts.items()) or "none yet"


def _budget(data: TreeData) -> dict[str, Any]:
    budget = data.tree.budget or data.tree.task_snapshot.get("budgets") or {}
    return dict(budget) if isinstance(budget, Mapping) else {}


def _summary(data: TreeData, test_result: Mapping[str, Any] | None) -> str:
    tree, metric = data.tree, data.metric
    best = best_node(data, test_result)
    base, ref = tree.base_score, tree.reference_score
    cards = []
    if best is not None:
        gain = normalised_gain(best.score, base, ref)
        sub = f"node #{best.number} · {best.strategy_kind or 'node'}" + (f" · G {_pct(gain)}" if gain is not None else "")
        cards.append(_card(f"best validation {metric}", _fmt(best.score), sub, "best"))
    else:
        cards.append(_card(f"best validation {metric}", "–", "no completed round yet", "best"))
    final = final_result(data, test_result)
    if final:
        score = final.get("test_score")
        gain = final.get("normalised_gain")
        if not isinstance(gain, int | float) or isinstance(gain, bool):
            gain = normalised_gain(score if isinstance(score, int | float) else None, base, ref)
        parts = [f"normalised gain G {_pct(gain)}"]
        if isinstance(final.get("base_test_score"), int | float):
            parts.append(f"base {_fmt(final['base_test_score'])}")
        if isinstance(final.get("n_test"), int):
            parts.append(f"{final['n_test']} examples")
        cards.append(_card(f"test {metric}", _fmt(score), " · ".join(parts), "test"))
    else:
        cards.append(_card(f"test {metric}", "–", "not evaluated on the test split yet", "test"))
    snap = tree.task_snapshot
    cards.append(_card("base → reference", f"{_fmt(base)} → {_fmt(ref)}",
                       f"{snap.get('base_model', '?')} → {snap.get('reference_model') or 'no reference'}"))
    max_rounds = _budget(data).get("max_rounds")
    used = rounds_used(data)
    cards.append(_card("rounds", f"{used} / {max_rounds}" if max_rounds else str(used), _counts(state_counts(data.nodes))))
    cards.append(_card("runs", str(len(data.runs)), _counts(state_counts(data.runs))))
    total = sum(compute_seconds(r.cost) or 0.0 for r in data.runs)
    cards.append(_card("compute", _duration(total), "device time, all runs"))
    return "\n".join(cards)


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)


def _task_section(data: TreeData) -> str:
    snap = data.tree.task_snapshot
    ev = snap.get("evaluation") if isinstance(snap.get("evaluation"), Mapping) else {}
    pairs = [("task", data.tree.task_name)]
    for key in ("version", "domain", "description", "base_model", "reference_model", "input_field",
                "target_field", "prompt_template"):
        if snap.get(key) not in (None, ""):
            pairs.append((key.replace("_", " "), str(snap[key])))
    if ev:
        pairs.append(("evaluation", " · ".join(f"{k} {v}" for k, v in ev.items() if k in ("kind", "metric", "max_new_tokens"))))
    pairs.append(("direction", "higher is better" if data.tree.higher_is_better else "lower is better"))
    raw = escape(json.dumps(snap, indent=2, sort_keys=True, default=str))
    return (f'<table class="kv">{_rows(pairs)}</table>'
            f"<details><summary>full task spec (JSON)</summary><pre>{raw}</pre></details>")


def _max_rows(data: TreeData) -> int | None:
    found = []
    for run in data.runs:
        for source in (run.artifacts, run.metrics, run.cost):
            for key in ("rows", "train_rows", "samples", "train_samples"):
                value = source.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    found.append(value)
                    break
    return max(found) if found else None


def _budget_section(data: TreeData) -> str:
    budget = _budget(data)
    total = sum(compute_seconds(r.cost) or 0.0 for r in data.runs)
    per_node = max((len(v) for v in data.runs_by_node.values()), default=0)
    tree = data.tree
    llm_tokens = tree.meta.get("llm_tokens")
    used: dict[str, str] = {  # keys of trex_mcp.budget.TreeBudget
        "max_rounds": f"{rounds_used(data)} rounds",
        "runs_per_round": f"at most {per_node} runs in one round",
        "max_device_hours": f"{total / 3600:.3g} device hours",
        "max_wall_s": f"{_duration(max(0.0, tree.updated_at - tree.created_at))} since the tree was created",
        "max_llm_tokens": f"{llm_tokens} LLM tokens" if isinstance(llm_tokens, int) else "–",
    }
    rows = _max_rows(data)
    if rows is not None:
        used["max_samples_per_round"] = f"largest dataset {rows} rows"
    body = "\n".join(f"<tr><th>{escape(str(k))}</th><td>{escape('no limit' if v is None else str(v))}</td>"
                     f"<td>{escape(used.get(k, '–'))}</td></tr>" for k, v in budget.items())
    body += f"\n<tr><th>compute</th><td>–</td><td>{escape(_duration(total))} over {len(data.runs)} runs</td></tr>"
    return f'<table class="kv budget"><tr><th></th><th>budget</th><th>used</th></tr>{body}</table>'


def _encode(payload: dict[str, Any]) -> str:
    return _pack(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def render_report(export: Mapping[str, Any], *, test_result: Mapping[str, Any] | None = None) -> str:
    """The HTML report of one tree export (``TreeStore.export_tree`` output) as a string.

    ``test_result`` ({"test_score", "normalised_gain", "best_node_id", "split"}) overrides the tree's
    ``meta["final"]``. Raises ReportError when ``export`` is not a readable trex-tree export.
    """
    data = parse_export(export)
    tree = data.tree
    payload = page_payload(data, test_result=test_result)
    status = tree.status
    return Template(_asset("template.html")).substitute(
        title=escape(f"{tree.name} · trex report"),
        tree_name=escape(tree.name),
        task_name=escape(tree.task_name),
        status=escape(status),
        metric=escape(data.metric),
        direction="↑ higher is better" if tree.higher_is_better else "↓ lower is better",
        tree_id=escape(tree.id),
        as_of=escape(_when(tree.updated_at)),
        summary=_summary(data, test_result),
        task=_task_section(data),
        budget=_budget_section(data),
        css=_asset("report.css"),
        plotly_js=plotly_bundle()[0],
        report_js=_asset("report.js"),
        payload=_encode(payload),
    )


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see `trex_mcp.atomic`): a reader sees the old file or the whole
    new one, never a part. Creates missing parent folders and returns the absolute path. Raises ReportError
    when the path cannot be written."""
    from trex_mcp.atomic import atomic_write_text

    target = Path(path).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    except OSError as exc:
        raise ReportError(f"cannot write the report to {target}: {exc.strerror or exc}", field="path",
                          hint="choose a writable file path (-o)") from exc
    return target


def write_report(store: Any, tree_id: str, path: str | os.PathLike[str], *,
                 test_result: Mapping[str, Any] | None = None) -> Path:
    """Export ``tree_id`` from ``store`` (any ``tree_store.TreeStore``), render it and write the HTML to
    ``path`` atomically. Returns the absolute path written.

    Raises ReportError (unreadable tree, unwritable path) and the store's NotFoundError for an unknown tree.
    """
    return write_text_atomic(path, render_report(store.export_tree(tree_id), test_result=test_result))
