// The crawl dashboard: renders each snapshot the server streams (SSE), and
// sends pause / resume / stop. Everything from the crawl (URLs, titles, error
// messages) is hostile text: it only ever goes in via textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const num = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en"));
const fixed = (n, d = 1) => (n === undefined || n === null ? "–" : Number(n).toFixed(d));

function duration(s) {
  if (s === undefined || s === null) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function fillTable(table, rows, cells, rowClass) {
  const body = table.tBodies[0];
  const fresh = document.createElement("tbody");
  if (rows.length === 0) {
    const td = document.createElement("td");
    td.textContent = "none";
    td.className = "absent";
    td.colSpan = 99;
    fresh.appendChild(document.createElement("tr")).appendChild(td);
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    if (rowClass) tr.className = rowClass(row) || "";
    for (const cell of cells(row)) {
      const td = document.createElement("td");
      if (typeof cell === "object" && cell !== null) {
        td.textContent = cell.text;
        td.className = cell.cls || "";
        if (cell.title) td.title = cell.title;
      } else {
        td.textContent = cell === undefined || cell === null ? "" : String(cell);
      }
      tr.appendChild(td);
    }
    fresh.appendChild(tr);
  }
  table.replaceChild(fresh, body);
}

// Show a table when its field exists, else the note that says it is absent.
function present(name, table, value) {
  const note = document.querySelector(`.absent[data-for="${name}"]`);
  table.hidden = value === undefined;
  if (note) note.hidden = value !== undefined;
  return value !== undefined;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(points, now) {
  const chart = $("chart");
  const W = 800, H = 180, left = 40, bottom = 20, top = 10;
  chart.replaceChildren();
  const t0 = now - 3600;
  const shown = points.filter(([t]) => t >= t0);
  const peak = Math.max(1, ...shown.map(([, r]) => r));
  const x = (t) => left + ((t - t0) / 3600) * (W - left - 5);
  const y = (r) => H - bottom - (r / peak) * (H - bottom - top);
  for (const frac of [0, 0.5, 1]) {
    chart.appendChild(svg("line", { class: "grid", x1: left, x2: W, y1: y(peak * frac),
                                    y2: y(peak * frac) }));
    chart.appendChild(svg("text", { x: 2, y: y(peak * frac) + 4 }, fixed(peak * frac)));
  }
  for (const [label, ago] of [["-60 min", 3600], ["-30 min", 1800], ["now", 0]]) {
    chart.appendChild(svg("text", { x: Math.min(x(now - ago), W - 30), y: H - 5 }, label));
  }
  if (shown.length < 2) {
    chart.appendChild(svg("text", { x: W / 2 - 60, y: H / 2 }, "collecting samples…"));
    return;
  }
  const line = shown.map(([t, r]) => `${x(t).toFixed(1)},${y(r).toFixed(1)}`).join(" ");
  const first = x(shown[0][0]).toFixed(1), last = x(shown[shown.length - 1][0]).toFixed(1);
  chart.appendChild(svg("polygon", { class: "area",
    points: `${first},${H - bottom} ${line} ${last},${H - bottom}` }));
  chart.appendChild(svg("polyline", { class: "line", points: line }));
}

function render(snap) {
  const status = snap.status || {};
  const crawl = status.crawl || {};
  $("crawl-name").textContent = snap.crawl_name || "";
  $("problem").hidden = !snap.error;
  $("problem").textContent = snap.error ? "Redis: " + snap.error : "";
  $("state").textContent = crawl.state || "unknown";
  $("state").className = "state " + (crawl.state || "");
  $("reason").textContent = crawl.reason ? `(${crawl.reason})` : "";
  for (const name of ["queued", "leased", "done", "errors"]) {
    $("c-" + name).textContent = num(status[name]);
  }
  $("c-workers").textContent = num(status.workers)
    + (status.workers_dead ? ` (+${status.workers_dead} dead)` : "");
  const rate = status.rate || {};
  $("c-rate10").textContent = fixed(rate.last_10s);
  $("c-rate5m").textContent = fixed(rate.last_5m);
  $("c-eta").textContent = "eta_s" in status ? duration(status.eta_s) : "–";

  drawChart(snap.chart || [], snap.time);

  $("workers-count").textContent = `${num(status.workers)} live, ${num(status.workers_dead)} dead`;
  if (present("workers", $("workers"), status.worker_list)) {
    fillTable($("workers"), status.worker_list, (w) => [w.id, w.node, w.pid, num(w.pages),
      num(w.errors), fixed(w.rate), w.in_flight, duration(w.last_seen_s)],
      (w) => (w.alive === false ? "dead" : ""));
  }
  if (present("hosts", $("hosts"), status.top_hosts)) {
    fillTable($("hosts"), status.top_hosts, (h) => [h.host, num(h.queued),
      duration(h.next_in_s), h.held || ""]);
  }
  const held = (status.held && status.held.listed) || [];
  fillTable($("held"), held, (h) => [h.host, h.reason, num(h.queued), duration(h.seconds_left)]);
  if (present("error-types", $("error-types"), status.errors_by_type)) {
    fillTable($("error-types"), Object.entries(status.errors_by_type), ([t, n]) => [t, num(n)]);
  }
  if (present("status-classes", $("status-classes"), status.status_classes)) {
    fillTable($("status-classes"), Object.entries(status.status_classes),
      ([cls, n]) => [cls, num(n)]);
  }

  fillTable($("results"), snap.results || [], (r) => {
    const err = r.error ? `${r.error.type}: ${r.error.message}` : null;
    const when = r.fetched_at ? r.fetched_at.slice(11, 19) : "";
    return [when, r.status === null || r.status === undefined ? "–" : r.status,
      { text: r.url || "", cls: "url" }, err || r.title || "", fixed(r.elapsed_ms, 0)];
  }, (r) => (r.error ? "error" : ""));
  $("updated").textContent = new Date(snap.time * 1000).toLocaleTimeString();
}

async function act(action) {
  if (action === "stop" && !window.confirm("Stop the crawl on every node?")) return;
  const answer = await fetch("api/" + action, {
    method: "POST", headers: { "X-Crawl-Dashboard": "1" }, credentials: "same-origin" });
  if (!answer.ok) {
    $("problem").hidden = false;
    $("problem").textContent = `${action}: ${answer.status} ${await answer.text()}`;
  }
}

for (const action of ["pause", "resume", "stop"]) {
  $(action).addEventListener("click", () => act(action));
}

const events = new EventSource("api/events");
events.onmessage = (e) => {
  $("live").textContent = "live via server-sent events";
  render(JSON.parse(e.data));
};
// The last figures stay on the page, marked stale, while EventSource reconnects.
events.onerror = () => {
  $("live").textContent = "connection lost, reconnecting…";
  $("state").classList.add("stale");
};
