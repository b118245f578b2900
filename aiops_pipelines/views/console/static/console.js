// The console's behaviour: the overview refreshes itself, the model page draws its charts.
// Every value goes into the page through textContent or Plotly, never as HTML.
"use strict";

function fmt(v, f) { return v === null || v === undefined ? "–" : f(v); }
const pct = (d) => (v) => (v * 100).toFixed(d) + "%";
const num = (p) => (v) => Number(v.toPrecision(p)).toString();

function cell(tr, text, href) {
  const td = document.createElement("td");
  if (href) { const a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
  else { td.textContent = text; }
  tr.appendChild(td);
}

function renderOverview(view) {
  const body = document.querySelector("#health tbody");
  body.replaceChildren();
  for (const m of view.models) {
    const tr = document.createElement("tr");
    tr.className = "s-" + m.status.replace(" ", "-");
    tr.dataset.key = m.key;
    cell(tr, m.key, "/models/" + encodeURIComponent(m.tenant) + "/" + encodeURIComponent(m.model));
    cell(tr, m.status);
    cell(tr, fmt(m.drift_share, pct(0)));
    cell(tr, m.primary_metric + " " + fmt(m.primary_value, num(4)));
    cell(tr, fmt(m.reference_value, num(4)));
    cell(tr, fmt(m.coverage, pct(0)));
    cell(tr, fmt(m.throughput, (v) => v.toFixed(0)));
    cell(tr, fmt(m.latency_p95_ms, (v) => v.toFixed(1)));
    cell(tr, fmt(m.error_rate, pct(2)));
    cell(tr, m.canary || "–");
    cell(tr, m.alerts_firing + (m.alerts_muted ? " (" + m.alerts_muted + " muted)" : ""));
    cell(tr, m.issues);
    body.appendChild(tr);
  }
  document.getElementById("as-of").textContent = view.day || "no results yet";
  document.getElementById("refreshed").textContent = view.generated_at || "";
}

function startRefresh() {
  const table = document.getElementById("health");
  if (!table) return;
  const seconds = Number(document.body.dataset.refresh || 15);
  const day = table.dataset.day;
  setInterval(async () => {
    const url = "/api/v1/overview" + (day ? "?day=" + encodeURIComponent(day) : "");
    const res = await fetch(url, { credentials: "same-origin" });
    if (res.status === 401) { window.location = "/login"; return; }
    if (res.ok) renderOverview(await res.json());
  }, seconds * 1000);
}

const LEVEL_COLOURS = [[0, "#d1fae5"], [0.33, "#bfdbfe"], [0.66, "#fcd34d"], [1, "#dc2626"]];

function drawModel() {
  const node = document.getElementById("model-data");
  if (!node || !window.Plotly) return;
  const d = JSON.parse(node.textContent);
  const cfg = { displaylogo: false, responsive: true };
  if (d.drift.features.length) {
    Plotly.newPlot("drift-chart", [{
      type: "heatmap", x: d.drift.days, y: d.drift.features, z: d.drift.level,
      text: d.drift.text, hoverinfo: "text", zmin: -1, zmax: 2, colorscale: LEVEL_COLOURS,
      colorbar: { tickvals: [-1, 0, 1, 2], ticktext: ["ok", "info", "warning", "critical"] },
    }], { margin: { l: 140, t: 10 }, height: 80 + 22 * d.drift.features.length }, cfg);
  } else {
    document.getElementById("drift-chart").textContent = "no drift results in the window";
  }
  const p = d.performance;
  if (p.metric) {
    const traces = [{ x: p.days, y: p.value, name: p.metric, mode: "lines+markers" },
      { x: p.days, y: p.coverage, name: "label coverage", type: "bar", yaxis: "y2", opacity: 0.3 }];
    const shapes = [];
    const lines = { reference: p.reference, ...p.limits };
    const colours = { reference: "#1d4ed8", warning: "#ef8a00", critical: "#c62828" };
    for (const [name, v] of Object.entries(lines)) {
      if (v === null) continue;
      traces.push({ x: [p.days[0], p.days[p.days.length - 1]], y: [v, v], name: name + " " + num(4)(v),
        mode: "lines", line: { dash: "dash", color: colours[name] } });
    }
    Plotly.newPlot("performance-chart", traces, { margin: { t: 10 }, height: 320,
      yaxis2: { overlaying: "y", side: "right", range: [0, 1], title: "coverage" }, shapes }, cfg);
  } else {
    document.getElementById("performance-chart").textContent = "no performance results in the window";
  }
  const o = d.ops;
  const names = Object.keys(o.series);
  const axis = (i) => (i ? String(i + 1) : "");
  const ops = names.map((k, i) => ({ x: o.days, y: o.series[k], name: o.labels[k],
    mode: "lines+markers", xaxis: "x" + axis(i), yaxis: "y" + axis(i) }));
  // each anomaly or change point: a marker on its day in every panel
  const marks = names.flatMap((k, i) => o.anomalies.map((a) => ({ type: "line", x0: a.day, x1: a.day,
    xref: "x" + axis(i), yref: "y" + axis(i) + " domain", y0: 0, y1: 1,
    line: { color: a.severity === "critical" ? "#c62828" : "#ef8a00", dash: "dot" } })));
  Plotly.newPlot("ops-chart", ops, { margin: { t: 10 }, height: 480, shapes: marks,
    grid: { rows: names.length, columns: 1, pattern: "independent" } }, cfg);
  const c = d.canary.metrics.filter((r) => r.column === "");
  const series = (name) => c.filter((r) => r.metric === name);
  const est = series("canary_estimate");
  const canary = document.getElementById("canary-chart");
  if (est.length) {
    const lo = series("canary_lower"), hi = series("canary_upper");
    Plotly.newPlot(canary, [
      { x: hi.map((r) => r.partition), y: hi.map((r) => r.value), name: "upper", mode: "lines",
        line: { width: 0 }, showlegend: false },
      { x: lo.map((r) => r.partition), y: lo.map((r) => r.value), name: "confidence sequence",
        mode: "lines", fill: "tonexty", line: { width: 0 } },
      { x: est.map((r) => r.partition), y: est.map((r) => r.value),
        name: "canary - champion", mode: "lines+markers" },
    ], { margin: { t: 10 }, height: 300, shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1,
      y0: 0, y1: 0, line: { dash: "dash", color: "#6b7280" } }] }, cfg);
  } else {
    canary.hidden = true;
  }
  const form = document.getElementById("feature-form");
  const draw = async () => {
    const f = form.feature.value, day = form.day.value;
    if (!f || !day) return;
    const url = "/api/v1/models/" + encodeURIComponent(d.tenant) + "/" + encodeURIComponent(d.model) +
      "/features/" + encodeURIComponent(f) + "?day=" + encodeURIComponent(day);
    const res = await fetch(url, { credentials: "same-origin" });
    const chart = document.getElementById("feature-chart");
    if (!res.ok) { chart.textContent = "no profile of " + f + " on " + day; return; }
    const fd = await res.json();
    chart.textContent = "";
    Plotly.newPlot(chart, [
      { x: fd.bins, y: fd.reference, type: "bar", name: "reference (" + fd.n_reference + ")" },
      { x: fd.bins, y: fd.current, type: "bar", name: fd.day + " (" + fd.n_current + ")" },
    ], { margin: { t: 10 }, height: 320, barmode: "group", yaxis: { tickformat: ".0%" } }, cfg);
  };
  if (form) { form.addEventListener("change", draw); draw(); }
}

document.addEventListener("DOMContentLoaded", () => { startRefresh(); drawModel(); });
