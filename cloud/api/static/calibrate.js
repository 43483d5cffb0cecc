// The calibration workbench: a camera's snapshot on a canvas; rail marks clicked on it and given their
// track metres and rail; after every change the cloud fits them as the layout loader does
// (POST …/calibration/fit) and the page shows each point's residual, the point the others disagree
// with, the verdict in the loader's words and the mounting the fit implies; the fit is drawn back
// over the picture from its homography, and the strip the LPE will read comes from …/calibration/strip.
// Save is PUT …/calibration (an admin key). The key is kept for this tab only (sessionStorage) and
// travels in the X-API-Key header, never in a URL.
"use strict";

const RAIL_OFFSET_M = Number(document.body.dataset.railOffsetM); // the server's, set where it serves the page
const TICK_HALF_M = 1.1; // a metre tick reaches this far either side of the centreline (as the CLI's overlay)
const VIEW_HALF_M = 2.0; // the view stretch's ends are drawn this far either side of it
const POINT_RADIUS_PX = 6; // screen pixels at any zoom, as are the widths below
const GRAB_PX = 10; // a press this close to a point grabs it
const PAN_THRESHOLD_PX = 4; // a press that moves further than this pans (or drags) instead of clicking
const ZOOM_STEP = 1.25;
const MAX_ZOOM = 16; // screen pixels per image pixel: enough to place a click to a tenth of a pixel
const FIT_DELAY_MS = 150; // typing a metre fits once the typing pauses
const FRESH_TIMEOUT_MS = 30000; // a node that sends no snapshot within this is named as not answering
const UNDO_DEPTH = 200;
const KEY_STORE = "depotwatch-admin-key";
const COLOUR = { rail: "#ffc800", tick: "#ffffff", view: "#00a0ff", point: "#00e000", miss: "#ff3030", halo: "#000000" };

let key = null;
let layout = null;
let cameraId = null;
let picture = null; // the snapshot as an ImageBitmap; null while the camera has none
let size = [1280, 720]; // the picture's pixels: the snapshot's, else the layout's resolution
let points = []; // each {u, v, track_m (null until given), rail: "left" | "right" | "custom", offset_m}
let undoStack = []; // earlier `points`, newest last
let fit = null; // the latest fit of the points that have metres
let fitted = []; // for each point of that fit, its index in `points`
let fitSeq = 0; // numbers each change of the points: an answer for earlier points is dropped
let fitTimer = null;
let view = { scale: 1, x: 0, y: 0 }; // canvas CSS px = image px × scale + (x, y)
let press = null; // the pointer press in progress: where, and the point it grabbed, if any
let stripUrl = null;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const clone = (value) => JSON.parse(JSON.stringify(value));
const cameraPath = (rest = "") => `/api/cameras/${encodeURIComponent(cameraId)}${rest}`;

function call(path, options = {}) {
  const headers = { "X-API-Key": key };
  if (options.body) headers["Content-Type"] = "application/json";
  return fetch(path, { ...options, headers });
}

async function body(response) {
  try { return await response.json(); } catch { return null; }
}

// One line from an error answer: the API's reason, its loader's problems, or each invalid field.
function reason(answer, response) {
  const detail = answer?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail?.problems)) return detail.problems.join("; ");
  if (Array.isArray(detail)) return detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
  return `HTTP ${response.status}`;
}

function element(name, text = "", attrs = {}) {
  const node = document.createElement(name);
  node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// -- key and camera ----------------------------------------------------------------------------

function askKey(message) {
  sessionStorage.removeItem(KEY_STORE);
  $("bench").hidden = true;
  $("key-error").textContent = message || "";
  $("key").focus();
}

async function start() {
  const response = await call("/api/layout");
  if (!response.ok) {
    const denied = response.status === 401 || response.status === 403;
    return askKey(denied ? "That key is not valid here." : reason(await body(response), response));
  }
  layout = await response.json();
  sessionStorage.setItem(KEY_STORE, key);
  $("key").value = "";
  $("key-error").textContent = "";
  $("bench").hidden = false;
  const health = await call("/api/cameras").then((r) => (r.ok ? r.json() : [])).catch(() => []);
  const states = Object.fromEntries(health.map((c) => [c.camera_id, c.state]));
  const ids = Object.keys(layout.cameras).sort();
  $("camera").replaceChildren(...ids.map((id) => {
    const camera = layout.cameras[id];
    return new Option(`${id}${camera.name ? ` — ${camera.name}` : ""}${states[id] ? ` (${states[id]})` : ""}`, id);
  }));
  const asked = new URLSearchParams(location.search).get("camera");
  await chooseCamera(ids.includes(asked) ? asked : ids[0]);
}

async function chooseCamera(id) {
  cameraId = id;
  $("camera").value = id;
  history.replaceState(null, "", `${location.pathname}?camera=${encodeURIComponent(id)}`);
  points = [];
  undoStack = [];
  fit = null;
  fitted = [];
  size = [...layout.cameras[id].resolution];
  $("save-result").textContent = "";
  await loadSnapshot();
  fitView();
  renderPoints();
  refit();
}

// The camera's latest snapshot; the resolution the layout gives when there is none.
async function loadSnapshot() {
  const meta = $("snapshot-meta");
  const response = await call(cameraPath("/snapshot"));
  if (!response.ok) {
    picture = null;
    meta.textContent = response.status === 404
      ? `camera ${cameraId} has sent no snapshot yet: "Fresh snapshot" asks its node for one`
      : reason(await body(response), response);
    meta.dataset.capturedAt = "";
    draw();
    return;
  }
  const blob = await response.blob();
  picture = await createImageBitmap(blob);
  size = [picture.width, picture.height];
  const at = response.headers.get("X-Captured-At") || "";
  const version = response.headers.get("X-Calibration-Version");
  meta.textContent = `snapshot of ${at ? new Date(at).toLocaleString() : "an unknown time"}, `
    + `${picture.width}×${picture.height} px${version ? `, taken under calibration ${version}` : ""}`;
  meta.dataset.capturedAt = at;
  draw();
}

async function capturedAt() {
  const response = await call(cameraPath("/snapshot/meta"));
  return response.ok ? (await response.json()).captured_at : null;
}

// Ask the camera's node for its current frame, and show it once it has come.
async function freshSnapshot() {
  const asked = cameraId, node = layout.cameras[asked].node, meta = $("snapshot-meta");
  $("fresh-snapshot").disabled = true;
  try {
    const before = await capturedAt();
    const response = await call(cameraPath("/snapshot"), { method: "POST" });
    if (!response.ok) {
      meta.textContent = `no fresh snapshot: ${reason(await body(response), response)}`;
      return;
    }
    meta.textContent = `asked ${node} for a fresh snapshot of ${asked}…`;
    const until = Date.now() + FRESH_TIMEOUT_MS;
    while (Date.now() < until && cameraId === asked) {
      await sleep(1000);
      const now = await capturedAt();
      if (now !== null && now !== before) {
        await loadSnapshot();
        refit();
        return;
      }
    }
    if (cameraId === asked) meta.textContent = `no fresh snapshot came within ${FRESH_TIMEOUT_MS / 1000} s: is ${node} online?`;
  } finally {
    $("fresh-snapshot").disabled = false;
  }
}

// -- the canvas: zoom, pan, drawing ------------------------------------------------------------

function layoutCanvas() {
  const canvas = $("picture");
  const width = $("canvas-wrap").clientWidth;
  const height = Math.max(200, Math.min(Math.round((width * size[1]) / size[0]), Math.round(innerHeight * 0.72)));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * devicePixelRatio);
  canvas.height = Math.round(height * devicePixelRatio);
}

function wholeScale() {
  const canvas = $("picture");
  return Math.min(canvas.clientWidth / size[0], canvas.clientHeight / size[1]);
}

function fitView() {
  layoutCanvas();
  const canvas = $("picture"), scale = wholeScale();
  view = { scale, x: (canvas.clientWidth - size[0] * scale) / 2, y: (canvas.clientHeight - size[1] * scale) / 2 };
  draw();
}

// Zoom by `factor` keeping the canvas point (cx, cy) where it is.
function zoomAt(factor, cx, cy) {
  const scale = Math.min(MAX_ZOOM, Math.max(wholeScale(), view.scale * factor));
  const k = scale / view.scale;
  view = { scale, x: cx - (cx - view.x) * k, y: cy - (cy - view.y) * k };
  draw();
}

function zoomCentre(factor) {
  const canvas = $("picture");
  zoomAt(factor, canvas.clientWidth / 2, canvas.clientHeight / 2);
}

function toImage(clientX, clientY) {
  const box = $("picture").getBoundingClientRect();
  return [(clientX - box.left - view.x) / view.scale, (clientY - box.top - view.y) / view.scale];
}

function toClient(u, v) {
  const box = $("picture").getBoundingClientRect();
  return [box.left + view.x + u * view.scale, box.top + view.y + v * view.scale];
}

// Track (metres along, offset) to a pixel through the fit's homography; null behind the camera.
function project(h, s, offset) {
  const w = h[2][0] * s + h[2][1] * offset + h[2][2];
  if (!(w > 1e-9)) return null;
  return [(h[0][0] * s + h[0][1] * offset + h[0][2]) / w, (h[1][0] * s + h[1][1] * offset + h[1][2]) / w];
}

function polyline(ctx, h, track, colour, width, px) {
  ctx.beginPath();
  let drawing = false;
  for (const [s, offset] of track) {
    const p = project(h, s, offset);
    if (p === null) { drawing = false; continue; }
    if (drawing) ctx.lineTo(p[0], p[1]); else ctx.moveTo(p[0], p[1]);
    drawing = true;
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = width * px;
  ctx.stroke();
}

// A text up and right of `at`, kept inside the picture, haloed so it reads over any background.
function label(ctx, text, at, px, colour) {
  ctx.font = `600 ${13 * px}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width;
  const x = Math.min(Math.max(at[0] + 4 * px, 2 * px), size[0] - width - 2 * px);
  const y = Math.min(Math.max(at[1] - 4 * px, 15 * px), size[1] - 3 * px);
  ctx.lineWidth = 3 * px;
  ctx.strokeStyle = COLOUR.halo;
  ctx.strokeText(text, x, y);
  ctx.fillStyle = colour;
  ctx.fillText(text, x, y);
}

// The fit over the picture: both rails along the view, a tick every metre with a label every 5 m,
// and the view stretch's two ends.
function drawFit(ctx, h, [start, end], px) {
  const along = [];
  for (let s = start; s <= end + 1e-6; s += 0.1) along.push(s);
  for (const offset of [-RAIL_OFFSET_M, RAIL_OFFSET_M]) polyline(ctx, h, along.map((s) => [s, offset]), COLOUR.rail, 2, px);
  for (let metre = Math.ceil(start); metre <= Math.floor(end); metre += 1) {
    const labelled = metre % 5 === 0;
    polyline(ctx, h, [[metre, -TICK_HALF_M], [metre, TICK_HALF_M]], COLOUR.tick, labelled ? 2 : 1, px);
    const at = project(h, metre, TICK_HALF_M);
    if (labelled && at) label(ctx, `${metre} m`, at, px, COLOUR.tick);
  }
  for (const bound of [start, end]) {
    polyline(ctx, h, [[bound, -VIEW_HALF_M], [bound, VIEW_HALF_M]], COLOUR.view, 3, px);
    const at = project(h, bound, VIEW_HALF_M);
    if (at) label(ctx, `view ${bound === start ? "from" : "to"} ${bound} m`, at, px, COLOUR.view);
  }
}

// Each point: a circle where it was clicked, its number, and a line to where the fit puts it.
function drawPoints(ctx, px) {
  const h = fit?.track_to_image;
  const outlier = fit?.outlier ?? null;
  points.forEach((p, i) => {
    const k = fitted.indexOf(i);
    const colour = k !== -1 && k === outlier ? COLOUR.miss : COLOUR.point;
    const there = h && k !== -1 && Number.isFinite(p.track_m) ? project(h, p.track_m, offsetOf(p)) : null;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2 * px;
    if (there) {
      ctx.beginPath();
      ctx.moveTo(p.u, p.v);
      ctx.lineTo(there[0], there[1]);
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.arc(p.u, p.v, POINT_RADIUS_PX * px, 0, 2 * Math.PI);
    ctx.stroke();
    label(ctx, String(i + 1), [p.u + 2 * px, p.v - 2 * px], px, colour);
  });
}

function draw() {
  const canvas = $("picture"), ctx = canvas.getContext("2d");
  const dpr = canvas.width / (canvas.clientWidth || 1);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#1d2433";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.x, dpr * view.y);
  ctx.imageSmoothingEnabled = view.scale < 2; // zoomed in, each image pixel shows as a square
  if (picture) ctx.drawImage(picture, 0, 0);
  else {
    ctx.fillStyle = "#4b5563";
    ctx.fillRect(0, 0, size[0], size[1]);
  }
  const px = 1 / view.scale; // one screen pixel, in image pixels
  if (fit?.accepted && fit.track_to_image && fit.view) drawFit(ctx, fit.track_to_image, fit.view, px);
  drawPoints(ctx, px);
}

// -- points ------------------------------------------------------------------------------------

function offsetOf(p) {
  if (p.rail === "left") return RAIL_OFFSET_M;
  if (p.rail === "right") return -RAIL_OFFSET_M;
  return p.offset_m;
}

function railOf(offset) {
  if (Math.abs(offset - RAIL_OFFSET_M) < 1e-9) return "left";
  if (Math.abs(offset + RAIL_OFFSET_M) < 1e-9) return "right";
  return "custom";
}

function remember(before = points) {
  undoStack.push(clone(before));
  if (undoStack.length > UNDO_DEPTH) undoStack.shift();
}

function changed() {
  renderPoints();
  draw();
  refit();
}

function undo() {
  if (!undoStack.length) return;
  points = undoStack.pop();
  changed();
}

function addPoint(u, v) {
  if (u < 0 || v < 0 || u > size[0] - 1 || v > size[1] - 1) return; // a mark is inside the picture
  remember();
  points.push({ u, v, track_m: null, rail: "left", offset_m: RAIL_OFFSET_M });
  changed();
}

function nearestPoint(clientX, clientY) {
  let best = null, bestDistance = GRAB_PX;
  points.forEach((p, i) => {
    const [x, y] = toClient(p.u, p.v);
    const distance = Math.hypot(x - clientX, y - clientY);
    if (distance <= bestDistance) { best = i; bestDistance = distance; }
  });
  return best;
}

function row(p, i) {
  const tr = element("tr", "", { "data-testid": "point-row", "data-index": String(i) });
  tr.append(element("th", String(i + 1)), element("td", "", { class: "pixel" }));
  const metres = element("input", "", { type: "number", step: "0.1", class: "metres", "data-testid": "point-metres", "aria-label": `point ${i + 1}: track metres` });
  metres.value = p.track_m ?? "";
  let before = null;
  metres.addEventListener("focus", () => { before = clone(points); });
  metres.addEventListener("input", () => {
    points[i].track_m = metres.value === "" || !Number.isFinite(metres.valueAsNumber) ? null : metres.valueAsNumber;
    refit(FIT_DELAY_MS);
  });
  metres.addEventListener("change", () => {
    if (before && JSON.stringify(before) !== JSON.stringify(points)) remember(before);
    before = clone(points);
  });
  const rail = element("select", "", { class: "rail", "data-testid": "point-rail", "aria-label": `point ${i + 1}: rail` });
  rail.append(new Option("left", "left"), new Option("right", "right"), new Option("offset…", "custom"));
  rail.value = p.rail;
  const offset = element("input", "", { type: "number", step: "0.01", class: "offset", "data-testid": "point-offset", "aria-label": `point ${i + 1}: offset metres, positive to the left` });
  offset.value = p.offset_m;
  offset.hidden = p.rail !== "custom";
  rail.addEventListener("change", () => {
    remember();
    points[i].offset_m = offsetOf(points[i]);
    points[i].rail = rail.value;
    offset.value = points[i].offset_m;
    offset.hidden = rail.value !== "custom";
    draw();
    refit();
  });
  offset.addEventListener("change", () => {
    remember();
    points[i].offset_m = offset.valueAsNumber;
    refit();
  });
  const remove = element("button", "×", { type: "button", class: "delete", "data-testid": "point-delete", title: `Delete point ${i + 1}` });
  remove.addEventListener("click", () => {
    remember();
    points.splice(i, 1);
    changed();
  });
  const railCell = element("td");
  railCell.append(rail, offset);
  const metresCell = element("td");
  metresCell.append(metres);
  const removeCell = element("td");
  removeCell.append(remove);
  tr.append(metresCell, railCell, element("td", "", { class: "px" }), element("td", "", { class: "cm" }), element("td", "", { class: "left-out" }), removeCell);
  return tr;
}

function renderPoints() {
  $("points").tBodies[0].replaceChildren(...points.map(row));
  showPixels();
  showResiduals();
}

function showPixels() {
  for (const tr of $("points").tBodies[0].rows) {
    const p = points[Number(tr.dataset.index)];
    tr.querySelector(".pixel").textContent = `${p.u.toFixed(1)}, ${p.v.toFixed(1)}`;
  }
}

function showResiduals() {
  for (const tr of $("points").tBodies[0].rows) {
    const k = fitted.indexOf(Number(tr.dataset.index));
    const r = k === -1 ? null : fit?.residuals[k];
    const cell = (name, text) => { tr.querySelector(name).textContent = text; };
    cell(".px", r ? r.pixels.toFixed(2) : "—");
    cell(".cm", r ? r.floor_cm.toFixed(1) : "—");
    cell(".left-out", r?.left_out_pixels != null ? r.left_out_pixels.toFixed(1) : "—");
    const outlier = k !== -1 && fit?.outlier === k;
    tr.classList.toggle("outlier", outlier);
    tr.dataset.outlier = String(outlier);
    tr.classList.toggle("unfitted", k === -1);
  }
}

// -- the fit -----------------------------------------------------------------------------------

function surveyed() {
  const complete = points.map((p, i) => [p, i]).filter(([p]) => Number.isFinite(p.track_m));
  return {
    indices: complete.map(([, i]) => i),
    body: { points: complete.map(([p]) => ({ image: [p.u, p.v], track_m: p.track_m, offset_m: offsetOf(p) })) },
  };
}

// The points changed: fit them. Numbered here, not when sent, so that an answer still on its way
// for earlier points is dropped even while this fit waits for its turn.
function refit(delay = 0) {
  clearTimeout(fitTimer);
  const seq = ++fitSeq;
  $("verdict").dataset.state = "fitting";
  fitTimer = setTimeout(() => runFit(seq), delay);
}

async function runFit(seq) {
  const { indices, body: survey } = surveyed();
  if (!indices.length) {
    fit = null;
    fitted = [];
    return showFit(points.length ? "Give the points their track metres." : "Click the marks on the picture.", "empty", []);
  }
  const response = await call(cameraPath("/calibration/fit"), { method: "POST", body: JSON.stringify(survey) });
  const answer = await body(response);
  if (seq !== fitSeq) return; // the points changed meanwhile: a newer fit is on its way
  if (!response.ok) {
    fit = null;
    fitted = [];
    return showFit("refused", "error", [reason(answer, response)]);
  }
  fit = answer;
  fitted = indices;
  const track = layout.cameras[cameraId].track;
  const verdict = fit.accepted
    ? `accepted: worst residual ${Math.max(...fit.residuals.map((r) => r.pixels)).toFixed(2)} px; `
      + (fit.view ? `${track} in view from ${fit.view[0]} to ${fit.view[1]} m` : `no metre of ${track} in the picture`)
    : "refused";
  showFit(verdict, fit.accepted ? "accepted" : "refused", fit.problems);
  if (fit.accepted && fit.view) showStrip(seq, survey);
}

function showFit(verdict, state, problems) {
  const missing = points.length - fitted.length;
  const left = fit && missing ? ` (${missing} point${missing > 1 ? "s" : ""} without metres left out)` : "";
  $("verdict").textContent = verdict + left;
  $("verdict").dataset.state = state;
  $("verdict").dataset.points = String(fitted.length);
  $("problems").replaceChildren(...problems.map((p) => element("li", p)));
  const outlier = fit?.outlier ?? null;
  $("outlier-note").textContent = outlier === null ? ""
    : `point ${fitted[outlier] + 1} disagrees with the others: fitted without it, the rest agree and miss it by `
      + `${(fit.residuals[outlier].left_out_pixels ?? 0).toFixed(1)} px; re-survey it`;
  showResiduals();
  showMounting();
  if (!(state === "accepted" && fit.view)) showStrip(null, null);
  draw();
}

function showMounting() {
  const m = fit?.mounting;
  const facts = m ? [
    ["height", `${m.height_m} m above the rail head`],
    ["lateral distance", `${Math.abs(m.lateral_m)} m, ${m.side} of the track`],
    ["field of view", `${m.hfov_deg}°`],
    ["roll", `${m.roll_deg}°`],
    ["view", `${m.view_m} m of track (${fit.view[0]}–${fit.view[1]} m)`],
    ["LPE envelope", fit.mounting_warnings.length ? "outside" : "inside"],
  ] : [];
  $("mounting").replaceChildren(...facts.flatMap(([k, v]) => [element("dt", k), element("dd", v)]));
  $("mounting-note").textContent = m ? "" : "Shown once the fit is accepted.";
  $("mounting-warnings").replaceChildren(...(fit?.mounting_warnings ?? []).map((w) => element("li", w)));
}

// The strip the LPE will read from the snapshot under this fit; hidden while there is no accepted fit.
async function showStrip(seq, survey) {
  const img = $("strip"), note = $("strip-note");
  if (survey === null) {
    img.hidden = true;
    note.textContent = "The strip shows once the fit is accepted.";
    return;
  }
  const response = await call(cameraPath("/calibration/strip"), { method: "POST", body: JSON.stringify(survey) });
  if (seq !== fitSeq) return;
  if (!response.ok) {
    img.hidden = true;
    note.textContent = reason(await body(response), response);
    return;
  }
  if (stripUrl) URL.revokeObjectURL(stripUrl);
  stripUrl = URL.createObjectURL(await response.blob());
  img.src = stripUrl;
  img.hidden = false;
  note.textContent = `track metres ${fit.view[0]} (left) to ${fit.view[1]} (right), rail head at the bottom`;
}

async function save() {
  const { indices, body: survey } = surveyed();
  const result = $("save-result");
  if (!indices.length) {
    result.textContent = "Nothing to save: give the points their track metres.";
    result.dataset.state = "refused";
    return;
  }
  result.textContent = "saving…";
  result.dataset.state = "saving";
  const response = await call(cameraPath("/calibration"), { method: "PUT", body: JSON.stringify(survey) });
  const answer = await body(response);
  if (!response.ok) {
    const outlier = answer?.detail?.outlier;
    result.textContent = `refused: ${reason(answer, response)}`
      + (outlier != null ? ` (point ${indices[outlier] + 1} disagrees with the others)` : "");
    result.dataset.state = "refused";
    return;
  }
  result.textContent = `saved: ${cameraId} calibrated, in view from ${answer.view[0]} to ${answer.view[1]} m`
    + (answer.command_id ? `; sent to ${answer.node_id} as command ${answer.command_id}` : "")
    + (answer.not_sent ? `; ${answer.not_sent}` : "");
  result.dataset.state = "saved";
  const refreshed = await call("/api/layout");
  if (refreshed.ok) layout = await refreshed.json();
}

function loadLayoutPoints() {
  remember();
  points = layout.cameras[cameraId].calibration.points.map((p) => (
    { u: p.image[0], v: p.image[1], track_m: p.track_m, rail: railOf(p.offset_m), offset_m: p.offset_m }));
  changed();
}

// -- events ------------------------------------------------------------------------------------

const canvas = $("picture");
canvas.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  canvas.setPointerCapture(e.pointerId);
  const grabbed = nearestPoint(e.clientX, e.clientY);
  const [u, v] = toImage(e.clientX, e.clientY);
  press = {
    x: e.clientX, y: e.clientY, moved: false, grabbed, from: { ...view }, before: clone(points),
    // where on the point it was grabbed, so that it does not jump to the pointer
    hold: grabbed === null ? null : [points[grabbed].u - u, points[grabbed].v - v],
  };
});
canvas.addEventListener("pointermove", (e) => {
  if (!press) return;
  const dx = e.clientX - press.x, dy = e.clientY - press.y;
  if (!press.moved && Math.hypot(dx, dy) <= PAN_THRESHOLD_PX) return;
  press.moved = true;
  if (press.grabbed === null) {
    view = { ...press.from, x: press.from.x + dx, y: press.from.y + dy };
  } else {
    const [u, v] = toImage(e.clientX, e.clientY), p = points[press.grabbed];
    p.u = Math.min(size[0] - 1, Math.max(0, u + press.hold[0]));
    p.v = Math.min(size[1] - 1, Math.max(0, v + press.hold[1]));
    showPixels();
  }
  draw();
});
canvas.addEventListener("pointerup", (e) => {
  if (!press) return;
  const done = press;
  press = null;
  if (done.grabbed !== null && done.moved) {
    remember(done.before);
    refit();
  } else if (done.grabbed !== null) {
    $("points").tBodies[0].rows[done.grabbed]?.querySelector(".metres").focus();
  } else if (!done.moved) {
    addPoint(...toImage(e.clientX, e.clientY));
  }
});
canvas.addEventListener("pointercancel", () => { press = null; });
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const box = canvas.getBoundingClientRect();
  zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - box.left, e.clientY - box.top);
}, { passive: false });
document.addEventListener("keydown", (e) => {
  if (!(e.ctrlKey || e.metaKey) || e.shiftKey || e.key.toLowerCase() !== "z") return;
  if (e.target instanceof HTMLInputElement) return; // undoing typing in a field is the field's own
  e.preventDefault();
  undo();
});
let wrapWidth = 0;
new ResizeObserver(() => {
  const width = $("canvas-wrap").clientWidth;
  if (width !== wrapWidth && cameraId !== null) fitView();
  wrapWidth = width;
}).observe($("canvas-wrap"));

$("zoom-in").addEventListener("click", () => zoomCentre(ZOOM_STEP));
$("zoom-out").addEventListener("click", () => zoomCentre(1 / ZOOM_STEP));
$("zoom-fit").addEventListener("click", fitView);
$("undo").addEventListener("click", undo);
$("load-points").addEventListener("click", loadLayoutPoints);
$("clear-points").addEventListener("click", () => { remember(); points = []; changed(); });
$("fresh-snapshot").addEventListener("click", freshSnapshot);
$("save").addEventListener("click", save);
$("camera").addEventListener("change", (e) => chooseCamera(e.target.value));
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  key = $("key").value.trim();
  if (key) start();
});

// For tests and scripts: where an image pixel is on the page now, at the current zoom and pan.
window.workbench = { imageToClient: (u, v) => toClient(u, v), zoom: () => view.scale };

const fromFragment = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromFragment) history.replaceState(null, "", location.pathname + location.search); // keep the key out of the address bar
key = fromFragment || sessionStorage.getItem(KEY_STORE);
if (key) start(); else askKey();
