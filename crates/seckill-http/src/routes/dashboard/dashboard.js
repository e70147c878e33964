// The live dashboard: one EventSource, a `history` event with the last
// minutes of points, then a `snapshot` every second. Charts are drawn on
// canvases by hand; nothing is loaded from anywhere else.
"use strict";

// With a dashboard token, the page is opened as /dashboard?token=…, and
// passes it on to its stream (an EventSource cannot send headers).
const TOKEN = new URLSearchParams(location.search).get("token");
const EVENTS_URL = "/dashboard/events" + (TOKEN ? "?token=" + encodeURIComponent(TOKEN) : "");
// A stream refused (too many open, or a token missing) is not retried by
// the browser: the page tries again after this long.
const RETRY_MS = 5000;
// The charts span the data they have, from one minute up to five.
const MIN_SPAN_MS = 60 * 1000;
const WINDOW_MS = 5 * 60 * 1000;
const OUTCOMES = [
  ["reserved", "reserved"],
  ["sold_out", "sold out"],
  ["refused", "refused"],
  ["unavailable", "unavailable"],
  ["error", "error"],
  ["ok", "other ok"],
];
const ORDER_STATES = [
  ["reserved", "unpaid"],
  ["paid", "paid"],
  ["expired", "expired"],
  ["cancelled", "cancelled"],
];

const css = getComputedStyle(document.documentElement);
const color = (name) => css.getPropertyValue("--" + name).trim();
const $ = (id) => document.getElementById(id);

const SALE_COLORS = ["#e6edf7", "#4c8dff", "#ffb020", "#a78bfa"];

let points = [];
let snapshots = 0;
// Remaining units per sale, as seen since the page opened: {at, remaining: {id: n}}.
let stockPoints = [];
let lastSales = [];

// ---- numbers ----------------------------------------------------------

function compact(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + "k";
  return Math.round(n).toLocaleString("en-US");
}

function whole(n) {
  return Math.round(n).toLocaleString("en-US");
}

// A latency given in ms, as [number, unit]: in µs below a tenth of a
// millisecond, where answers from memory are.
function duration(ms) {
  if (ms < 0.1) return [String(Math.round(ms * 1000)), "µs"];
  if (ms >= 100) return [String(Math.round(ms)), "ms"];
  if (ms >= 10) return [ms.toFixed(1), "ms"];
  return [ms.toFixed(2), "ms"];
}

const durationText = (ms) => duration(ms).join(" ");

function setMs(id, ms, idle) {
  const [value, unit] = duration(ms);
  $(id).innerHTML = idle ? "—" : `${value}<span class="unit">${unit}</span>`;
}

// Latency axis labels, in µs when the whole axis is under a tenth of a
// millisecond; no trailing ".0".
function tickMs(ms, top) {
  if (top < 0.1 + 1e-9) return `${Math.round(ms * 1000)} µs`;
  return (ms >= 10 ? String(Math.round(ms)) : String(+ms.toFixed(2))) + " ms";
}

// ---- aggregation over nodes -------------------------------------------

function rpsOf(point) {
  const total = Object.fromEntries(OUTCOMES.map(([key]) => [key, 0]));
  for (const node of point.nodes) {
    for (const [key] of OUTCOMES) total[key] += node.rps[key];
  }
  return total;
}

function latencyOf(point) {
  const worst = { p50: 0, p99: 0, max: 0 };
  for (const node of point.nodes) {
    for (const key of ["p50", "p99", "max"]) worst[key] = Math.max(worst[key], node.latency_ms[key]);
  }
  return worst;
}

const sum = (object) => Object.values(object).reduce((a, b) => a + b, 0);

// ---- charts -------------------------------------------------------------

// The step between y ticks: 1, 2 or 5 times a power of ten, so that about
// `lines` steps reach `max`, and never under `least` (1 for counts, 1 µs
// for latency), so that no two ticks read the same.
function niceStep(max, lines, least) {
  const raw = Math.max(max / lines, least);
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const factor of [1, 2, 5]) {
    if (factor * magnitude >= raw * (1 - 1e-9)) return factor * magnitude;
  }
  return 10 * magnitude;
}

// The y axes: counts, and latency in ms.
const COUNTS = { least: 1, label: compact };
const LATENCY = { least: 0.001, label: tickMs };

// Lines over the recent span; `series` is [{color, values, fill, always}]
// aligned with `times` (a series of zeros is drawn only if `always`); the
// y axis (`axis`: its least step and its labels) reaches at least `floor`.
function drawChart(canvas, times, series, axis, floor = 0) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const left = 64, right = 12, top = 10, bottom = 26;
  const plotW = width - left - right, plotH = height - top - bottom;
  const now = times.length ? times[times.length - 1] : Date.now();
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, times.length ? now - times[0] : 0));
  const start = now - span;
  let max = floor;
  for (const s of series) for (const v of s.values) max = Math.max(max, v);
  const step = niceStep(max, 4, axis.least);
  const top_ = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const x = (t) => left + ((t - start) / span) * plotW;
  const y = (v) => top + plotH - (v / top_) * plotH;

  g.font = "13px system-ui, sans-serif";
  g.textBaseline = "middle";
  g.lineWidth = 1;
  for (let i = 0; i * step <= top_ + step / 2; i++) {
    const v = i * step;
    g.strokeStyle = v === 0 ? "#2a3850" : "#1b2536";
    g.beginPath();
    g.moveTo(left, Math.round(y(v)) + 0.5);
    g.lineTo(width - right, Math.round(y(v)) + 0.5);
    g.stroke();
    g.fillStyle = color("dim");
    g.textAlign = "right";
    g.fillText(v === 0 ? "0" : axis.label(v, top_), left - 10, y(v));
  }
  g.textAlign = "center";
  g.textBaseline = "alphabetic";
  const most = Math.max(2, Math.floor(plotW / 90));
  const tick = ([10, 15, 30, 60, 120].find((s) => span / 1000 / s <= most) || 300) * 1000;
  for (let ago = 0; ago <= span; ago += tick) {
    const label = ago === 0 ? "now" : ago % 60000 === 0 ? `−${ago / 60000}m` : `−${ago / 1000}s`;
    g.fillText(label, Math.min(Math.max(x(now - ago), left + 14), width - right - 14), height - 6);
  }

  g.save();
  g.beginPath();
  g.rect(left, top - 2, plotW, plotH + 4);
  g.clip();
  for (const s of series) {
    if (!s.always && !s.values.some((v) => v > 0)) continue;
    g.beginPath();
    s.values.forEach((v, i) => {
      const px = x(times[i]), py = y(v);
      if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    if (s.fill) {
      const gradient = g.createLinearGradient(0, top, 0, top + plotH);
      gradient.addColorStop(0, s.color + "55");
      gradient.addColorStop(1, s.color + "00");
      g.lineTo(x(times[times.length - 1]), y(0));
      g.lineTo(x(times[0]), y(0));
      g.closePath();
      g.fillStyle = gradient;
      g.fill();
      g.beginPath();
      s.values.forEach((v, i) => {
        const px = x(times[i]), py = y(v);
        if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
      });
    }
    g.strokeStyle = s.color;
    g.lineWidth = 2.5;
    g.lineJoin = "round";
    g.shadowColor = s.color;
    g.shadowBlur = 8;
    g.stroke();
    g.shadowBlur = 0;
  }
  g.restore();
}

function legend(list, entries) {
  list.innerHTML = entries
    .map(([key, label, value]) => `<li><i style="background:${color(key) || key}"></i>${label} <b>${value}</b></li>`)
    .join("");
}

function drawCharts() {
  const times = points.map((p) => p.at);
  const rps = points.map(rpsOf);
  const latency = points.map(latencyOf);
  const latest = rps[rps.length - 1] || {};
  const shown = OUTCOMES.filter(([key]) => key === "reserved" || key === "sold_out" || rps.some((r) => r[key] > 0));
  drawChart(
    $("rps-chart"),
    times,
    shown.map(([key]) => ({ color: color(key), values: rps.map((r) => r[key]), fill: key === "sold_out" })),
    COUNTS,
  );
  legend($("rps-legend"), shown.map(([key, label]) => [key, label, compact(latest[key] || 0)]));
  const last = latency[latency.length - 1] || { p50: 0, p99: 0 };
  drawChart(
    $("latency-chart"),
    times,
    [
      { color: color("ok"), values: latency.map((l) => l.p50), fill: true },
      { color: color("sold_out"), values: latency.map((l) => l.p99) },
    ],
    LATENCY,
  );
  legend($("latency-legend"), [
    ["ok", "p50", durationText(last.p50)],
    ["sold_out", "p99", durationText(last.p99)],
  ]);
  // A sale sold out before the page opened is a line at zero.
  const sales = lastSales.slice(-SALE_COLORS.length).reverse();
  drawChart(
    $("stock-chart"),
    stockPoints.map((p) => p.at),
    sales.map((sale, i) => ({
      color: SALE_COLORS[i],
      values: stockPoints.map((p) => p.remaining[sale.id] ?? 0),
      fill: i === 0,
      always: true,
    })),
    COUNTS,
    Math.max(0, ...sales.map((sale) => sale.stock)),
  );
}

// ---- panels -------------------------------------------------------------

function segments(parts, total) {
  return parts
    .filter(([, value]) => value > 0)
    .map(([cls, value]) => `<span class="${cls}" style="width:${(100 * value) / total}%"></span>`)
    .join("");
}

function escape(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderSales(sales) {
  const box = $("sales");
  if (!sales.length) {
    box.innerHTML = `<p class="empty">no sale yet</p>`;
    return;
  }
  box.classList.toggle("few", sales.length <= 2);
  box.innerHTML = sales
    .slice(-6)
    .reverse()
    .map((sale) => `
      <div class="sale" data-sale-id="${escape(sale.id)}">
        <div class="top"><span class="name">${escape(sale.name)}</span>
          <span class="state ${sale.state}">${sale.state.replace("_", " ")}</span></div>
        <div class="figures"><span class="remaining">${whole(sale.remaining)}</span>
          <span class="of">left of ${whole(sale.stock)}<br>${whole(sale.paid)} paid · ${whole(sale.reserved)} awaiting payment</span></div>
        <div class="bar">${segments(
          [["paid", sale.paid], ["held", sale.reserved], ["remaining", sale.remaining]],
          Math.max(sale.stock, 1),
        )}</div>
      </div>`)
    .join("");
}

function renderOrders(orders) {
  $("orders").innerHTML = ORDER_STATES.map(
    ([key, label]) => `<div><output id="orders-${key}">${compact(orders[key])}</output>
      <label><i style="background:${color(key === "reserved" ? "held" : key)}"></i>${label}</label></div>`,
  ).join("");
  const total = Math.max(sum(orders), 1);
  $("orders-bar").innerHTML = segments(
    ORDER_STATES.map(([key]) => [key === "reserved" ? "held" : key, orders[key]]),
    total,
  );
}

function renderSnapshot(snapshot) {
  const rps = rpsOf(snapshot);
  const latency = latencyOf(snapshot);
  $("rps-total").textContent = compact(sum(rps));
  $("rps-reserved").textContent = compact(rps.reserved);
  $("rps-sold_out").textContent = compact(rps.sold_out);
  const idle = sum(rps) === 0;
  setMs("p50", latency.p50, idle);
  setMs("p99", latency.p99, idle);
  $("max").textContent = idle ? "no requests this second" : `max ${durationText(latency.max)}`;
  const requests = snapshot.nodes.reduce((a, n) => a + n.requests_total, 0);
  $("requests-total").textContent = `${whole(requests)} answered`;
  $("reserved-total").textContent = `${whole(snapshot.orders.reserved + snapshot.orders.paid)} units held`;
  $("in-flight").textContent = whole(snapshot.nodes.reduce((a, n) => a + n.in_flight, 0));
  $("unconfirmed").textContent = whole(snapshot.nodes.reduce((a, n) => a + n.unconfirmed, 0));
  const degrade = snapshot.nodes.map((n) => n.degrade).sort().pop() || "normal";
  $("degrade").className = `pill ${degrade}`;
  $("degrade").textContent = degrade.replace("_", " ");
  $("nodes").innerHTML = snapshot.nodes
    .map((n) => `<span class="node">node <b>${escape(n.id)}</b></span>`)
    .join("");
  $("clock").textContent = new Date(snapshot.at).toLocaleTimeString("en-GB");
  renderSales(snapshot.sales);
  renderOrders(snapshot.orders);
}

// ---- the stream ---------------------------------------------------------

function setLink(up) {
  $("link").className = up ? "link up" : "link down";
  $("link").querySelector("b").textContent = up ? "live" : "reconnecting";
}

function connect() {
  const events = new EventSource(EVENTS_URL);
  events.addEventListener("history", (event) => {
    points = JSON.parse(event.data);
    drawCharts();
  });
  events.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    if (!points.length || points[points.length - 1].at < snapshot.at) {
      points.push({ at: snapshot.at, nodes: snapshot.nodes });
    }
    points = points.filter((p) => p.at >= snapshot.at - WINDOW_MS);
    lastSales = snapshot.sales;
    stockPoints.push({ at: snapshot.at, remaining: Object.fromEntries(snapshot.sales.map((s) => [s.id, s.remaining])) });
    stockPoints = stockPoints.filter((p) => p.at >= snapshot.at - WINDOW_MS);
    setLink(true);
    renderSnapshot(snapshot);
    drawCharts();
    document.body.dataset.snapshots = String(++snapshots);
  });
  events.onerror = () => {
    setLink(false);
    if (events.readyState === EventSource.CLOSED) setTimeout(connect, RETRY_MS);
  };
}

window.addEventListener("resize", drawCharts);
renderOrders({ reserved: 0, paid: 0, expired: 0, cancelled: 0 });
connect();
