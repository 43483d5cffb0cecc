// The live facility map: the site plan drawn to scale from /api/layout, locomotives from the
// /api/live stream (read with fetch so the API key travels in a header, never in a URL) of one data
// flow: prod, or the one `?flow=` names and the picker switches to.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TRACK_GAUGE_M = 3.0; // drawn width of a locomotive body
const CAMERA_OFFSET_M = 2.6; // camera coverage bars run this far beside their track
const STATION_LABEL_OFFSET_M = -3.0;
const EVENTS_SHOWN = 60;

let key = null;
let layout = null;
let state = null;
let cameraHealth = {};
let selected = null;
let flow = new URLSearchParams(location.search).get("flow") || "prod";
let streamAbort = null;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { "X-API-Key": key } });
  if (response.status === 401 || response.status === 403) throw new Error("key");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// Geometry: a point `s` metres along a track's polyline, shifted `offset` metres to its left.
function segments(track) {
  const out = [];
  let s = 0;
  const p = track.polyline;
  for (let i = 0; i + 1 < p.length; i++) {
    const dx = p[i + 1][0] - p[i][0], dy = p[i + 1][1] - p[i][1];
    const len = Math.hypot(dx, dy);
    out.push({ s0: s, s1: s + len, x: p[i][0], y: p[i][1], ux: dx / len, uy: dy / len });
    s += len;
  }
  return out;
}

function pointAt(track, s, offset = 0) {
  const segs = track._segments;
  let seg = segs[segs.length - 1];
  for (const candidate of segs) if (s <= candidate.s1) { seg = candidate; break; }
  const t = Math.min(Math.max(s, 0), track.length_m) - seg.s0;
  return [seg.x + seg.ux * t - seg.uy * offset, seg.y + seg.uy * t + seg.ux * offset];
}

function pathAlong(track, s0, s1, offset = 0) {
  const points = [pointAt(track, s0, offset)];
  for (const seg of track._segments) if (seg.s1 > s0 && seg.s1 < s1) points.push(pointAt(track, seg.s1, offset));
  points.push(pointAt(track, s1, offset));
  return "M" + points.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join("L");
}

function drawPlan() {
  const svg = $("map");
  svg.textContent = "";
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const track of Object.values(layout.tracks)) {
    track._segments = segments(track);
    for (const [x, y] of track.polyline) {
      minX = Math.min(minX, x); maxX = Math.max(maxX, x);
      minY = Math.min(minY, y); maxY = Math.max(maxY, y);
    }
  }
  const margin = 8;
  svg.setAttribute("viewBox", `${minX - margin} ${minY - margin} ${maxX - minX + 2 * margin} ${maxY - minY + 2 * margin}`);
  const defs = el("defs", {}, svg);
  const hatch = el("pattern", { id: "hatch", width: 1, height: 1, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
  el("rect", { width: 0.5, height: 1, fill: "#9ca3af" }, hatch);

  const base = el("g", { id: "base" }, svg);
  for (const [sid, station] of Object.entries(layout.stations)) {
    const track = layout.tracks[station.track];
    el("path", { class: "station", id: `station-${sid}`, d: pathAlong(track, station.start_m, station.end_m), "stroke-width": 5.5, stroke: "#e5e7eb", fill: "none" }, base);
    const [x, y] = pointAt(track, (station.start_m + station.end_m) / 2, STATION_LABEL_OFFSET_M);
    el("text", { class: "station-label", x, y, "text-anchor": "middle" }, base).textContent = `${sid} · ${station.name}`;
  }
  for (const [tid, track] of Object.entries(layout.tracks)) {
    el("path", { class: "track", d: pathAlong(track, 0, track.length_m) }, base);
    const [x, y] = pointAt(track, 0, 0);
    el("text", { class: "label", x: x - 1, y: y + 0.5, "text-anchor": "end" }, base).textContent = tid;
  }
  const cams = el("g", { id: "cameras" }, svg);
  let row = 0;
  for (const [cid, camera] of Object.entries(layout.cameras)) {
    const track = layout.tracks[camera.track];
    const offset = CAMERA_OFFSET_M + 0.6 * (row++ % 2); // neighbours' overlaps stay visible
    const bar = el("path", { class: "camera unknown-health", id: `camera-${cid}`, d: pathAlong(track, camera.view.start_m, camera.view.end_m, offset) }, cams);
    el("title", {}, bar).textContent = `${cid}: ${camera.view.start_m}–${camera.view.end_m} m`;
  }
  el("g", { id: "unknown" }, svg);
  el("g", { id: "locos" }, svg);
}

function drawState() {
  const unknown = $("unknown"), locos = $("locos");
  unknown.textContent = "";
  locos.textContent = "";
  let count = 0;
  for (const t of state.tracks) {
    const track = layout.tracks[t.track_id];
    if (!track) continue;
    for (const [a, b] of t.unknown) el("path", { class: "unknown-span", d: pathAlong(track, a, b), stroke: "url(#hatch)", "stroke-width": TRACK_GAUGE_M, fill: "none" }, unknown);
    for (const loco of t.locos) {
      count++;
      const g = el("g", {
        class: `loco ${loco.moving ? "moving" : "standing"}${selected === loco.loco_id ? " selected" : ""}`,
        "data-loco-id": loco.loco_id, "data-track": t.track_id, "data-start": loco.start_m, "data-end": loco.end_m,
      }, locos);
      el("path", { d: pathAlong(track, loco.start_m, loco.end_m), "stroke-width": TRACK_GAUGE_M, stroke: loco.moving ? "#ea580c" : "#2563eb", fill: "none" }, g);
      for (const [seen, s] of [[loco.start_seen, loco.start_m], [loco.end_seen, loco.end_m]]) {
        if (!seen) el("path", { class: "end-unseen", d: pathAlong(track, s - 0.2, s + 0.2), stroke: "#111827", "stroke-width": TRACK_GAUGE_M + 0.8, fill: "none" }, g);
      }
      const [x, y] = pointAt(track, (loco.start_m + loco.end_m) / 2, -0.45);
      const name = [loco.model, loco.number].filter(Boolean).join(" ");
      el("text", { class: "loco-label", x, y, "text-anchor": "middle" }, g).textContent = name ? `${name} (${loco.loco_id})` : loco.loco_id;
      el("title", {}, g).textContent = `${loco.loco_id} on ${t.track_id}: ${loco.start_m.toFixed(1)}–${loco.end_m.toFixed(1)} m${loco.station ? " at " + loco.station : ""}`;
      g.addEventListener("click", () => select(loco.loco_id));
    }
    for (const station of t.stations) {
      const node = $(`station-${station.station_id}`);
      if (node) node.setAttribute("stroke", station.occupied_by.length ? "#dbeafe" : "#e5e7eb");
    }
  }
  $("summary").textContent = `${count} locomotive${count === 1 ? "" : "s"} · ${new Date(state.at).toLocaleTimeString()}`;
  if (selected) showDetails(selected, false);
}

function drawCameras() {
  for (const cid of Object.keys(layout.cameras)) {
    const node = $(`camera-${cid}`);
    if (node) node.setAttribute("class", `camera ${cameraHealth[cid] || "unknown-health"}`);
  }
}

function addEvent(event, atTop = true) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date(event.at).toLocaleTimeString();
  li.appendChild(time);
  const what = [event.kind.replace("_", " "), event.loco_id, event.station || event.camera_id, event.track_id].filter(Boolean).join(" · ");
  li.appendChild(document.createTextNode(what + (event.detail ? ` (${event.detail})` : "")));
  li.dataset.kind = event.kind;
  const list = $("events");
  if (atTop) list.prepend(li); else list.appendChild(li);
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

function select(locoId) {
  selected = locoId;
  drawState();
  showDetails(locoId, true);
}

async function showDetails(locoId, withHistory) {
  const loco = state.tracks.flatMap((t) => t.locos).find((l) => l.loco_id === locoId);
  if (!loco) { $("details").hidden = true; return; }
  $("details").hidden = false;
  $("loco-title").textContent = [loco.model, loco.number, `(${loco.loco_id})`].filter(Boolean).join(" ");
  const facts = { track: loco.track_id, station: loco.station || "—", from: `${loco.start_m.toFixed(1)} m${loco.start_seen ? "" : " (beyond view)"}`, to: `${loco.end_m.toFixed(1)} m${loco.end_seen ? "" : " (beyond view)"}`, state: loco.moving ? "moving" : "standing", "first seen": new Date(loco.first_seen).toLocaleString(), confidence: loco.confidence.toFixed(2) };
  const dl = $("loco-facts");
  dl.textContent = "";
  for (const [k, v] of Object.entries(facts)) {
    dl.appendChild(Object.assign(document.createElement("dt"), { textContent: k }));
    dl.appendChild(Object.assign(document.createElement("dd"), { textContent: v }));
  }
  if (!withHistory) return;
  const thumb = $("loco-thumb");
  thumb.hidden = true;
  if (loco.thumbnail_url) {
    const response = await fetch(loco.thumbnail_url, { headers: { "X-API-Key": key } });
    if (response.ok) { thumb.src = URL.createObjectURL(await response.blob()); thumb.hidden = false; }
  }
  const since = new Date(Date.now() - 6 * 3600 * 1000).toISOString();
  const history = await api(`/api/locomotives/${encodeURIComponent(locoId)}/history?since=${encodeURIComponent(since)}`).catch(() => []);
  const list = $("loco-history");
  list.textContent = "";
  for (const p of history.slice(-30).reverse()) {
    list.appendChild(Object.assign(document.createElement("li"), { textContent: `${new Date(p.at).toLocaleTimeString()} ${p.track_id} ${p.start_m.toFixed(1)}–${p.end_m.toFixed(1)} m${p.station ? " · " + p.station : ""}` }));
  }
}

function setLink(status) {
  const badge = $("link");
  badge.className = `badge ${status}`;
  badge.textContent = status === "live" ? "live" : status === "down" ? "reconnecting…" : status;
}

function handle(chunk) {
  let kind = "message", data = "";
  for (const line of chunk.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  if (kind === "state") { state = JSON.parse(data); drawState(); }
  else if (kind === "event") addEvent(JSON.parse(data));
}

async function stream() {
  for (;;) {
    const controller = new AbortController();
    streamAbort = controller;
    try {
      const response = await fetch(`/api/live?flow=${encodeURIComponent(flow)}`, { headers: { "X-API-Key": key }, signal: controller.signal });
      if (response.status === 401 || response.status === 403) return login("That key is not valid here.");
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setLink("live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) { handle(buffer.slice(0, cut)); buffer = buffer.slice(cut + 2); }
      }
    } catch (error) { if (!controller.signal.aborted) console.warn("live stream:", error); }
    if (controller.signal.aborted) continue; // the flow was switched: connect to the new one at once
    setLink("down");
    await sleep(2000);
  }
}

async function pollCameras() {
  for (;;) {
    try {
      const cameras = await api("/api/cameras");
      cameraHealth = Object.fromEntries(cameras.map((c) => [c.camera_id, c.state]));
      drawCameras();
    } catch (error) { console.warn("cameras:", error); }
    await sleep(5000);
  }
}

function login(message) {
  localStorage.removeItem("depotwatch-key");
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function start() {
  try {
    layout = await api("/api/layout");
  } catch (error) {
    return login(error.message === "key" ? "That key is not valid here." : error.message);
  }
  localStorage.setItem("depotwatch-key", key);
  $("login").hidden = true;
  $("app").hidden = false;
  const flows = (await api("/api/flows").catch(() => [])).map((f) => f.flow);
  if (!flows.includes(flow)) flow = "prod";
  if (flows.length > 1) {
    $("flow").replaceChildren(...flows.map((name) => new Option(name, name, false, name === flow)));
    $("flow").onchange = (e) => switchFlow(e.target.value); // once, though start() runs again after a login
    $("flow-picker").hidden = false;
  }
  drawPlan();
  await showFlow();
  pollCameras();
  stream();
}

async function showFlow() {
  const shown = flow;
  $("title").textContent = `${layout.name} — live${shown === "prod" ? "" : ` · ${shown}`}`;
  $("events").textContent = "";
  const recent = await api(`/api/events?limit=30&flow=${encodeURIComponent(shown)}`).catch(() => ({ items: [] }));
  if (flow !== shown) return; // switched again meanwhile: those events are another flow's
  for (const event of recent.items) addEvent(event, false);
}

async function switchFlow(name) {
  flow = name;
  history.replaceState(null, "", flow === "prod" ? location.pathname : `?flow=${encodeURIComponent(flow)}`);
  selected = null;
  $("details").hidden = true;
  streamAbort?.abort(); // the stream reconnects, to the new flow (none yet while the page starts)
  await showFlow();
}

$("login").addEventListener("submit", (e) => { e.preventDefault(); key = $("key").value.trim(); start(); });
const fromFragment = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromFragment) history.replaceState(null, "", location.pathname + location.search); // keep the key out of the address bar
key = fromFragment || localStorage.getItem("depotwatch-key");
if (key) start(); else login();
