// The finance dashboard: charts (plotly.js, served by the service), filters, alerts, drill-down.
// Reads catalog, trends, alerts and items; every time is UTC. WINDOW and REFRESH come from the page.
"use strict";
const $ = (id) => document.getElementById(id);
const PAGE = 25;
const COLOR = {score: "#2c6fbb", share: "#c0392b", bar: "#8fa3b8", barLow: "#dde2e7",
  low: "#9aa0a6", negative_share: "#c0392b", volume: "#d35400"};
const UNIT_MS = {min: 60e3, h: 3600e3, D: 86400e3, W: 7 * 86400e3};
const state = {catalog: null, series: [], alerts: [], drill: null, busy: false, refreshes: 0};

const windowMs = (w) => {
  const m = /^(\d+)\s*(min|h|D|W)$/.exec(w);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : 6 * 3600e3;
};
// plotly.js has no time zones: give it UTC wall-clock strings ("2026-10-01 06:00:00").
const plotTime = (ms) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");
const shown = (iso) => plotTime(Date.parse(iso)).slice(0, 16);
const inputToIso = (v) => (v ? v.slice(0, 16) + ":00Z" : "");
const msToInput = (ms) => new Date(ms).toISOString().slice(0, 16);

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v != null) query.set(k, v);
  const key = sessionStorage.getItem("verticals_api_key");
  const qs = query.toString();
  const r = await fetch(path + (qs ? "?" + qs : ""), {headers: key ? {"X-API-Key": key} : {}});
  if (r.status === 401) {
    $("keyform").hidden = false;
    throw new Error(key ? "wrong API key" : "API key needed");
  }
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (e) { detail = ""; }
    throw new Error(detail || "HTTP " + r.status);
  }
  return r.json();
}

function filters() {
  const entity = $("entity").value;
  return {
    window: $("window").value, scope: entity ? "entity" : $("scope").value,
    topic: $("topic").value, entity: entity,
    start: inputToIso($("start").value), end: inputToIso($("end").value),
    minVolume: Math.max(1, Number($("minvol").value) || 1),
  };
}

function ensureOption(select, value, text) {
  if (value && ![...select.options].some((o) => o.value === value)) {
    select.append(new Option(text || value, value));
  }
  select.value = value;
}

function readQuery() {
  const q = new URLSearchParams(location.search);
  ensureOption($("window"), q.get("window") || WINDOW);
  $("scope").value = q.get("scope") === "entity" ? "entity" : "topic";
  ensureOption($("topic"), q.get("topic") || "");
  ensureOption($("entity"), q.get("entity") || "");
  for (const name of ["start", "end"]) if (q.get(name)) $(name).value = q.get(name).slice(0, 16);
  if (q.get("min_volume")) $("minvol").value = q.get("min_volume");
}

function writeQuery() {
  const f = filters();
  const q = new URLSearchParams({window: f.window, refresh: String(REFRESH / 1000)});
  if (f.scope !== "topic") q.set("scope", f.scope);
  for (const name of ["topic", "entity"]) if (f[name]) q.set(name, f[name]);
  for (const name of ["start", "end"]) if ($(name).value) q.set(name, $(name).value.slice(0, 16));
  q.set("min_volume", String(f.minVolume));
  history.replaceState(null, "", "?" + q.toString());
}

function fillSelect(select, entries) {
  const keep = select.value;
  select.replaceChildren(new Option("all", ""),
    ...entries.map((e) => new Option(`${e.key} (${e.items})`, e.key)));
  ensureOption(select, keep);
}

function topicOf(entity) {
  const found = (state.catalog?.entities || []).find((e) => e.key === entity);
  return found ? found.topic : null;
}

function updateCatalog(catalog) {
  state.catalog = catalog;
  fillSelect($("topic"), catalog.topics);
  const topic = $("topic").value;
  fillSelect($("entity"), catalog.entities.filter((e) => !topic || e.topic === topic));
  $("summary").textContent = catalog.items
    ? `${catalog.items} scored items, ${shown(catalog.first)} to ${shown(catalog.last)} UTC`
    : "no scored items yet";
}

function alertMatches(a, f) {
  if (f.entity) return a.scope === "entity" && a.key === f.entity;
  if (f.topic) {
    return (a.scope === "topic" && a.key === f.topic) ||
      (a.scope === "entity" && topicOf(a.key) === f.topic);
  }
  return true;
}

// Alerts drawn on a series' chart: its own, and on a topic chart its entities' alerts too.
function alertsFor(s) {
  return state.alerts.filter((a) => (a.scope === s.scope && a.key === s.key) ||
    (s.scope === "topic" && a.scope === "entity" && topicOf(a.key) === s.key));
}

function traces(s, f) {
  const win = windowMs(s.window);
  const x = s.points.map((p) => plotTime(Date.parse(p.t)));
  const ok = s.points.map((p) => p.volume >= f.minVolume);
  const custom = s.points.map((p) => ["window", p.t, p.volume]);
  const pick = (field, keep) => s.points.map((p, i) => (ok[i] === keep ? p[field] : null));
  const period = {x, customdata: custom, xperiod: win, xperiodalignment: "middle"};
  const lowHover = "only %{customdata[2]} item(s): too few to read<extra>below minimum</extra>";
  const low = {type: "scatter", mode: "markers", legendgroup: "low", name: `< ${f.minVolume} items`,
    marker: {symbol: "circle-open", size: 7, color: COLOR.low}};
  const out = [
    {...period, type: "scatter", mode: "lines+markers", y: pick("mean_score", true),
      name: "mean score", connectgaps: true, line: {color: COLOR.score, width: 2},
      marker: {size: 5}, hovertemplate: "mean score %{y:.2f} (%{customdata[2]} items)<extra></extra>"},
    {...period, ...low, y: pick("mean_score", false), hovertemplate: "score %{y:.2f}, " + lowHover},
    {...period, type: "scatter", mode: "lines+markers", y: pick("negative_share", true), yaxis: "y2",
      name: "negative share", connectgaps: true, line: {color: COLOR.share, width: 2},
      marker: {size: 5}, hovertemplate: "negative %{y:.0%} (%{customdata[2]} items)<extra></extra>"},
    {...period, ...low, y: pick("negative_share", false), yaxis: "y2", showlegend: false,
      hovertemplate: "negative %{y:.0%}, " + lowHover},
    {...period, type: "bar", y: s.points.map((p) => p.volume), yaxis: "y3", name: "items",
      marker: {color: ok.map((o) => (o ? COLOR.bar : COLOR.barLow))},
      hovertemplate: "%{y} items<extra></extra>"},
  ];
  const alerts = alertsFor(s);
  if (alerts.length) {
    out.push({type: "scatter", mode: "markers", name: "alerts", y: alerts.map(() => 1.12),
      x: alerts.map((a) => plotTime(Date.parse(a.detected_at))),
      customdata: alerts.map((a) => ["alert", state.alerts.indexOf(a), a.volume]),
      hovertext: alerts.map((a) => a.message), hovertemplate: "%{hovertext}<extra></extra>",
      marker: {size: 13, color: alerts.map((a) => COLOR[a.rule] || COLOR.share),
        symbol: alerts.map((a) => (a.scope === s.scope ? "triangle-down" : "diamond"))}});
  }
  return out;
}

function xRange(s, f) {
  const win = windowMs(s.window);
  const ts = s.points.map((p) => Date.parse(p.t));
  const lo = f.start ? Date.parse(f.start) : Math.min(...ts);
  const hi = f.end ? Date.parse(f.end) : Math.max(...ts) + win;
  return [plotTime(lo), plotTime(hi)];
}

// A whole-number tick step giving about three ticks up to `max` (1, 2, 5, 10, 20, ...).
function countStep(max) {
  const raw = Math.max(1, max / 3), ten = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * ten).find((step) => step >= raw);
}

function layout(s, f) {
  const grid = "#edf0f3";
  const shapes = alertsFor(s).map((a) => ({type: "rect", xref: "x", yref: "paper", layer: "below",
    x0: plotTime(Date.parse(a.window_start)), x1: plotTime(Date.parse(a.window_end)), y0: 0, y1: 1,
    fillcolor: a.rule === "volume" ? "rgba(211,84,0,.10)" : "rgba(192,57,43,.12)", line: {width: 0}}));
  return {
    autosize: true, height: 400, margin: {l: 64, r: 24, t: 28, b: 40}, hovermode: "closest",
    uirevision: `${s.scope}:${s.key}:${f.window}:${f.start}:${f.end}`, bargap: 0.1,
    legend: {orientation: "h", x: 0, y: 1.09, font: {size: 11}}, shapes: shapes,
    xaxis: {type: "date", anchor: "y3", range: xRange(s, f), gridcolor: grid, showline: true,
      linecolor: "#999", ticks: "outside", hoverformat: "%Y-%m-%d %H:%M UTC"},
    yaxis: {domain: [0.55, 1], range: [-1.08, 1.22], tickvals: [-1, -0.5, 0, 0.5, 1],
      zeroline: true, zerolinecolor: "#9aa", gridcolor: grid, title: {text: "mean score", font: {size: 11}}},
    yaxis2: {domain: [0.29, 0.5], range: [0, 1.04], tickformat: ".0%", tickvals: [0, 0.5, 1],
      gridcolor: grid, title: {text: "neg. share", font: {size: 11}}},
    yaxis3: {domain: [0, 0.23], rangemode: "tozero", gridcolor: grid, fixedrange: true,
      tick0: 0, dtick: countStep(Math.max(1, ...s.points.map((p) => p.volume))),
      title: {text: "items", font: {size: 11}}},
  };
}

function card(s) {
  const id = `${s.scope}:${s.key}`;
  let box = [...$("charts").children].find((c) => c.dataset.id === id);
  if (box) return box;
  box = document.createElement("div");
  box.className = "card";
  Object.assign(box.dataset, {id: id, scope: s.scope, key: s.key});
  const head = document.createElement("div");
  head.className = "card-head";
  const title = document.createElement("h2");
  title.textContent = `${s.scope}: ${s.key}`;
  const stats = document.createElement("span");
  stats.className = "stats";
  const texts = document.createElement("button");
  texts.type = "button";
  texts.textContent = "show texts";
  texts.title = "the texts of this chart in the time range shown";
  texts.addEventListener("click", () => openSeries(box.series));
  const plot = document.createElement("div");
  plot.className = "plot";
  head.append(title, texts, stats);
  box.append(head, plot);
  return box;
}

function draw() {
  const f = filters(), charts = $("charts");
  const ids = new Set(state.series.map((s) => `${s.scope}:${s.key}`));
  for (const old of [...charts.children]) {
    if (!ids.has(old.dataset.id)) {
      const plot = old.querySelector(".plot");
      if (plot) Plotly.purge(plot);
      old.remove();
    }
  }
  if (!state.series.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No scored items for these filters in this time range.";
    charts.replaceChildren(empty);
    return;
  }
  for (const s of state.series) {
    const box = card(s);
    box.series = s;
    charts.append(box);  // appending again keeps the API's order
    const total = s.points.reduce((n, p) => n + p.volume, 0);
    box.querySelector(".stats").textContent = `${total} items · ${alertsFor(s).length} alerts`;
    const plot = box.querySelector(".plot");
    Plotly.react(plot, traces(s, f), layout(s, f),
      {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]});
    if (!plot.dataset.bound) {
      plot.dataset.bound = "1";
      plot.on("plotly_click", (ev) => onPoint(box.series, ev.points[0]));
    }
  }
}

function onPoint(s, point) {
  const data = point && point.customdata;
  if (!data) return;
  if (data[0] === "alert") openAlert(state.alerts[data[1]]);
  else openWindow(s, data[1]);
}

function seriesFilters(s) {
  const f = filters();
  return s.scope === "entity" ? {entity: s.key, topic: f.topic} : {topic: s.key, entity: f.entity};
}

function openWindow(s, t) {
  const end = new Date(Date.parse(t) + windowMs(s.window)).toISOString();
  openDrill(`${s.scope} ${s.key}: ${shown(t)} to ${shown(end)} UTC`, {...seriesFilters(s), start: t, end: end});
}

function openSeries(s) {
  const f = filters();
  openDrill(`${s.scope} ${s.key}: the time range shown`, {...seriesFilters(s), start: f.start, end: f.end});
}

function openAlert(a) {
  if (!a) return;
  for (const row of document.querySelectorAll("tr.alert-row")) {
    row.classList.toggle("selected", row.alert === a);
  }
  openDrill(a.message, {[a.scope]: a.key, start: a.window_start, end: a.window_end});
}

function openDrill(title, params) {
  state.drill = {title: title, params: params, offset: 0};
  $("drill-label").value = "";
  loadDrill();
}

async function loadDrill() {
  const d = state.drill;
  $("drill").hidden = false;
  $("drill-title").textContent = d.title;
  try {
    const page = await api("items", {...d.params, label: $("drill-label").value, limit: PAGE, offset: d.offset});
    const body = $("drill").querySelector("tbody");
    body.replaceChildren(...page.items.map(itemRow));
    const last = d.offset + page.items.length;
    $("drill-range").textContent = page.total ? `${d.offset + 1}–${last} of ${page.total}` : "no items";
    $("drill-prev").disabled = d.offset === 0;
    $("drill-next").disabled = last >= page.total;
  } catch (e) {
    $("drill-range").textContent = "failed: " + e.message;
  }
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function itemRow(item) {
  const tr = document.createElement("tr");
  tr.className = "item-row";
  const label = cell("");
  const chip = document.createElement("span");
  chip.className = "label label-" + item.label;
  chip.textContent = item.label;
  label.append(chip);
  const where = [item.topic, item.entity].filter(Boolean).join(" / ");
  tr.append(cell(shown(item.ts), "when"), label, cell(item.score.toFixed(2)), cell(where),
    cell(item.text, "text"));
  return tr;
}

function drawAlerts() {
  const body = $("alerts").querySelector("tbody");
  $("alert-count").textContent = `(${state.alerts.length})`;
  if (!state.alerts.length) {
    const tr = document.createElement("tr");
    const td = cell("No alerts for these filters in this time range.", "empty");
    td.colSpan = 6;
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...state.alerts.map((a) => {
    const tr = document.createElement("tr");
    tr.className = "alert-row";
    tr.alert = a;
    Object.assign(tr.dataset, {scope: a.scope, key: a.key});
    tr.append(cell(`${shown(a.window_start)} – ${shown(a.window_end).slice(11)}`, "when"),
      cell(a.rule.replace("_", " "), "rule-" + a.rule), cell(a.scope), cell(a.key),
      cell(a.z.toFixed(1)), cell(a.message));
    tr.addEventListener("click", () => openAlert(a));
    return tr;
  }));
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    if (typeof Plotly === "undefined") throw new Error("the charting library (static/plotly.min.js) did not load");
    updateCatalog(await api("catalog"));
    $("keyform").hidden = true;
    const f = filters();
    const range = {start: f.start, end: f.end};
    const [trends, alerts] = await Promise.all([
      api("trends", {window: f.window, scope: f.scope, topic: f.topic, entity: f.entity, ...range}),
      api("alerts", {...range, limit: 1000}),
    ]);
    state.series = trends.series;
    state.alerts = alerts.alerts.filter((a) => alertMatches(a, f));
    draw();
    drawAlerts();
    state.refreshes += 1;
    $("updated").textContent = new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
    $("updated").dataset.refreshes = String(state.refreshes);
    $("status").textContent = "";
  } catch (e) {
    $("status").textContent = " (refresh failed: " + e.message + ")";
  } finally {
    state.busy = false;
  }
}

function changed() {
  writeQuery();
  refresh();
}

function quickRange(span) {
  const last = state.catalog && state.catalog.last ? Date.parse(state.catalog.last) : Date.now();
  if (span === "all") {
    $("start").value = "";
    $("end").value = "";
  } else {
    const end = Math.ceil((last + 1) / 3600e3) * 3600e3;  // the hour after the latest item
    $("end").value = msToInput(end);
    $("start").value = msToInput(end - windowMs(span));
  }
  changed();
}

document.getElementById("keyform").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("verticals_api_key", $("apikey").value);
  refresh();
});
for (const id of ["start", "end", "window", "scope", "entity"]) $(id).addEventListener("change", changed);
$("topic").addEventListener("change", () => { $("entity").value = ""; changed(); });
$("minvol").addEventListener("change", () => { writeQuery(); draw(); });
for (const b of document.querySelectorAll(".quick button")) {
  b.addEventListener("click", () => quickRange(b.dataset.range));
}
$("drill-close").addEventListener("click", () => { $("drill").hidden = true; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("drill").hidden = true; });
$("drill-label").addEventListener("change", () => { state.drill.offset = 0; loadDrill(); });
$("drill-prev").addEventListener("click", () => { state.drill.offset = Math.max(0, state.drill.offset - PAGE); loadDrill(); });
$("drill-next").addEventListener("click", () => { state.drill.offset += PAGE; loadDrill(); });
readQuery();
refresh();
setInterval(refresh,REFRESH);
