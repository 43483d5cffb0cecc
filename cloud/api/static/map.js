// The live facility map: the site plan drawn to scale from /api/layout, locomotives from the
// /api/live stream (read with fetch so the API key travels in a header, never in a URL) of one data
// flow: prod, or the one `?flow=` names and the picker switches to.
//
// One SVG unit is one metre, so the plan scales with the window; text is sized in screen pixels
// instead (FONTS: in proportion to the scale, never below what a person reads without zooming, nor so
// large that labels stop fitting), and each locomotive's label is placed where it is readable: inside
// it when it fits, else under it, clear of every other label and locomotive.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TRACK_GAUGE_M = 3.0; // drawn width of a locomotive body
const CAMERA_OFFSET_M = 2.6; // camera coverage bars run this far beside their track
const CAMERA_ROW_M = 0.6; // neighbouring cameras' bars alternate between two rows, so overlaps show
const STATION_LABEL_OFFSET_M = -3.0;
// Labels under a locomotive start this far beside its track: just past the camera bars (0.25: half
// a bar's stroke) with a gap.
const BELOW_LABEL_M = CAMERA_OFFSET_M + CAMERA_ROW_M + 0.25 + 0.3;
const LABEL_PAD_M = 0.3; // room left at each end of a label inside its locomotive
const LABEL_GAP = 1.0; // least space beside a label, in its font's size: two side by side read as two
// Per kind of text: the smallest and largest size in screen pixels, and the size in metres in between.
const FONTS = {
  track: { minPx: 12, metres: 1.4, maxPx: 20 },
  station: { minPx: 10.5, metres: 1.1, maxPx: 15 },
  loco: { minPx: 11, metres: 1.2, maxPx: 17 },
};
const MARGIN_M = { side: 6, top: 6, bottom: 8 }; // around the tracks: their labels and camera bars
const EVENTS_SHOWN = 60;

let key = null;
let layout = null;
let state = null;
let cameraHealth = {};
let selected = null;
let flow = new URLSearchParams(location.search).get("flow") || "prod";
let streamAbort = null;
let stateReceived = null; // when (this browser's clock) the latest state arrived
// A new width or height is a new scale: text sizes and label places follow it.
const resizes = new ResizeObserver(() => requestAnimationFrame(placeLabels));

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

function pointsAlong(track, s0, s1, offset = 0) {
  const points = [pointAt(track, s0, offset)];
  for (const seg of track._segments) if (seg.s1 > s0 && seg.s1 < s1) points.push(pointAt(track, seg.s1, offset));
  points.push(pointAt(track, s1, offset));
  return points;
}

const svgPath = (points) => "M" + points.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join("L");

function pathAlong(track, s0, s1, offset = 0) {
  return svgPath(pointsAlong(track, s0, s1, offset));
}

// The outline of a strip `half` metres either side of a track from s0 to s1: a locomotive's body, or
// a stretch nobody sees (filled, so that its bounding box is what is drawn).
function band(track, s0, s1, half) {
  return svgPath([...pointsAlong(track, s0, s1, -half), ...pointsAlong(track, s0, s1, half).reverse()]) + "Z";
}

function boxOf(points) {
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  return { x0: Math.min(...xs), y0: Math.min(...ys), x1: Math.max(...xs), y1: Math.max(...ys) };
}

const overlaps = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
const within = (a, b) => a.x0 >= b.x0 && a.y0 >= b.y0 && a.x1 <= b.x1 && a.y1 <= b.y1;

function textBox(text) {
  const b = text.getBBox();
  return { x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height };
}

// Stretches of a track that no camera of the layout looks at: unknown, whatever the state says.
function uncovered(trackId, track) {
  const views = Object.values(layout.cameras).filter((c) => c.track === trackId)
    .map((c) => [c.view.start_m, c.view.end_m]).sort((a, b) => a[0] - b[0]);
  const gaps = [];
  let reached = 0;
  for (const [lo, hi] of views) {
    if (lo > reached) gaps.push([reached, lo]);
    reached = Math.max(reached, hi);
  }
  if (reached < track.length_m) gaps.push([reached, track.length_m]);
  return gaps;
}

// Why a stretch is hatched, told on hover: outside every view, or unseen now (a camera down, or the
// edge of a view where the camera sees its own frame but not the track).
function unknownSpan(parent, trackId, track, a, b, extra = "") {
  const span = el("path", {
    class: `unknown-span${extra}`, d: band(track, a, b, TRACK_GAUGE_M / 2), fill: "url(#hatch)",
    "data-track": trackId, "data-start": a, "data-end": b,
  }, parent);
  const why = extra ? "no camera of the layout looks here"
    : "no camera sees this now: its camera is down, or it lies at the edge of a view, where the camera cannot see the track";
  el("title", {}, span).textContent = `${trackId} ${a.toFixed(1)}–${b.toFixed(1)} m: ${why}`;
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
  const m = MARGIN_M;
  svg.setAttribute("viewBox", `${minX - m.side} ${minY - m.top} ${maxX - minX + 2 * m.side} ${maxY - minY + m.top + m.bottom}`);
  const defs = el("defs", {}, svg);
  const hatch = el("pattern", { id: "hatch", width: 1, height: 1, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
  el("rect", { width: 0.5, height: 1, fill: "#9ca3af" }, hatch);

  const base = el("g", { id: "base" }, svg);
  for (const [sid, station] of Object.entries(layout.stations)) {
    const track = layout.tracks[station.track];
    el("path", { class: "station", id: `station-${sid}`, d: pathAlong(track, station.start_m, station.end_m), "stroke-width": 5.5, stroke: "#e5e7eb", fill: "none" }, base);
    const [x, y] = pointAt(track, (station.start_m + station.end_m) / 2, STATION_LABEL_OFFSET_M);
    const label = el("text", { class: "station-label", x, y, "text-anchor": "middle" }, base);
    label._texts = [`${sid} · ${station.name}`, sid]; // the name only where it fits the station
    label._room = station.end_m - station.start_m;
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
    const offset = CAMERA_OFFSET_M + CAMERA_ROW_M * (row++ % 2);
    const bar = el("path", { class: "camera unknown-health", id: `camera-${cid}`, d: pathAlong(track, camera.view.start_m, camera.view.end_m, offset) }, cams);
    el("title", {}, bar).textContent = `${cid}: ${camera.view.start_m}–${camera.view.end_m} m`;
  }
  const notCovered = el("g", { id: "uncovered" }, svg);
  for (const [tid, track] of Object.entries(layout.tracks)) {
    for (const [a, b] of uncovered(tid, track)) unknownSpan(notCovered, tid, track, a, b, " uncovered");
  }
  el("g", { id: "unknown" }, svg);
  el("g", { id: "locos" }, svg);
  el("g", { id: "loco-labels" }, svg); // apart from the bodies: over all of them, and a click on a body hits it
}

// What to call a locomotive, longest first. A painted number already begins with its series
// (TEM2-2698), so the series is not written before it; the digits alone are the short form.
function names(loco) {
  if (loco.number) {
    const digits = loco.number.slice(loco.number.lastIndexOf("-") + 1);
    return digits && digits !== loco.number ? [loco.number, digits] : [loco.number];
  }
  if (loco.model) return [`${loco.model} · ${loco.loco_id}`, loco.model];
  return [loco.loco_id];
}

function fullName(loco) {
  if (loco.number) return `${loco.number} (${loco.loco_id})`;
  return loco.model ? `${loco.model} (${loco.loco_id})` : loco.loco_id;
}

// A number settled on more than one locomotive present: said wherever the locomotive is named.
function sharedNumber(loco) {
  return loco.number_also_on.length ? ` (identity conflict: the number is also on ${loco.number_also_on.join(", ")})` : "";
}

function drawState() {
  const unknown = $("unknown"), locos = $("locos"), labels = $("loco-labels");
  unknown.textContent = "";
  locos.textContent = "";
  labels.textContent = "";
  let count = 0;
  for (const t of state.tracks) {
    const track = layout.tracks[t.track_id];
    if (!track) continue;
    for (const [a, b] of t.unknown) unknownSpan(unknown, t.track_id, track, a, b);
    for (const loco of t.locos) {
      count++;
      const g = el("g", {
        class: `loco ${loco.moving ? "moving" : "standing"}${loco.number_also_on.length ? " conflict" : ""}${selected === loco.loco_id ? " selected" : ""}`,
        "data-loco-id": loco.loco_id, "data-track": t.track_id, "data-start": loco.start_m, "data-end": loco.end_m,
      }, locos);
      const s0 = Math.max(loco.start_m, 0), s1 = Math.max(Math.min(loco.end_m, track.length_m), s0); // drawn on its track
      const body = el("path", { class: "body", d: band(track, s0, s1, TRACK_GAUGE_M / 2) }, g);
      body._box = boxOf([...pointsAlong(track, s0, s1, -TRACK_GAUGE_M / 2), ...pointsAlong(track, s0, s1, TRACK_GAUGE_M / 2)]);
      for (const [seen, s] of [[loco.start_seen, loco.start_m], [loco.end_seen, loco.end_m]]) {
        if (!seen) el("path", { class: "end-unseen", d: pathAlong(track, s - 0.2, s + 0.2), stroke: "#111827", "stroke-width": TRACK_GAUGE_M + 0.8, fill: "none" }, g);
      }
      const label = el("text", { class: `loco-label${loco.moving ? " moving" : ""}`, "data-loco-id": loco.loco_id, "dominant-baseline": "central" }, labels);
      Object.assign(label, { _texts: names(loco), _track: track, _from: s0, _to: s1, _body: body._box });
      label.addEventListener("click", () => select(loco.loco_id)); // one under its locomotive takes clicks
      el("title", {}, g).textContent = `${fullName(loco)} on ${t.track_id}: ${loco.start_m.toFixed(1)}–${loco.end_m.toFixed(1)} m${loco.station ? " at " + loco.station : ""}${sharedNumber(loco)}`;
      g.addEventListener("click", () => select(loco.loco_id));
    }
    for (const station of t.stations) {
      const node = $(`station-${station.station_id}`);
      if (node) node.setAttribute("stroke", station.occupied_by.length ? "#dbeafe" : "#e5e7eb");
    }
  }
  $("summary").textContent = `${count} locomotive${count === 1 ? "" : "s"}`;
  placeLabels();
  if (selected) showDetails(selected, false);
}

// Text sizes for the scale the plan is shown at, then every label where it can be read.
function placeLabels() {
  const svg = $("map");
  const scale = svg.getScreenCTM()?.a; // screen pixels per metre
  if (!layout || !scale) return; // not laid out (hidden)
  const font = {};
  for (const [kind, f] of Object.entries(FONTS)) {
    font[kind] = Math.min(Math.max(f.metres * scale, f.minPx), f.maxPx) / scale;
    svg.style.setProperty(`--${kind}-font`, `${font[kind]}px`);
  }
  const vb = svg.viewBox.baseVal;
  const bounds = { x0: vb.x, y0: vb.y, x1: vb.x + vb.width, y1: vb.y + vb.height };
  const taken = [...svg.querySelectorAll("text.label")].map(textBox);
  const gap = LABEL_GAP * font.loco; // between two labels side by side, so each reads as one
  const free = (box, own = null) => {
    const wide = { ...box, x0: box.x0 - gap, x1: box.x1 + gap };
    return within(box, bounds) && !taken.some((t) => t !== own && overlaps(t, wide));
  };
  for (const text of svg.querySelectorAll("text.station-label")) {
    text.textContent = text._texts[0];
    if (text.getComputedTextLength() > text._room) text.textContent = text._texts[1];
    taken.push(textBox(text));
  }
  const labels = [...svg.querySelectorAll("text.loco-label")];
  taken.push(...labels.map((text) => text._body));
  for (const text of labels) {
    const box = place(text, font.loco, FONTS.loco.minPx / scale, free);
    if (box) taken.push(box);
  }
}

// Puts a locomotive's label at the first readable place: its full name inside it (smaller where that
// makes it fit), else under it (centred, or flush with either end), else its short name inside, else
// a second row under it, else the short name under it. Returns the box it takes, or null when none
// was free (the hover text and the details panel still name it).
function place(text, fontM, minM, free) {
  const { _texts: texts, _track: track, _from: s0, _to: s1, _body: body } = text;
  const middle = (s0 + s1) / 2;
  const room = { x0: body.x0 + LABEL_PAD_M, y0: body.y0, x1: body.x1 - LABEL_PAD_M, y1: body.y1 };
  const at = (name, s, offset, anchor) => {
    text.textContent = name;
    const [x, y] = pointAt(track, s, offset);
    for (const [k, v] of Object.entries({ x, y, "text-anchor": anchor })) text.setAttribute(k, v);
    return textBox(text);
  };
  const inside = (name) => { // in a smaller font, down to the least readable, rather than outside
    text.style.fontSize = "";
    let box = at(name, middle, 0, "middle");
    const shrink = (room.x1 - room.x0) / (box.x1 - box.x0);
    if (shrink < 1 && fontM * shrink >= minM) {
      text.style.fontSize = `${fontM * shrink * 0.98}px`;
      box = textBox(text);
    }
    return within(box, room) && free(box, body) ? box : null;
  };
  const below = (name, row) => {
    text.style.fontSize = "";
    const offset = BELOW_LABEL_M + fontM * (0.6 + 1.2 * row);
    for (const [s, anchor] of [[middle, "middle"], [s0, "start"], [s1, "end"]]) {
      const box = at(name, s, offset, anchor);
      if (free(box)) return box;
    }
    return null;
  };
  const [full, short] = [texts[0], texts[texts.length - 1]];
  const tries = [
    ["inside", () => inside(full)], ["below", () => below(full, 0)], ["inside", () => inside(short)],
    ["below", () => below(full, 1)], ["below", () => below(short, 0)], ["below", () => below(short, 1)],
  ];
  text.removeAttribute("display");
  for (const [placement, attempt] of tries) {
    const box = attempt();
    if (!box) continue;
    text.dataset.placement = placement;
    text.classList.toggle("below", placement === "below");
    return box;
  }
  text.dataset.placement = "none";
  text.setAttribute("display", "none");
  return null;
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
  $("details").scrollIntoView({ block: "nearest", behavior: "smooth" }); // under the plan when narrow
}

async function showDetails(locoId, withHistory) {
  const loco = state.tracks.flatMap((t) => t.locos).find((l) => l.loco_id === locoId);
  if (!loco) { $("details").hidden = true; return; }
  $("details").hidden = false;
  $("loco-title").textContent = fullName(loco);
  const share = (value, confidence) => (value ? `${value} (${Math.round(confidence * 100)} % of the votes)` : "not read yet");
  const facts = { series: share(loco.model, loco.model_confidence), number: share(loco.number, loco.number_confidence) + sharedNumber(loco), track: loco.track_id, station: loco.station || "—", from: `${loco.start_m.toFixed(1)} m${loco.start_seen ? "" : " (beyond view)"}`, to: `${loco.end_m.toFixed(1)} m${loco.end_seen ? "" : " (beyond view)"}`, state: loco.moving ? "moving" : "standing", "first seen": new Date(loco.first_seen).toLocaleString(), confidence: loco.confidence.toFixed(2) };
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
  if (kind === "state") { state = JSON.parse(data); stateReceived = Date.now(); drawState(); tick(); }
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
  resizes.observe($("map")); // again after a login: observing it twice is observing it once
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

// The header's clock, and how long ago the state shown arrived (the stream sends it whenever it
// changes, and at once on connecting): both move every second, whether or not anything changes.
function tick() {
  $("clock").textContent = new Date().toLocaleTimeString();
  const updated = $("updated");
  if (stateReceived !== null) {
    const s = Math.max(0, Math.round((Date.now() - stateReceived) / 1000));
    updated.textContent = `updated ${s < 120 ? `${s} s` : s < 7200 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h`} ago`;
    updated.setAttribute("datetime", state.at);
    updated.title = `state of ${new Date(state.at).toLocaleString()}`;
  }
}

function ticking() {
  tick();
  setTimeout(ticking, 1000 - (Date.now() % 1000) + 5); // just after each second turns
}

ticking();
$("login").addEventListener("submit", (e) => { e.preventDefault(); key = $("key").value.trim(); start(); });
const fromFragment = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromFragment) history.replaceState(null, "", location.pathname + location.search); // keep the key out of the address bar
key = fromFragment || localStorage.getItem("depotwatch-key");
if (key) start(); else login();
