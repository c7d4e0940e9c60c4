// campus-factory dashboard: one fetch of /api/v1/dashboard every 15 s, drawn with the DOM and SVG.
// Every value from the server is set with textContent (never innerHTML): reasons come from sites.
"use strict";

const STATES = ["requested", "queued", "running", "joined", "retiring"];
const COLORS = { requested: "#98a2b3", queued: "#f79009", running: "#2e90fa", joined: "#12b76a", retiring: "#7a5af8" };
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 15000;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function when(t) {
  if (t === null || t === undefined) return "never";
  return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function clock(t) { return new Date(t * 1000).toISOString().slice(11, 16); }

function hours(s) { return s >= 3600 ? (s / 3600).toFixed(0) + " h" : (s / 60).toFixed(0) + " min"; }

function token() { return sessionStorage.getItem("cf-token") || ""; }

async function load() {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  let resp;
  try {
    resp = await fetch("/api/v1/dashboard", { headers, cache: "no-store" });
  } catch (err) {
    return status("cannot reach the API: " + err, true);
  }
  if (resp.status === 401) {
    $("token-form").hidden = false;
    return status("this dashboard needs the API token", true);
  }
  if (!resp.ok) return status("the API answered " + resp.status, true);
  render(await resp.json());
  status("", false);
}

function status(text, isError) {
  const node = $("status");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

function render(d) {
  $("factory-name").textContent = d.factory;
  $("last-cycle").textContent = when(d.last_cycle_at);
  $("updated").textContent = when(d.now);
  for (const w of document.querySelectorAll(".window")) w.textContent = "(last " + hours(d.window_s) + ")";
  $("total-live").textContent = d.totals.live;
  $("total-running").textContent = d.totals.running;
  $("total-queued").textContent = d.totals.queued;
  $("total-idle").textContent = d.totals.idle_jobs;
  const total = d.accounting.total;
  $("waste-pct").textContent = total.waste_pct === null ? "n/a" : total.waste_pct.toFixed(1) + " %";
  $("waste-detail").textContent =
    total.wasted_core_hours.toFixed(1) + " of " + total.delivered_core_hours.toFixed(1) + " core-hours idle";
  $("spend").textContent = total.spend.toFixed(2);
  renderSites(d.sites);
  renderHistory(d.history);
  renderSupply(d.supply);
  renderDecisions(d);
}

function renderSites(sites) {
  const body = document.querySelector("#sites tbody");
  body.replaceChildren();
  for (const s of sites) {
    const badge = el("span", { class: "badge " + s.status.replace(" ", "-") }, s.status);
    const notes = [...s.health.reasons];
    if (s.control && s.control.reason) notes.push("operator: " + s.control.reason);
    if (s.scale) notes.push("scaled: floor " + (s.scale.floor ?? "-") + ", ceiling " + (s.scale.ceiling ?? "-"));
    const plan = s.plan ? s.plan.needed + " / " + s.plan.supply : "-";
    const row = el("tr", { "data-site": s.name },
      el("td", {}, el("strong", {}, s.name), el("div", { class: "notes" }, s.provider)),
      el("td", { class: "status" }, badge));
    for (const st of ["requested", "queued", "running", "joined", "retiring", "failed"]) {
      row.append(el("td", { class: "num pilot-count", "data-state": st }, s.pilots[st]));
    }
    row.append(el("td", { class: "num" }, plan), el("td", { class: "notes" }, notes.join("; ") || "-"));
    body.append(row);
  }
  if (!sites.length) body.append(el("tr", {}, el("td", { colspan: 10, class: "empty" }, "no sites configured")));
}

function axes(node, w, h, pad, ymax) {
  node.append(svg("line", { x1: pad, y1: h - pad, x2: w - 8, y2: h - pad, stroke: "#d0d5dd" }));
  node.append(svg("line", { x1: pad, y1: 8, x2: pad, y2: h - pad, stroke: "#d0d5dd" }));
  node.append(svg("text", { x: pad - 6, y: 14, "text-anchor": "end" }, String(ymax)));
  node.append(svg("text", { x: pad - 6, y: h - pad, "text-anchor": "end" }, "0"));
}

function legend(id, names) {
  const box = $(id);
  box.replaceChildren(...names.map(([name, color]) => {
    const sw = el("i");
    sw.style.background = color;
    return el("span", {}, sw, name);
  }));
}

function renderHistory(h) {
  const node = $("history-chart");
  node.replaceChildren();
  const W = 600, H = 220, P = 34, n = h.times.length;
  const stacked = h.times.map((_, i) => STATES.reduce((a, st) => a + (h.states[st] ? h.states[st][i] : 0), 0));
  const ymax = Math.max(1, ...stacked);
  axes(node, W, H, P, ymax);
  const x = (i) => P + (i * (W - P - 8)) / Math.max(1, n - 1);
  const y = (v) => H - P - (v * (H - P - 8)) / ymax;
  // a step chart: each sample holds until the next one
  const steps = (vals) => vals.flatMap((v, i) => (i + 1 < n ? [[x(i), y(v)], [x(i + 1), y(v)]] : [[x(i), y(v)]]));
  const base = new Array(n).fill(0);
  for (const st of STATES) {
    const vals = h.states[st] || new Array(n).fill(0);
    const top = base.map((b, i) => b + vals[i]);
    const pts = steps(top).concat(steps(base).reverse()).map(([px, py]) => px + "," + py);
    node.append(svg("polygon", { points: pts.join(" "), fill: COLORS[st], "fill-opacity": 0.85, "data-state": st }));
    top.forEach((v, i) => { base[i] = v; });
  }
  if (n) {
    node.append(svg("text", { x: P, y: H - P + 16 }, clock(h.times[0])));
    node.append(svg("text", { x: W - 8, y: H - P + 16, "text-anchor": "end" }, clock(h.times[n - 1])));
  }
  legend("history-legend", STATES.map((st) => [st, COLORS[st]]));
}

function renderSupply(rows) {
  const node = $("supply-chart");
  node.replaceChildren();
  const W = 600, H = 220, P = 34;
  const series = [["needed", "#f79009"], ["supply", "#2e90fa"], ["running", "#12b76a"]];
  const ymax = Math.max(1, ...rows.flatMap((r) => series.map(([k]) => r[k])));
  axes(node, W, H, P, ymax);
  const slot = (W - P - 8) / Math.max(1, rows.length);
  const bw = Math.min(28, (slot - 12) / series.length);
  rows.forEach((r, i) => {
    const x0 = P + i * slot + (slot - bw * series.length) / 2;
    series.forEach(([k, color], j) => {
      const hgt = (r[k] * (H - P - 8)) / ymax;
      node.append(svg("rect", { x: x0 + j * bw, y: H - P - hgt, width: bw - 2, height: hgt, fill: color,
        "data-site": r.site, "data-series": k }));
    });
    node.append(svg("text", { x: P + i * slot + slot / 2, y: H - P + 16, "text-anchor": "middle" }, r.site));
  });
  legend("supply-legend", series.map(([k, c]) => [k === "needed" ? "pilots needed" : k, c]));
}

function renderDecisions(d) {
  const list = $("decisions");
  list.replaceChildren(...d.decisions.map((x) =>
    el("li", { "data-kind": x.kind }, el("span", { class: "kind" }, x.kind), el("span", { class: "subject" }, x.subject), x.text)));
  if (!d.decisions.length) list.append(el("li", { class: "empty" }, "no plan yet"));
  const body = document.querySelector("#cycles tbody");
  body.replaceChildren(...d.cycles.map((c) => el("tr", {},
    el("td", {}, when(c.started_at)), el("td", { class: "num" }, c.duration_s.toFixed(2) + " s"),
    el("td", { class: "num" }, c.submitted), el("td", { class: "num" }, c.cancelled), el("td", { class: "num" }, c.errors))));
  const reqs = $("requests");
  reqs.replaceChildren(...d.requests.map((r) => el("li", {},
    r.kind.replace("_", " ") + " " + r.target + (r.pending ? " (pending)" : " -> " + r.result) +
    (r.reason ? " - " + r.reason : ""))));
  if (!d.requests.length) reqs.append(el("li", { class: "empty" }, "none"));
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("cf-token", $("token-input").value);
    $("token-form").hidden = true;
    load();
  });
  load();
  setInterval(load, REFRESH_MS);
});
