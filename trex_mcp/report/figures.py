"""The report's plotly figures: the search tree and the best-so-far score curves.

Figures are built with plotly's Python API and handed to the page as JSON; the page draws them with the
plotly.js bundle it embeds. plotly is imported inside the functions (the server must start fast).

Every clickable point carries its node number as ``customdata``; the page's click handler reads it. The trace
named "nodes" and the tree layout's ``meta.ring_px`` (radius of the selection ring) are part of that contract.
"""

from __future__ import annotations

import html
import json
from typing import Any

from tree_store.records import Node, State, is_valid_score
from trex_mcp.report.layout import Position, tidy_layout
from trex_mcp.report.view import TreeData, score_curves, short_float

__all__ = ["STATE_STYLE", "curves_figure", "figure_json", "node_positions", "tree_figure"]

# state -> (marker symbol, colour used when the node has no score, legend label)
STATE_STYLE: dict[str, tuple[str, str, str]] = {
    State.COMPLETE.value: ("circle", "#3b8bba", "complete (fill = score)"),
    State.RUNNING.value: ("diamond", "#f58518", "running"),
    State.WAITING.value: ("circle-open", "#8c96a3", "waiting"),
    State.FAIL.value: ("x", "#d62728", "failed"),
    State.PRUNED.value: ("square", "#b5aca6", "pruned"),
}
BEST_COLOUR = "#e0a100"
PIN_COLOUR = "#1f5fbf"
VETO_COLOUR = "#8b0000"
COLOURSCALE = "Viridis"


def node_positions(data: TreeData) -> dict[str, Position[str]]:
    """Tidy-tree positions of every node (children in number order)."""
    return tidy_layout((n.id, n.parent_id) for n in data.nodes)


def _marker_size(count: int, x_span: float) -> int:
    """Marker diameter in px: big enough to click, small enough that neighbours (1 x-unit apart) do not
    overlap on a plot about 760 px wide; people zoom into big trees."""
    by_count = 24 if count <= 40 else 16 if count <= 150 else 12
    fits = int(0.85 * 760 / (x_span + 1))
    return max(7, min(by_count, fits))


def _plan_line(node: Node, limit: int = 90) -> str:
    plan = node.plan or {}
    for key in ("direction", "hypothesis", "title", "summary", "text"):
        value = plan.get(key)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""


def _fmt(x: float | None) -> str:
    return "–" if not is_valid_score(x) else f"{x:.4g}"


def _text_colour(rgb: str) -> str:
    """Dark text on light fills, white on dark ones (rgb is 'rgb(r, g, b)' or '#rrggbb')."""
    if rgb.startswith("#"):
        r, g, b = (float(int(rgb[i : i + 2], 16)) for i in (1, 3, 5))
    else:
        r, g, b = (float(v) for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def tree_figure(data: TreeData, *, best_path_ids: list[str], best_id: str | None) -> Any:
    """The search tree as a plotly Figure: nodes coloured by score (fill) and state (symbol), the best path
    in gold, pinned nodes with a blue pin above, vetoed nodes crossed out. Root at the top."""
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    pos = node_positions(data)
    nodes = data.nodes
    number = {n.id: n.number for n in nodes}
    hib = data.tree.higher_is_better
    size = _marker_size(len(nodes), max((p.x for p in pos.values()), default=0.0))
    by_score = {n.id: float(n.score) for n in nodes if n.score is not None and is_valid_score(n.score)}
    scores = list(by_score.values())
    lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)

    # one call for all nodes: resolving a named colour scale is slow in plotly
    def position(score: float) -> float:
        t = 0.5 if hi == lo else (score - lo) / (hi - lo)
        return t if hib else 1 - t

    scored_ids = list(by_score)
    colours = sample_colorscale(COLOURSCALE, [position(by_score[i]) for i in scored_ids]) if scored_ids else []
    score_fill = dict(zip(scored_ids, colours, strict=True))

    fig = go.Figure()
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for n in nodes:
        if n.parent_id in pos:
            p, c = pos[n.parent_id], pos[n.id]
            edge_x += [p.x, c.x, None]
            edge_y += [p.depth, c.depth, None]
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", name="edges", hoverinfo="skip",
                             showlegend=False, line={"color": "#c3c9d1", "width": 1.2}))
    path_x = [pos[i].x for i in best_path_ids]
    path_y = [pos[i].depth for i in best_path_ids]
    fig.add_trace(go.Scatter(x=path_x, y=path_y, mode="lines", name="best path", hoverinfo="skip",
                             line={"color": BEST_COLOUR, "width": 6}, opacity=0.75))

    fills, symbols, lines, hover, labels, label_colours = [], [], [], [], [], []
    runs_by_node = data.runs_by_node
    for n in nodes:
        symbol, state_colour, _ = STATE_STYLE[n.state.value]
        fill = str(score_fill[n.id]) if n.id in score_fill else state_colour
        fills.append(fill)
        symbols.append(symbol)
        lines.append("#d62728" if n.state is State.FAIL else "#2b2b2b")
        labels.append(str(n.number))
        label_colours.append(_text_colour(fill) if not symbol.endswith("open") else "#333")
        runs = runs_by_node.get(n.id, [])
        failed = sum(1 for r in runs if r.state is State.FAIL)
        flags = [f for f, on in (("best", n.id == best_id), ("pinned", n.pinned), ("vetoed", n.vetoed)) if on]
        tip = [f"<b>#{n.number}</b> {html.escape(n.strategy_kind or 'node')} · {n.state.value.lower()}"
               + (f" · {', '.join(flags)}" if flags else ""),
               f"{html.escape(data.metric)} {_fmt(n.score)} · reward {_fmt(n.reward)} · visits {n.visits}",
               f"runs {len(runs)}" + (f" ({failed} failed)" if failed else "")]
        if n.failure is not None:
            tip.append(f"failure: {n.failure.kind.value}")
        if line := _plan_line(n):
            tip.append(html.escape(line))
        hover.append("<br>".join(tip))
    show_labels = size >= 16
    fig.add_trace(go.Scatter(
        x=[pos[n.id].x for n in nodes], y=[pos[n.id].depth for n in nodes], name="nodes",
        mode="markers+text" if show_labels else "markers", showlegend=False,
        customdata=[n.number for n in nodes], hovertext=hover, hoverinfo="text",
        text=labels if show_labels else None, textposition="middle center",
        textfont={"size": 9 if size < 24 else 10, "color": label_colours},
        marker={"size": size, "color": fills, "symbol": symbols, "line": {"width": 1.2, "color": lines}},
    ))

    # open symbols are stroked with marker.color, so overlays set it along with the line colour
    def overlay(name: str, ids: list[str], dy: float, marker: dict[str, Any]) -> None:
        fig.add_trace(go.Scatter(x=[pos[i].x for i in ids], y=[pos[i].depth + dy for i in ids], name=name,
                                 mode="markers", hoverinfo="skip", marker=marker,
                                 customdata=[number[i] for i in ids]))

    overlay("pinned", [n.id for n in nodes if n.pinned], -0.32,
            {"symbol": "triangle-down", "size": max(9, size // 2), "color": PIN_COLOUR})
    overlay("vetoed", [n.id for n in nodes if n.vetoed], 0.0,
            {"symbol": "x-thin-open", "size": size * 1.5, "color": VETO_COLOUR, "line": {"width": 3, "color": VETO_COLOUR}})
    overlay("best", [best_id] if best_id else [], 0.0,
            {"symbol": "circle-open", "size": size + 12, "color": BEST_COLOUR, "line": {"width": 3, "color": BEST_COLOUR}})
    for state, (symbol, colour, label) in STATE_STYLE.items():
        if any(n.state.value == state for n in nodes):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, hoverinfo="skip",
                                     marker={"symbol": symbol, "size": 11, "color": colour,
                                             "line": {"width": 1, "color": "#2b2b2b"}}))
    if scores:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, name="score scale",
            marker={"colorscale": COLOURSCALE, "reversescale": not hib, "cmin": lo, "cmax": hi, "color": [lo],
                    "showscale": True,
                    "colorbar": {"title": {"text": data.metric}, "thickness": 12, "len": 0.7, "x": 1.0}}))

    depth = max((p.depth for p in pos.values()), default=0)
    xs = [p.x for p in pos.values()] or [0.0]
    fig.update_layout(
        template="plotly_white", height=int(min(1400, max(380, 150 + 95 * (depth + 1)))),
        margin={"l": 50, "r": 10, "t": 30, "b": 10}, hovermode="closest", clickmode="event", dragmode="pan",
        legend={"orientation": "h", "yanchor": "top", "y": -0.01, "x": 0.0},
        xaxis={"visible": False, "range": [min(xs) - 0.8, max(xs) + 0.8]},
        yaxis={"title": {"text": "depth"}, "dtick": 1, "zeroline": False, "range": [depth + 0.6, -0.6]},
        uirevision="tree",
        # the page rings the selected node with a layout shape of this radius (moving a shape is cheap;
        # restyling a trace redraws all 500 nodes)
        meta={"ring_px": size // 2 + 9},
    )
    return fig


def _compute_unit(total_s: float) -> tuple[str, float]:
    if total_s >= 2 * 3600:
        return "device hours", 3600.0
    if total_s >= 120:
        return "device minutes", 60.0
    return "device seconds", 1.0


def curves_figure(data: TreeData) -> Any:
    """Best-so-far validation score against rounds (left) and cumulative compute (right), with the base and
    reference scores as dashed lines when known."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    curves = score_curves(data)
    rounds, vetoed, compute = curves["rounds"], curves["vetoed"], curves["compute"]
    unit, scale = _compute_unit(curves["total_compute_s"])
    metric = data.metric
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09,
                        subplot_titles=("best-so-far vs round", f"best-so-far vs compute ({unit})"))
    number = {n.id: n.number for n in data.nodes}
    fig.add_trace(go.Scatter(x=rounds["x"], y=[short_float(v) for v in rounds["score"]], mode="markers", name="round score",
                             customdata=[number[i] for i in rounds["node"]], marker={"color": "#9aa5b1", "size": 7},
                             hovertemplate="round #%{x}<br>" + metric + " %{y:.4g}<extra></extra>"), 1, 1)
    if vetoed["x"]:
        fig.add_trace(go.Scatter(x=vetoed["x"], y=vetoed["score"], mode="markers", name="vetoed",
                                 customdata=[number[i] for i in vetoed["node"]],
                                 marker={"color": VETO_COLOUR, "symbol": "x", "size": 8},
                                 hovertemplate="vetoed #%{x}<br>%{y:.4g}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=rounds["x"], y=[short_float(v) for v in rounds["best"]], mode="lines", name="best so far",
                             line={"color": BEST_COLOUR, "width": 3, "shape": "hv"}, hoverinfo="skip",
                             legendgroup="best"), 1, 1)
    points = curves["compute_points"]
    fig.add_trace(go.Scatter(
        x=[short_float(x / scale) for x in points["x"]], y=[short_float(v) for v in points["score"]],
        mode="markers", name="round score", showlegend=False, customdata=[number[i] for i in points["node"]],
        marker={"color": "#9aa5b1", "size": 7},
        hovertemplate="round #%{customdata}<br>" + metric + " %{y:.4g}<br>%{x:.3g} " + unit + "<extra></extra>"),
        1, 2)
    with_best = [i for i, b in enumerate(compute["best"]) if b is not None]
    fig.add_trace(go.Scatter(x=[short_float(compute["x"][i] / scale) for i in with_best],
                             y=[short_float(compute["best"][i]) for i in with_best],
                             mode="lines", name="best so far", showlegend=False, legendgroup="best",
                             line={"color": BEST_COLOUR, "width": 3, "shape": "hv"}, hoverinfo="skip"), 1, 2)
    for value, label, colour in ((data.tree.base_score, "base", "#7f7f7f"),
                                 (data.tree.reference_score, "reference", "#2ca02c")):
        if is_valid_score(value):
            fig.add_hline(y=value, line={"dash": "dash", "color": colour, "width": 1.5}, row="all", col="all",
                          annotation_text=label, annotation_position="bottom right",
                          annotation_font={"color": colour, "size": 11})
    if not rounds["x"]:
        fig.add_annotation(text="no scored rounds yet", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font={"size": 14, "color": "#7f7f7f"})
    fig.update_layout(template="plotly_white", height=360, margin={"l": 55, "r": 15, "t": 40, "b": 45},
                      hovermode="closest", clickmode="event",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0.0})
    fig.update_xaxes(title_text="round (node number)", row=1, col=1, rangemode="tozero")
    fig.update_xaxes(title_text=unit, row=1, col=2, rangemode="tozero")
    fig.update_yaxes(title_text=metric, row=1, col=1)
    return fig


def figure_json(fig: Any) -> dict[str, Any]:
    """A figure as plain JSON data ({"data": [...], "layout": {...}}) for Plotly.newPlot."""
    result: dict[str, Any] = json.loads(fig.to_json())
    return result
