// The analytics dashboard: draws /api/analytics/<metric>/ with Chart.js and redraws when the
// analytics sink says over the page's socket that windows changed ("analytics.updated").
"use strict";

const bootstrap = JSON.parse(document.getElementById("bootstrap").textContent);
const $ = (selector) => document.querySelector(selector);
const METRICS = ["completed", "completion-rate", "rolling-completion-rate", "completion-time", "active-users",
  "activity", "peak-hours", "todos-per-user", "assignments", "health", "late-events"];
const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d", "#9333ea"];
const BARS = new Set(["completed", "active-users", "peak-hours", "assignments", "late-events"]);
const charts = new Map();
let lastQuery = "";
let refreshTimer = null;
let loading = false;
let again = false;

// --- the query the controls describe -------------------------------------------------------
const RANGES = { "24h": 1, "7d": 7, "30d": 30, "90d": 90, "365d": 365 };

function params() {
  const query = new URLSearchParams();
  const range = $("#range").value;
  if (range === "custom") {
    if ($("#from").value) query.set("from", new Date($("#from").value).toISOString());
    if ($("#to").value) query.set("to", new Date($("#to").value).toISOString());
  } else {
    query.set("from", new Date(Date.now() - RANGES[range] * 86400000).toISOString());
  }
  if ($("#bucket").value) query.set("bucket", $("#bucket").value);
  query.set("scope", $("#scope").value);
  return query;
}

function label(t, bucket, x) {
  if (x === "hourOfDay") return `${String(t).padStart(2, "0")}:00`;
  const date = new Date(t);
  if (bucket === "hour") return date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  if (bucket === "month") return date.toLocaleDateString([], { year: "numeric", month: "short" });
  return date.toLocaleDateString([], { month: "short", day: "numeric" });
}

// --- drawing ----------------------------------------------------------------------------
function draw(result) {
  const canvas = document.getElementById(`chart-${result.metric}`);
  // Completions are stacked by priority: their "all" series would count them twice.
  const series = result.series.filter((s) => !(result.metric === "completed" && s.label === "all")).slice(0, 10);
  const labels = (series[0]?.points || []).map((p) => label(p.t, result.bucket, result.x));
  const datasets = series.map((s, i) => ({
    label: s.label, data: s.points.map((p) => p.value), borderColor: PALETTE[i % PALETTE.length],
    backgroundColor: PALETTE[i % PALETTE.length] + (BARS.has(result.metric) ? "cc" : "33"),
    tension: 0.25, pointRadius: 2, spanGaps: true, borderWidth: 2,
  }));
  const existing = charts.get(result.metric);
  if (existing) {
    existing.data.labels = labels;
    existing.data.datasets = datasets;
    existing.update("none");
    return;
  }
  charts.set(result.metric, new Chart(canvas, {
    type: BARS.has(result.metric) ? "bar" : "line",
    data: { labels, datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { stacked: result.metric === "completed", ticks: { maxTicksLimit: 12 } },
        y: { beginAtZero: true, stacked: result.metric === "completed" } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  }));
}

function showHealthNow(current) {
  for (const [name, value] of Object.entries(current || {})) {
    const tile = document.getElementById(`now-${name}`);
    if (tile) tile.textContent = value;
  }
}

async function load() {
  if (loading) { again = true; return; } // one refresh at a time; a change meanwhile refreshes once more
  loading = true;
  const query = params();
  lastQuery = query.toString();
  for (const kind of ["csv", "pdf"]) $(`#export-${kind}`).href = `/api/analytics/report/?as=${kind}&${lastQuery}`;
  try {
    const answers = await Promise.all(METRICS.map((metric) => fetch(`/api/analytics/${metric}/?${lastQuery}`,
      { headers: { Accept: "application/json" }, credentials: "same-origin" })));
    const failed = answers.find((answer) => !answer.ok);
    if (failed) {
      if (failed.status === 401) { location.assign("/login/?next=/analytics/"); return; }
      const body = await failed.json().catch(() => ({}));
      $("#status").textContent = `Could not load: ${Object.values(body).flat().join(" ") || failed.statusText}`;
      $("#status").dataset.error = "true";
      return;
    }
    delete $("#status").dataset.error;
    const results = await Promise.all(answers.map((answer) => answer.json()));
    results.forEach(draw);
    showHealthNow(results.find((r) => r.metric === "health")?.current);
    const first = results[0];
    $("#status").textContent = `${label(first.from, "day")} – ${label(first.to, "day")}, per ${first.bucket}. ` +
      `Updated ${new Date().toLocaleTimeString()}.`;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    $("#status").textContent = `Could not load: ${error.message}`;
  } finally {
    loading = false;
    if (again) { again = false; load(); }
  }
}

function refreshSoon() {
  // Bursts of window updates become one refresh.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(load, 250);
}

// --- live: the page's socket (no catch-up asked: only what happens from now on) ------------
let retryDelay = 1000;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/todos/`);
  const pill = $("#connection");
  socket.onopen = () => { pill.dataset.state = "live"; pill.textContent = "Live"; retryDelay = 1000; };
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "analytics.updated") refreshSoon();
  };
  socket.onclose = (event) => {
    if (event.code === 4401) { location.assign("/login/?next=/analytics/"); return; }
    pill.dataset.state = "offline";
    pill.textContent = `Offline — reconnecting in ${Math.round(retryDelay / 1000)} s`;
    setTimeout(() => { connect(); refreshSoon(); }, retryDelay); // what changed while away is read again
    retryDelay = Math.min(retryDelay * 2, 15000);
  };
}

// --- wiring -----------------------------------------------------------------------------
for (const scope of bootstrap.scopes) {
  const option = document.createElement("option");
  option.value = scope.value;
  option.textContent = scope.label;
  $("#scope").append(option);
}
$("#range").addEventListener("change", () => {
  document.querySelectorAll(".custom").forEach((field) => { field.hidden = $("#range").value !== "custom"; });
  load();
});
for (const id of ["#from", "#to", "#bucket", "#scope"]) $(id).addEventListener("change", load);
load();
connect();
