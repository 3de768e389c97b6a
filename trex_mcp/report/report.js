/* trex report page: inflates the embedded data, draws the plotly figures, fills the details panel.
 *
 * Every piece of text from the tree (plans, logs, metrics) goes into the DOM through textContent, never
 * innerHTML, so a log line such as "<script>" stays text. `window.trexReport.ready` is a promise that
 * settles once everything is drawn; `window.trexReport.renderMs` is performance.now() at that moment.
 */
(function () {
  "use strict";
  var report = { data: null, selected: null, renderMs: null, ready: null, showNode: null, timings: {} };
  function mark(name) { report.timings[name] = Math.round(performance.now()); }
  window.trexReport = report;

  // ------------------------------------------------------------------ small helpers

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmtNum(v) {
    if (!isNum(v)) return v === null || v === undefined ? "–" : String(v);
    if (Number.isInteger(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function fmtPct(v) { return isNum(v) ? (v * 100).toFixed(1) + "%" : "–"; }

  function fmtDuration(s) {
    if (!isNum(s)) return "–";
    if (s < 120) return s.toFixed(1) + " s";
    var m = Math.round(s / 60), h = Math.floor(m / 60);
    return h ? h + "h " + String(m % 60).padStart(2, "0") + "m" : m + "m " + String(Math.round(s % 60)).padStart(2, "0") + "s";
  }

  function fmtTime(ts) {
    if (!isNum(ts)) return "–";
    return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function fmtCell(v, type) {
    if (v === null || v === undefined || v === "") return type === "str" ? "" : "–";
    if (type === "percent") return fmtPct(v);
    if (type === "duration") return fmtDuration(v);
    if (type === "state") return String(v).toLowerCase();
    return isNum(v) ? fmtNum(v) : String(v);
  }

  function nodeLink(num) {
    var node = report.data.nodes[num];
    var a = el("a", "node-link", node ? "#" + node.number : "?");
    a.addEventListener("click", function () { showNode(num, { scroll: true }); });
    return a;
  }

  // Generic renderer for plan / diagnosis / metrics: dicts as definition lists, lists as bullets,
  // multi-line text as <pre>.
  function renderValue(v, depth) {
    depth = depth || 0;
    if (v === null || v === undefined) return el("span", "", "–");
    if (typeof v === "string") return v.indexOf("\n") >= 0 || v.length > 300 ? el("pre", "", v) : el("span", "", v);
    if (typeof v !== "object") return el("span", "", fmtNum(v));
    if (depth > 4) return el("pre", "", JSON.stringify(v, null, 2));
    var box = el("div", "value-block");
    if (Array.isArray(v)) {
      if (!v.length) return el("span", "", "–");
      if (v.every(function (x) { return x === null || typeof x !== "object"; }) && v.join(", ").length < 200) {
        box.appendChild(el("span", "", v.map(fmtNum).join(", ")));
        return box;
      }
      var ul = el("ul");
      v.forEach(function (item) { var li = el("li"); li.appendChild(renderValue(item, depth + 1)); ul.appendChild(li); });
      box.appendChild(ul);
      return box;
    }
    var keys = Object.keys(v);
    if (!keys.length) return el("span", "", "–");
    var dl = el("dl");
    keys.forEach(function (k) { dl.appendChild(el("dt", "", k)); var dd = el("dd"); dd.appendChild(renderValue(v[k], depth + 1)); dl.appendChild(dd); });
    box.appendChild(dl);
    return box;
  }

  function facts(pairs) {
    var dl = el("dl", "facts");
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      dl.appendChild(el("dt", "", p[0]));
      var dd = el("dd");
      if (p[1] instanceof Node) dd.appendChild(p[1]); else dd.textContent = String(p[1]);
      dl.appendChild(dd);
    });
    return dl;
  }

  function failureBox(f) {
    var box = el("div", "failure");
    var head = el("div");
    head.appendChild(el("span", "kind", f.kind));
    head.appendChild(document.createTextNode(" " + (f.message || "")));
    box.appendChild(head);
    if (f.details && Object.keys(f.details).length) box.appendChild(renderValue(f.details));
    if (f.log_tail) { box.appendChild(el("div", "hint", "log tail")); box.appendChild(el("pre", "log", f.log_tail)); }
    return box;
  }

  function costText(cost, computeS) {
    var parts = [];
    if (isNum(computeS)) parts.push(fmtDuration(computeS));
    Object.keys(cost || {}).forEach(function (k) { if (k !== "device_s") parts.push(k + " " + fmtNum(cost[k])); });
    return parts.join(" · ");
  }

  // ------------------------------------------------------------------ details panel

  function runCard(run) {
    var card = el("div", "run " + run.state);
    var head = el("div", "run-head");
    head.appendChild(el("span", "", "run #" + run.number));
    if (run.meta && typeof run.meta.label === "string") head.appendChild(el("span", "hint", run.meta.label));
    head.appendChild(el("span", "badge " + run.state, run.state));
    head.appendChild(el("span", "", "score " + fmtNum(run.score)));
    if (isNum(run.gain)) head.appendChild(el("span", "", "G " + fmtPct(run.gain)));
    if (run.attempt > 1) head.appendChild(el("span", "hint", "attempt " + run.attempt));
    card.appendChild(head);
    [["recipe", run.recipe_summary], ["config", run.config_summary], ["cost", costText(run.cost, run.compute_s)]]
      .forEach(function (p) {
        if (!p[1]) return;
        var line = el("div", "line");
        line.appendChild(el("b", "", p[0] + " "));
        line.appendChild(document.createTextNode(p[1]));
        card.appendChild(line);
      });
    if (run.metrics && Object.keys(run.metrics).length) {
      var m = el("div", "line"); m.appendChild(el("b", "", "metrics")); m.appendChild(renderValue(run.metrics)); card.appendChild(m);
    }
    if (run.failure) card.appendChild(failureBox(run.failure));
    var more = el("details");
    more.appendChild(el("summary", "hint", "full recipe, config, artifacts"));
    more.appendChild(el("pre", "", JSON.stringify({ recipe: run.recipe, config: run.config, artifacts: run.artifacts, job: run.job }, null, 2)));
    card.appendChild(more);
    return card;
  }

  // Show node `num` (its number, the key of data.nodes) in the details panel and mark it everywhere.
  function showNode(num, opts) {
    opts = opts || {};
    var data = report.data, node = data.nodes[num];
    if (!node) return false;
    report.selected = node.number;
    var panel = document.getElementById("trex-details");
    panel.textContent = "";
    var head = el("div", "node-head");
    head.appendChild(el("span", "num", "#" + node.number));
    head.appendChild(el("span", "badge " + node.state, node.state));
    head.appendChild(el("span", "strategy", node.strategy || "node"));
    if (node.best) head.appendChild(el("span", "badge flag-best", "best"));
    if (node.pinned) head.appendChild(el("span", "badge flag-pinned", "pinned"));
    if (node.vetoed) head.appendChild(el("span", "badge flag-vetoed", "vetoed"));
    panel.appendChild(head);
    var metric = data.tree.metric;
    panel.appendChild(facts([
      [metric, fmtNum(node.score)], ["normalised gain", isNum(node.gain) ? fmtPct(node.gain) : null],
      ["reward", fmtNum(node.reward)], ["visits / value", node.visits + " / " + fmtNum(node.value)],
      ["parent", node.parent !== null ? nodeLink(node.parent) : "root"], ["children", node.children],
      ["depth", node.depth], ["started", fmtTime(node.started_at)], ["finished", fmtTime(node.finished_at)],
      ["cost", costText(node.cost, null) || null], ["id", node.id],
    ]));
    if (node.note) panel.appendChild(el("div", "note", node.note));
    panel.appendChild(el("h4", "", "Plan"));
    panel.appendChild(renderValue(node.plan));
    panel.appendChild(el("h4", "", "Runs (" + node.runs.length + ")"));
    if (!node.runs.length) panel.appendChild(el("div", "hint", "no runs"));
    node.runs.forEach(function (i) { if (data.runs[i]) panel.appendChild(runCard(data.runs[i])); });
    panel.appendChild(el("h4", "", "Diagnosis"));
    panel.appendChild(node.diagnosis ? renderValue(node.diagnosis) : el("div", "hint", "no diagnosis"));
    if (node.insights.length) {
      panel.appendChild(el("h4", "", "Insights"));
      node.insights.forEach(function (i) { var ins = data.insights[i]; if (ins) panel.appendChild(el("div", "insight", ins.text)); });
    }
    if (node.failure) { panel.appendChild(el("h4", "", "Failure")); panel.appendChild(failureBox(node.failure)); }
    panel.scrollTop = 0;
    markSelected(node);
    if (opts.hash !== false) history.replaceState(null, "", "#node-" + node.number);
    if (opts.scroll) panel.scrollIntoView({ block: "nearest" });
    return true;
  }
  report.showNode = showNode;

  function markSelected(node) {
    var gd = document.getElementById("trex-tree");
    if (gd && gd.layout) {
      var r = (gd.layout.meta && gd.layout.meta.ring_px) || 16;
      Plotly.relayout(gd, { shapes: [{ type: "circle", xref: "x", yref: "y", xsizemode: "pixel", ysizemode: "pixel",
        xanchor: node.x, yanchor: node.y, x0: -r, x1: r, y0: -r, y1: r, layer: "above",
        line: { color: "#111", width: 2.5 } }] });
    }
    var rows = document.querySelectorAll("#trex-runs tbody tr");
    rows.forEach(function (tr) { tr.classList.toggle("selected", tr.dataset.node === String(node.number)); });
  }

  function onPlotClick(ev) {
    if (!ev || !ev.points || !ev.points.length) return;
    var num = ev.points[0].customdata;
    if (Array.isArray(num)) num = num[0];
    if (typeof num === "number") showNode(num, { scroll: false });
  }

  // ------------------------------------------------------------------ runs table, insights

  function renderTable(table) {
    var wrap = document.getElementById("trex-runs");
    wrap.textContent = "";
    if (!table.rows.length) { wrap.appendChild(el("div", "placeholder", "no runs yet")); return; }
    var t = el("table", "runs"), thead = el("thead"), hr = el("tr"), tbody = el("tbody");
    var numeric = { int: 1, float: 1, percent: 1, duration: 1 };
    var sort = { key: null, dir: 1 };
    table.columns.forEach(function (col) {
      var th = el("th", "", col.label);
      th.dataset.key = col.key;
      th.addEventListener("click", function () {
        sort.dir = sort.key === col.key ? -sort.dir : (numeric[col.type] && col.key !== "node" && col.key !== "run" ? -1 : 1);
        sort.key = col.key;
        hr.querySelectorAll("th").forEach(function (h) { h.className = ""; });
        th.className = sort.dir > 0 ? "sorted-asc" : "sorted-desc";
        fill(col);
      });
      hr.appendChild(th);
    });
    thead.appendChild(hr); t.appendChild(thead); t.appendChild(tbody); wrap.appendChild(t);
    var rows = table.rows.slice();
    // Big trees have thousands of runs: draw the first PAGE rows (in the current sort order) and offer the rest,
    // so the first layout of the page stays fast.
    var PAGE = 150, limit = PAGE;
    var more = el("button", "more");
    more.addEventListener("click", function () { limit = Infinity; fill(null); });
    wrap.appendChild(more);
    function fill(col) {
      if (col) {
        rows.sort(function (a, b) {
          var x = a[col.key], y = b[col.key];
          var xm = x === null || x === undefined || x === "", ym = y === null || y === undefined || y === "";
          if (xm || ym) return xm === ym ? 0 : (xm ? 1 : -1);  // missing values always last
          if (typeof x === "number" && typeof y === "number") return (x - y) * sort.dir;
          return String(x).localeCompare(String(y)) * sort.dir;
        });
      }
      var frag = document.createDocumentFragment();
      rows.slice(0, limit).forEach(function (row) {
        var tr = el("tr");
        tr.dataset.node = row._node; tr.dataset.run = row._run;
        if (row._node === report.selected) tr.className = "selected";
        table.columns.forEach(function (c) { tr.appendChild(el("td", numeric[c.type] ? "num" : "", fmtCell(row[c.key], c.type))); });
        frag.appendChild(tr);
      });
      tbody.textContent = "";
      tbody.appendChild(frag);
      more.hidden = rows.length <= limit;
      more.textContent = "show all " + rows.length + " runs (" + PAGE + " shown)";
    }
    tbody.addEventListener("click", function (ev) {
      var tr = ev.target.closest("tr");
      if (tr && tr.dataset.node) showNode(Number(tr.dataset.node), { scroll: true });
    });
    fill(null);
  }

  function renderInsights(data) {
    var box = document.getElementById("trex-insights");
    box.textContent = "";
    if (!data.insights.length) { box.appendChild(el("div", "hint", "no insights recorded")); return; }
    data.insights.forEach(function (ins) {
      var div = el("div", "insight");
      div.appendChild(el("div", "", ins.text));
      var meta = el("div", "meta", "scope " + ins.scope + (isNum(ins.effect) ? " · effect " + fmtNum(ins.effect) : "") + " · evidence ");
      ins.evidence.forEach(function (nid, i) { if (i) meta.appendChild(document.createTextNode(", ")); meta.appendChild(nodeLink(nid)); });
      div.appendChild(meta);
      box.appendChild(div);
    });
  }

  // ------------------------------------------------------------------ start

  // The text of an embedded gzip + base64 block.
  async function inflate(id) {
    var bin = atob(document.getElementById(id).textContent.trim());
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }

  function nodeFromHash(data) {
    var m = /^#node-(\d+)$/.exec(location.hash || "");
    return m && data.nodes[m[1]] ? Number(m[1]) : null;
  }

  async function main() {
    if (typeof DecompressionStream === "undefined") {
      throw new Error("This browser cannot unpack the report (it needs DecompressionStream: Chrome 80+, Firefox 113+, Safari 16.4+).");
    }
    if (typeof Plotly === "undefined") throw new Error("plotly.js did not load, so the plots cannot be drawn.");
    mark("start");
    var data = JSON.parse(await inflate("trex-payload"));
    mark("data");
    report.data = data;
    var config = { responsive: true, displaylogo: false, scrollZoom: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
    var treeDiv = document.getElementById("trex-tree");
    treeDiv.textContent = "";
    await Plotly.newPlot(treeDiv, data.figures.tree.data, data.figures.tree.layout, config);
    treeDiv.on("plotly_click", onPlotClick);
    mark("tree");
    var curvesDiv = document.getElementById("trex-curves");
    await Plotly.newPlot(curvesDiv, data.figures.curves.data, data.figures.curves.layout, config);
    curvesDiv.on("plotly_click", onPlotClick);
    mark("curves");
    renderTable(data.table);
    renderInsights(data);
    mark("tables");
    var first = nodeFromHash(data);
    if (first === null) first = data.best;
    if (first !== null) showNode(first, { hash: false });
    window.addEventListener("hashchange", function () { var n = nodeFromHash(data); if (n !== null) showNode(n, { hash: false }); });
    report.renderMs = performance.now();
    document.body.dataset.ready = "1";
  }

  report.ready = main().catch(function (err) {
    var box = document.getElementById("trex-error");
    box.textContent = "The interactive part of this report failed: " + (err && err.message ? err.message : err);
    box.hidden = false;
    document.body.dataset.ready = "error";
    throw err;
  });
})();
