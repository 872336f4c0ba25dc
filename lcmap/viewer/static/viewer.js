// lcmap view: a small Web Mercator tile map on a canvas, with no library to install.
// The server (lcmap/viewer/server.py) renders every tile; this page only places them.
"use strict";

const TILE = 256;
const canvas = document.getElementById("map");
const ctx = canvas.getContext("2d");
const state = {
  info: null, zoom: 0, cx: 128, cy: 128, opacity: 0.7, scene: "", highlight: null,
  original: {},
};
const images = new Map();
let pending = 0;
let drawQueued = false;

// Web Mercator: lon/lat <-> world pixels at zoom 0 (a 256 px square).
function project(lon, lat) {
  const s = Math.sin((Math.max(Math.min(lat, 85.0511), -85.0511) * Math.PI) / 180);
  return [((lon + 180) / 360) * TILE, (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * TILE];
}
function unproject(x, y) {
  const lon = (x / TILE) * 360 - 180;
  const n = Math.PI - (2 * Math.PI * y) / TILE;
  return [lon, (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)))];
}
function scale() { return Math.pow(2, state.zoom); }
function screenToWorld(px, py) {
  const s = scale();
  return [state.cx + (px - canvas.clientWidth / 2) / s, state.cy + (py - canvas.clientHeight / 2) / s];
}

function fit(bounds) {
  const [w, s, e, n] = bounds;
  const [x0, y0] = project(w, n);
  const [x1, y1] = project(e, s);
  state.cx = (x0 + x1) / 2;
  state.cy = (y0 + y1) / 2;
  const zx = Math.log2((canvas.clientWidth * 0.9) / Math.max(x1 - x0, 1e-12));
  const zy = Math.log2((canvas.clientHeight * 0.9) / Math.max(y1 - y0, 1e-12));
  state.zoom = Math.max(0, Math.min(zx, zy, state.info.maxzoom + 3));
}

function layerUrls() {
  const layers = [];
  if (state.scene !== "") layers.push({ alpha: 1, url: (z, x, y) => `tiles/scene/${state.scene}/${z}/${x}/${y}.png` });
  const hl = state.highlight === null ? "" : `&highlight=${state.highlight}`;
  layers.push({
    alpha: state.opacity,
    url: (z, x, y) => `tiles/map/${z}/${x}/${y}.png?v=${state.info.version}${hl}`,
  });
  return layers;
}

function requestDraw() {
  if (!drawQueued) { drawQueued = true; requestAnimationFrame(draw); }
}

function draw() {
  drawQueued = false;
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!state.info) return;
  ctx.imageSmoothingEnabled = false; // labels stay labels when a tile is stretched
  const tz = Math.max(0, Math.min(Math.round(state.zoom), state.info.maxzoom));
  const size = TILE * Math.pow(2, state.zoom - tz); // a tile's side on the screen
  const s = scale();
  const left = state.cx * s - w / 2, top = state.cy * s - h / 2;
  const n = Math.pow(2, tz);
  const x0 = Math.max(0, Math.floor(left / size)), x1 = Math.min(n - 1, Math.floor((left + w) / size));
  const y0 = Math.max(0, Math.floor(top / size)), y1 = Math.min(n - 1, Math.floor((top + h) / size));
  let missing = 0;
  for (const layer of layerUrls()) {
    ctx.globalAlpha = layer.alpha;
    for (let x = x0; x <= x1; x++) {
      for (let y = y0; y <= y1; y++) {
        const img = tile(layer.url(tz, x, y));
        if (img.complete && img.naturalWidth > 0) {
          // Whole-pixel edges, so that neighbouring tiles leave no seam between them.
          const dx = Math.floor(x * size - left), dy = Math.floor(y * size - top);
          ctx.drawImage(img, dx, dy, Math.floor((x + 1) * size - left) - dx, Math.floor((y + 1) * size - top) - dy);
        } else if (!img.complete) {
          missing++;
        }
      }
    }
  }
  ctx.globalAlpha = 1;
  document.body.dataset.state = missing === 0 ? "ready" : "loading";
  saveHash();
}

function tile(url) {
  let img = images.get(url);
  if (!img) {
    img = new Image();
    pending++;
    img.onload = img.onerror = () => { pending--; requestDraw(); };
    img.src = url;
    images.set(url, img);
    if (images.size > 2000) images.delete(images.keys().next().value);
  }
  return img;
}

function saveHash() {
  const [lon, lat] = unproject(state.cx, state.cy);
  history.replaceState(null, "", `#${state.zoom.toFixed(2)}/${lat.toFixed(6)}/${lon.toFixed(6)}`);
}

function readHash() {
  const parts = location.hash.slice(1).split("/").map(Number);
  if (parts.length !== 3 || parts.some((v) => !Number.isFinite(v))) return false;
  [state.zoom] = parts;
  [state.cx, state.cy] = project(parts[2], parts[1]);
  return true;
}

function formatNumber(v) {
  return v === null ? "?" : v.toLocaleString("en", { maximumFractionDigits: v < 10 ? 2 : 1 });
}

function renderLegend(classes) {
  const body = document.querySelector("#legend tbody");
  body.replaceChildren();
  state.original = {};
  for (const c of classes) {
    state.original[c.id] = c.name;
    const row = document.createElement("tr");
    row.dataset.id = c.id;
    const swatch = document.createElement("div");
    swatch.className = "swatch";
    swatch.style.background = c.colour;
    swatch.title = `class ${c.id}: highlight`;
    swatch.addEventListener("click", () => toggleHighlight(c.id));
    const name = document.createElement("input");
    name.value = c.name;
    name.setAttribute("aria-label", `name of class ${c.id}`);
    const cells = [swatch, name, formatNumber(c.hectares), formatNumber(c.share)];
    cells.forEach((content, i) => {
      const td = document.createElement("td");
      if (i >= 2) { td.className = "num"; td.textContent = content; } else td.append(content);
      row.append(td);
    });
    body.append(row);
  }
}

function updateAreas(classes) {
  for (const c of classes) {
    const row = document.querySelector(`#legend tr[data-id="${c.id}"]`);
    if (!row) continue;
    row.children[2].textContent = formatNumber(c.hectares);
    row.children[3].textContent = formatNumber(c.share);
  }
}

function toggleHighlight(id) {
  state.highlight = state.highlight === id ? null : id;
  document.querySelectorAll("#legend tr").forEach((r) => {
    r.classList.toggle("highlight", String(state.highlight) === r.dataset.id);
  });
  requestDraw();
}

async function loadInfo(first) {
  const info = await (await fetch("info.json")).json();
  const changed = !state.info || info.version !== state.info.version;
  state.info = info;
  document.getElementById("title").textContent = info.title;
  document.getElementById("exact").textContent = info.exact ? "" : "(areas from an overview; counting)";
  if (changed) renderLegend(info.classes); else updateAreas(info.classes);
  if (first) {
    const select = document.getElementById("scene");
    info.scenes.forEach((s, i) => select.append(new Option(`${s.name} (bands ${s.bands.join(",")})`, i)));
    if (info.scenes.length) { select.value = "0"; state.scene = "0"; }
    if (!readHash()) fit(info.bounds);
  }
  if (!info.exact) setTimeout(() => loadInfo(false), 1500);
  requestDraw();
}

async function query(px, py) {
  const [lon, lat] = unproject(...screenToWorld(px, py));
  const answer = await (await fetch(`point?lon=${lon}&lat=${lat}`)).json();
  const out = document.getElementById("query");
  out.replaceChildren();
  const line = (text) => { const p = document.createElement("div"); p.textContent = text; out.append(p); };
  line(`${lat.toFixed(6)}, ${lon.toFixed(6)}`);
  line(answer.class === null ? "outside the map" : `class ${answer.class}: ${answer.name}`);
  document.body.dataset.queried = answer.class === null ? "" : String(answer.class);
  for (const s of answer.scenes) line(`${s.name}: ${s.values.map((v) => (v === null ? "-" : v)).join(", ")}`);
}

async function saveNames() {
  const names = {};
  document.querySelectorAll("#legend tr[data-id]").forEach((r) => {
    names[r.dataset.id] = r.querySelector("input").value.trim() || state.original[r.dataset.id];
  });
  const message = document.getElementById("message");
  message.textContent = "writing...";
  const reply = await fetch("classes", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ names }),
  });
  const answer = await reply.json();
  if (!reply.ok) { message.textContent = answer.error; return; }
  message.textContent = `Wrote ${answer.map}` + (answer.model ? ` and ${answer.model}` : "");
  state.highlight = null;
  await loadInfo(false);
}

// Pan by dragging, zoom with the wheel around the pointer, a click without a drag queries.
let drag = null;
canvas.addEventListener("mousedown", (e) => {
  drag = { x: e.clientX, y: e.clientY, cx: state.cx, cy: state.cy, moved: false };
  canvas.classList.add("dragging");
});
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  state.cx = drag.cx - dx / scale();
  state.cy = drag.cy - dy / scale();
  requestDraw();
});
window.addEventListener("mouseup", (e) => {
  if (!drag) return;
  const rect = canvas.getBoundingClientRect();
  if (!drag.moved && e.target === canvas) query(e.clientX - rect.left, e.clientY - rect.top);
  drag = null;
  canvas.classList.remove("dragging");
});
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const rect = canvas.getBoundingClientRect();
  const px = e.clientX - rect.left, py = e.clientY - rect.top;
  const [wx, wy] = screenToWorld(px, py);
  state.zoom = Math.max(0, Math.min(state.zoom - e.deltaY / 300, state.info.maxzoom + 4));
  state.cx = wx - (px - canvas.clientWidth / 2) / scale();
  state.cy = wy - (py - canvas.clientHeight / 2) / scale();
  requestDraw();
}, { passive: false });
document.getElementById("opacity").addEventListener("input", (e) => { state.opacity = Number(e.target.value); requestDraw(); });
document.getElementById("scene").addEventListener("change", (e) => { state.scene = e.target.value; requestDraw(); });
document.getElementById("save").addEventListener("click", saveNames);
window.addEventListener("resize", requestDraw);

loadInfo(true);
