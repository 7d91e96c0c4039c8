"use strict";
// The dashboard: reads the admin API every two seconds and draws what it finds. Everything shown is set
// as text; the chart is drawn on a canvas by hand (no library, no network beyond the node).

const KEY = "llmrelay.adminKey";
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

async function admin(path) {
  const response = await fetch(path, { headers: llmrelay.headers(llmrelay.key(KEY)) });
  if (!response.ok) throw new Error(await llmrelay.errorMessage(response));
  return response.json();
}

function table(id, columns, rows) {
  const head = llmrelay.el("tr");
  columns.forEach(([title]) => head.append(llmrelay.el("th", null, title)));
  const lines = rows.map((row) => {
    const line = llmrelay.el("tr");
    columns.forEach(([, value]) => line.append(llmrelay.el("td", null, value(row) ?? "–")));
    return line;
  });
  if (!rows.length) {
    const empty = llmrelay.el("tr");
    const cell = llmrelay.el("td", "empty", "nothing yet");
    cell.colSpan = columns.length;
    empty.append(cell);
    lines.push(empty);
  }
  $(id).replaceChildren(head, ...lines);
}

function milliseconds(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(value < 10 ? 2 : 0)} ms`;
}

function drawChart(points) {
  const canvas = $("chart");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = 30;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#ccc";
  context.strokeRect(pad, 5, width - pad - 5, height - pad - 5);
  const series = [
    ["requests", "#2563eb", Math.max(1, ...points.map((p) => p.requests))],
    ["p50_ms", "#16a34a", Math.max(1, ...points.map((p) => p.p95_ms || 0))],
    ["p95_ms", "#dc2626", Math.max(1, ...points.map((p) => p.p95_ms || 0))],
  ];
  const x = (index) => pad + (index / Math.max(1, points.length - 1)) * (width - pad - 5);
  for (const [field, colour, top] of series) {
    context.strokeStyle = colour;
    context.beginPath();
    let drawing = false;
    points.forEach((point, index) => {
      const value = point[field];
      if (value === null || value === undefined) {
        drawing = false;
        return;
      }
      const y = height - pad - (value / top) * (height - pad - 10);
      if (drawing) context.lineTo(x(index), y);
      else context.moveTo(x(index), y);
      drawing = true;
    });
    context.stroke();
  }
  context.fillStyle = "#555";
  context.fillText(`${series[0][2]} req/s`, 2, 14);
  context.fillText(`${series[2][2].toFixed(0)} ms`, 2, 28);
  context.fillText("−5 min", pad, height - 10);
  context.fillText("now", width - 30, height - 10);
}

function showStats(stats) {
  const points = stats.timeline;
  const recent = points.slice(-10);
  const durations = points.filter((p) => p.requests);
  const last = durations[durations.length - 1];
  $("rps").textContent = (recent.reduce((sum, p) => sum + p.requests, 0) / 10).toFixed(1);
  $("p50").textContent = milliseconds(last ? last.p50_ms : null);
  $("p95").textContent = milliseconds(last ? last.p95_ms : null);
  $("in-flight").textContent = String(stats.in_flight);
  $("total").textContent = String(points.reduce((sum, p) => sum + p.requests, 0));
  drawChart(points);
}

const TOKENS = [
  ["requests", (r) => r.requests], ["errors", (r) => r.errors], ["prompt tokens", (r) => r.prompt_tokens],
  ["completion tokens", (r) => r.completion_tokens], ["avg", (r) => milliseconds(r.avg_total_ms)],
];

async function refresh() {
  try {
    const [stats, byModel, byKey, deployments, errors] = await Promise.all([
      admin("/admin/stats"), admin("/admin/usage?by=model&since=1d"), admin("/admin/usage?by=key&since=1d"),
      admin("/admin/deployments"), admin("/admin/usage/records?errors=1&limit=10&since=1d"),
    ]);
    showStats(stats);
    table("by-model", [["model", (r) => r.model], ...TOKENS], byModel.data);
    table("by-key", [["key", (r) => r.key || "(no key)"], ["name", (r) => r.key_name], ...TOKENS], byKey.data);
    table("deployments", [["deployment", (d) => d.deployment], ["state", (d) => d.state],
      ["in flight", (d) => d.in_flight], ["requests", (d) => d.requests], ["errors", (d) => d.errors],
      ["time to first byte", (d) => milliseconds(d.ttfb_ms)]], deployments.data);
    table("errors", [["time", (r) => new Date(r.at * 1000).toLocaleTimeString()], ["model", (r) => r.model],
      ["status", (r) => r.status], ["error", (r) => r.error_type], ["key", (r) => r.key_id],
      ["request id", (r) => r.request_id]], errors.data);
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    $("key-field").classList.remove("needed");
  } catch (error) {
    $("status").textContent = "Cannot read the node's state: " + error.message;
    if (/^40[13]/.test(error.message)) $("key-field").classList.add("needed");
  }
}

$("admin-key").value = llmrelay.key(KEY);
$("admin-key").addEventListener("change", () => {
  localStorage.setItem(KEY, $("admin-key").value.trim());
  refresh();
});
refresh();
setInterval(refresh, REFRESH_MS);
