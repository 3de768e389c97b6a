"""The report in a real browser: headless Chromium opens it offline, nodes render, a click shows details.

Chromium comes from Debian's packages. When it is missing, the first test installs it (as root, with
apt-get; set TREX_NO_BROWSER_INSTALL=1 to forbid that) or skips with the reason. The browser is driven over
the DevTools pipe (trex_mcp.report.headless), so no socket is opened at all. A screenshot is kept under
artifacts/report/ (or $TREX_ARTIFACTS_DIR) for people to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tree_store import InMemoryTreeStore
from trex_mcp.report import write_report
from trex_mcp.report.headless import BrowserError, Chromium, find_chromium

pytestmark = pytest.mark.timeout(900)  # whichever test comes first may install Chromium

ARTIFACTS = Path(os.environ.get("TREX_ARTIFACTS_DIR") or Path(__file__).resolve().parents[3] / "artifacts") / "report"
INSTALL = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])


def _install_chromium() -> str:
    """Install Chromium from Debian's packages; return '' on success, else why not."""
    if os.environ.get("TREX_NO_BROWSER_INSTALL"):
        return "TREX_NO_BROWSER_INSTALL is set"
    if not shutil.which("apt-get"):
        return "apt-get is not available (not a Debian-like system)"
    if os.geteuid() != 0:
        return "installing needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in INSTALL:
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` took over 600 s"
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    found = find_chromium()
    if found:
        return found
    why = _install_chromium()
    found = find_chromium()
    if not found:
        pytest.skip(f"headless Chromium is not installed and could not be installed: {why or 'not on PATH'}; "
                    "install it with: apt-get update && apt-get install -y chromium")
    return found


@pytest.fixture(scope="module")
def browser(chromium_binary: str) -> Iterator[Chromium]:
    """One browser for the module; each test opens the report in a fresh page."""
    b = Chromium(chromium_binary, timeout_s=60, width=1400, height=1000)
    try:
        b.start()
    except BrowserError as exc:  # pragma: no cover - depends on the machine
        b.close()
        pytest.skip(f"Chromium is installed but does not start here: {exc}")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def report(build_tree: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small tree's report, written once for the module."""
    tree = build_tree(InMemoryTreeStore())
    return write_report(tree.store, tree.tree_id, tmp_path_factory.mktemp("report") / "report.html")


def _open(browser: Chromium, report: Path) -> None:
    browser.open(report.as_uri())
    state = browser.evaluate("trexReport.ready.then(() => document.body.dataset.ready)", await_promise=True,
                             timeout_s=60)
    assert state == "1", browser.evaluate("document.getElementById('trex-error').textContent")


def _node_centre(browser: Chromium, number: int) -> tuple[float, float]:
    """Viewport centre of node `number`'s marker in the tree plot (scrolled into view first)."""
    rect = browser.evaluate(f"""(() => {{
        const gd = document.getElementById('trex-tree');
        const trace = gd.data.findIndex(t => t.name === 'nodes');
        const i = gd.data[trace].customdata.indexOf({number});
        const point = gd.querySelectorAll('.scatterlayer .trace')[trace].querySelectorAll('.point')[i];
        point.scrollIntoView({{block: 'center'}});
        const r = point.getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2];
    }})()""")
    return float(rect[0]), float(rect[1])


def test_report_opens_offline_renders_every_node_and_a_click_shows_its_details(browser: Chromium,
                                                                                report: Path) -> None:
    browser.errors.clear()
    _open(browser, report)
    assert browser.errors == []
    drawn = browser.evaluate("""(() => {
        const gd = document.getElementById('trex-tree');
        const trace = gd.data.findIndex(t => t.name === 'nodes');
        return gd.querySelectorAll('.scatterlayer .trace')[trace].querySelectorAll('.point').length;
    })()""")
    assert drawn == 8
    assert browser.evaluate("document.querySelectorAll('#trex-curves .scatterlayer .point').length") > 0
    assert browser.evaluate("document.querySelectorAll('#trex-runs tbody tr').length") == 12
    # the best node is shown first
    assert browser.evaluate("trexReport.selected") == 3

    x, y = _node_centre(browser, 1)
    browser.click(x, y)
    details = browser.evaluate("document.getElementById('trex-details').innerText")
    assert browser.evaluate("trexReport.selected") == 1
    assert "#1" in details and "refine data pipeline" in details and "pinned" in details
    assert "label noise hides the signal" in details  # plan
    assert "CUDA out of memory at batch size 64" in details and "Tried to allocate 2.00 GiB" in details  # log tail
    assert "task:clean + task:noisy → dedup → filter_length" in details  # recipe summary
    assert "noise removal fixed half the negation errors" in details  # diagnosis
    assert "Cleaning label noise helped" in details  # insight
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(ARTIFACTS / "report-small-tree.png")
    assert shot.stat().st_size > 10_000


def test_report_keeps_tree_text_as_text_and_the_runs_table_sorts_and_selects(browser: Chromium,
                                                                              report: Path) -> None:
    browser.errors.clear()
    _open(browser, report)
    x, y = _node_centre(browser, 2)
    browser.click(x, y)
    details = browser.evaluate("document.getElementById('trex-details').innerText")
    assert '</script><img src=x onerror="window.__pwned=1">' in details  # shown as text ...
    assert browser.evaluate("window.__pwned === undefined")  # ... never run
    assert "nan_loss" in details and "every run diverged" in details

    browser.evaluate("document.querySelector('#trex-runs th[data-key=score]').click()")
    scores = browser.evaluate("[...document.querySelectorAll('#trex-runs tbody tr')].map(r => r.children[4].textContent)")
    assert scores[:3] == ["0.86", "0.81", "0.79"] and scores[-1] == "–"  # best first, missing last
    browser.evaluate("document.querySelector('#trex-runs tbody tr:nth-child(2)').click()")
    assert browser.evaluate("trexReport.selected") == 3
    assert browser.evaluate("location.hash") == "#node-3"
    assert browser.errors == []
