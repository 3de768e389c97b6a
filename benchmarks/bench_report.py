"""Benchmark the HTML report: build time in Python, file size, and render time in a real browser.

    python benchmarks/bench_report.py [--sizes 50,200,500] [--loads 3] [--keep DIR]

For each tree size, a synthetic search tree (3-5 runs per round, failures with log tails, diagnoses,
insights) is written through the in-memory tree store and exported. Measured:

- build: ``render_report(export)`` wall time in Python (the first call of the process also pays for
  importing plotly; it is shown apart);
- size: bytes of the HTML file;
- render: ``performance.now()`` when the page says it is drawn (tree, curves, runs table, details panel), in
  headless Chromium, counted from navigation start; the median of ``--loads`` fresh page loads. "plotly
  ready" is when plotly.js has loaded and the page's script starts.

Targets (issue 11): a 500-node tree renders in under 2 s and the file stays under 5 MB. The machine's load
average is printed because other work on the machine slows the browser down.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tree_store import InMemoryTreeStore  # noqa: E402
from trex_mcp.report.headless import Chromium, find_chromium  # noqa: E402
from trex_mcp.report.html import plotly_bundle, render_report  # noqa: E402
from trex_mcp.report.synthetic import build_synthetic_tree  # noqa: E402

MAX_RENDER_MS = 2000.0
MAX_BYTES = 5_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200,500", help="tree sizes (nodes), comma-separated")
    parser.add_argument("--loads", type=int, default=3, help="browser page loads per size (median reported)")
    parser.add_argument("--keep", help="folder to keep the HTML files and a screenshot of the largest in")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="trex-bench-report-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    warm = InMemoryTreeStore()
    render_report(warm.export_tree(build_synthetic_tree(warm, nodes=3)))
    first_call_s = time.perf_counter() - t

    rows: list[dict[str, Any]] = []
    for n in sizes:
        store = InMemoryTreeStore()
        tree_id = build_synthetic_tree(store, nodes=n)
        export = store.export_tree(tree_id)
        runs = len(export["runs"])
        builds = []
        for _ in range(3):
            t = time.perf_counter()
            html = render_report(export)
            builds.append(time.perf_counter() - t)
        path = out_dir / f"report-{n}.html"
        path.write_text(html, encoding="utf-8")
        rows.append({"nodes": n, "runs": runs, "build_s": statistics.median(builds),
                     "bytes": path.stat().st_size, "path": path})

    binary = find_chromium()
    if binary:
        with Chromium(binary, timeout_s=120, width=1400, height=1000) as browser:
            for row in rows:
                renders, plotly_ready = [], []
                for _ in range(args.loads):
                    browser.open(row["path"].as_uri())
                    ms, timings = browser.evaluate("trexReport.ready.then(() => [trexReport.renderMs, "
                                                   "trexReport.timings])", await_promise=True, timeout_s=120)
                    renders.append(float(ms))
                    plotly_ready.append(float(timings["start"]))
                row["render_ms"] = statistics.median(renders)
                row["plotly_ms"] = statistics.median(plotly_ready)
                row["errors"] = len(browser.errors)
            browser.screenshot(out_dir / f"report-{rows[-1]['nodes']}.png")

    print(f"plotly.js: {plotly_bundle()[1]}; first render_report call of the process (imports plotly): "
          f"{first_call_s:.2f} s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"browser: {binary or 'none found (apt-get install -y chromium): render times skipped'}")
    print()
    header = f"{'nodes':>6} {'runs':>6} {'build (s)':>10} {'size (MB)':>10} {'plotly ready (ms)':>18} " \
             f"{'render (ms)':>12} {'JS errors':>10}  verdict"
    print(header)
    print("-" * len(header))
    ok = True
    for row in rows:
        render = row.get("render_ms")
        good = row["bytes"] < MAX_BYTES and (render is None or render < MAX_RENDER_MS)
        if row["nodes"] >= 500:
            ok = ok and good
        print(f"{row['nodes']:>6} {row['runs']:>6} {row['build_s']:>10.2f} {row['bytes'] / 1e6:>10.2f} "
              f"{row.get('plotly_ms', float('nan')):>18.0f} {render if render is not None else float('nan'):>12.0f} "
              f"{row.get('errors', '-'):>10}  {'ok' if good else 'OVER TARGET'}")
    print()
    print(f"targets: render < {MAX_RENDER_MS:.0f} ms and size < {MAX_BYTES / 1e6:.0f} MB at 500 nodes"
          + (f"; files in {out_dir}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
