// instacolor review: one page, no build step. Talks to the JSON API of instacolor/review/app.py.
// Every text that comes from data (file names, comments, reviewers, manifest errors) reaches
// the page through textContent or a property, never as HTML: see el() below.
"use strict";
const TOKEN = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
const S = { batch: null, items: [], order: [], index: null, info: null, hints: [],
            instanceColors: {}, view: "color", zoom: 1, preview: null, seq: 0, version: 0 };
const HEX = /^#[0-9a-fA-F]{6}$/;

// A DOM element: props are set as properties (className, title, dataset.*, style.*),
// children are elements or strings (text nodes). No string is ever parsed as HTML.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset" || key === "style") Object.assign(node[key], value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function fill(node, children) { node.replaceChildren(...children); }
const safeColor = (c) => (typeof c === "string" && HEX.test(c) ? c : "#808080");
const num = (v, fallback = 0) => (Number.isFinite(Number(v)) ? Number(v) : fallback);

async function api(path, body) {
  const options = { credentials: "same-origin", headers: { "X-Review-Token": TOKEN } };
  if (body !== undefined) {
    Object.assign(options, { method: "POST", body: JSON.stringify(body) });
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(String(data.error || `HTTP ${response.status}`));
  return data;
}

function badge(item) {
  const d = item.decision;
  if (item.status === "failed") return el("span", { className: "badge failed" }, "failed");
  if (!d) return el("span", { className: "badge" }, String(item.status));
  const kind = ["accept", "reject", "needs-work"].includes(d.decision) ? d.decision : "";
  return el("span", { className: `badge ${kind}${d.stale ? " stale" : ""}`,
                      title: `${d.time} ${d.reviewer}` }, String(d.decision));
}

function sortItems() {
  const key = $("sort").value, rank = (i) => (i.decision && !i.decision.stale ? 1 : 0);
  const by = {
    confidence: (a, b) => (a.mean_confidence ?? 2) - (b.mean_confidence ?? 2) || rank(a) - rank(b),
    status: (a, b) => rank(a) - rank(b) || String(a.status).localeCompare(String(b.status)),
    name: (a, b) => String(a.name).localeCompare(String(b.name)),
  }[key];
  S.order = [...S.items].sort((a, b) => by(a, b) || a.index - b.index).map((i) => i.index);
}

async function loadBatch() {
  S.batch = await api("/api/batch");
  S.items = S.batch.items;
  $("batch-info").textContent = `${S.batch.outdir} · ${S.batch.model} @ ${S.batch.working_size} px · reviewer ${S.batch.reviewer}`;
  $("confidence-note").textContent = S.batch.confidence_note || "";
  if (!S.batch.confidence && $("sort").value === "confidence") $("sort").value = "status";
  $("banner").hidden = !S.batch.warning; $("banner").textContent = S.batch.warning || "";
  sortItems();
}

function card(n, counts) {
  const item = S.items[n];
  const d = item.decision && !item.decision.stale ? item.decision.decision : "undecided";
  counts[d] = (counts[d] || 0) + 1;
  const conf = item.mean_confidence == null ? "" : `conf ${num(item.mean_confidence).toFixed(2)}`;
  const thumb = item.output && !item.refused
    ? el("img", { loading: "lazy", src: `/api/images/${num(n)}/thumb.png?v=${S.version}`, alt: "" })
    : el("div", { className: "failed" }, String(item.refused || item.error || item.status));
  return el("div", { className: "card", tabIndex: 0, dataset: { index: String(num(n)) } }, thumb,
            el("div", { className: "meta" }, el("span", {}, String(item.name)), badge(item),
               el("span", {}, conf)));
}

function renderGrid() {
  const counts = {};
  fill($("grid"), S.order.map((n) => card(n, counts)));
  $("counts").textContent = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
}

function show(which) { $("grid-view").hidden = which !== "grid"; $("image-view").hidden = which !== "image"; }

async function route() {
  const m = location.hash.match(/^#\/image\/(\d{1,9})$/);
  if (!S.batch) await loadBatch();
  if (!m) { S.index = null; await loadBatch(); renderGrid(); show("grid"); return; }
  await openImage(Number(m[1]));
}

async function openImage(n) {
  S.index = n; S.hints = []; S.instanceColors = {}; S.preview = null;
  $("correct-status").textContent = ""; $("decision-state").className = "";
  show("image");
  S.info = await api(`/api/images/${n}`);
  $("image-name").textContent = String(S.info.name);
  fill($("image-status"), [badge(S.info)]);
  fill($("reference"), [el("option", { value: "" }, "none"),
    ...(S.info.references || []).map((name) => el("option", { value: String(name) }, String(name)))]);
  const keptNames = (S.info.kept_references || []).map(String), dropped = (S.info.dropped_references || []).map(String);
  $("keep-references").checked = true; $("keep-label").hidden = !keptNames.length;
  $("kept-names").textContent = keptNames.join(", ");
  $("dropped-references").hidden = !dropped.length;
  $("dropped-references").textContent = dropped.length ? `left out: ${dropped.join("; ")}` : "";
  renderDecision(); renderHints(); setView(S.view);
}

function large() {  // zoomed in on a scan larger than the display copy: load more pixels
  const size = S.info && S.info.size, d = S.info && S.info.display;
  return S.zoom > 1.01 && size && d && Math.max(...size) > Math.max(...d);
}
function picture(kind) {
  const name = large() && (kind === "gray" || kind === "color") ? `${kind}-large` : kind;
  return `/api/images/${S.index}/${name}.png?v=${S.version}`;
}

function setView(view) {
  S.view = view;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  const main = $("main"), top = $("top"), note = $("view-note");
  note.textContent = "";
  $("top-clip").hidden = view !== "compare"; $("slider").hidden = view !== "compare";
  if (view === "compare") { main.src = picture("gray"); top.src = S.preview || picture("color"); }
  else if (view === "color") main.src = S.preview || picture("color");
  else if (view === "confidence" && !S.batch.confidence) { main.src = picture("gray"); note.textContent = S.batch.confidence_note || ""; }
  else main.src = picture(view);
  if (view === "color" && S.preview) note.textContent = "preview with hints (not applied yet)";
  if (view === "instances" && !(S.info.instance_list || []).length) note.textContent = "no instances for this image";
  applyZoom(); renderMarkers(); slide();
}

function applyZoom() {
  const d = S.info && S.info.display; if (!d) return;
  for (const img of [$("main"), $("top")]) { img.style.width = `${num(d[1]) * S.zoom}px`; img.style.height = `${num(d[0]) * S.zoom}px`; }
  $("zoom-level").textContent = `${Math.round(S.zoom * 100)}%`;
}

function slide() { $("top-clip").style.clipPath = `inset(0 ${100 - num($("slider").value)}% 0 0)`; }

function renderMarkers() {
  const [h, w] = (S.info && S.info.size) || [1, 1];
  const nodes = S.hints.map((p) => el("div", { className: "marker",
    style: { left: `${100 * p.x / w}%`, top: `${100 * p.y / h}%`, background: safeColor(p.color) } }));
  if (S.view === "instances" || document.querySelector('input[name="mode"]:checked').value === "instance") {
    for (const i of (S.info && S.info.instance_list) || []) {
      const [x0, y0, x1, y1] = i.box.map((v) => num(v)), color = S.instanceColors[i.index];
      const style = { left: `${100 * x0 / w}%`, top: `${100 * y0 / h}%`,
                      width: `${100 * (x1 - x0) / w}%`, height: `${100 * (y1 - y0) / h}%` };
      if (color) style.borderColor = safeColor(color);
      nodes.push(el("div", { className: "box", style }, `${num(i.index)} ${i.name}`));
    }
  }
  fill($("markers"), nodes);
}

function renderHints() {
  const swatch = (c) => el("span", { className: "badge", style: { background: safeColor(c) } }, "\u00a0");
  const items = S.hints.map((p, k) => el("li", {}, swatch(p.color),
    ` point (${Math.round(p.x)}, ${Math.round(p.y)}) r ${p.radius} `,
    el("button", { dataset: { remove: String(k) } }, "x")));
  for (const [k, c] of Object.entries(S.instanceColors)) {
    items.push(el("li", {}, swatch(c), ` instance ${k} `, el("button", { dataset: { uncolor: k } }, "x")));
  }
  fill($("hint-list"), items);
  renderMarkers();
}

function payload() {
  return { points: S.hints.map((p) => ({ x: p.x, y: p.y, color: p.color, radius: p.radius })),
           instance_colors: { ...S.instanceColors }, reference: $("reference").value || null,
           keep_references: $("keep-references").checked };
}

async function requestPreview() {
  const seq = ++S.seq, status = $("correct-status");
  status.className = ""; status.textContent = "previewing…";
  try {
    const t0 = performance.now();
    const data = await api(`/api/images/${S.index}/preview`, payload());
    if (seq !== S.seq) return;
    const image = String(data.image || "");
    if (!image.startsWith("data:image/png;base64,")) throw new Error("the preview is not a PNG");
    S.preview = (S.hints.length || Object.keys(S.instanceColors).length || $("reference").value
                 || !$("keep-references").checked) ? image : null;
    const shown = new Promise((resolve) => { $("main").onload = resolve; });
    setView(S.view === "compare" ? "compare" : "color");
    await shown;
    const ms = Math.round(performance.now() - t0);
    $("main").dataset.previewSeq = String(seq); $("main").dataset.previewMs = String(ms);
    status.textContent = `preview in ${ms} ms (server ${Math.round(num(data.seconds) * 1000)} ms)`;
  } catch (err) { if (seq === S.seq) { status.className = "error"; status.textContent = err.message; } }
}

function stageClick(event) {
  if (S.index === null || !S.info.size) return;
  const rect = $("main").getBoundingClientRect(), [h, w] = S.info.size;
  const x = Math.min(w - 0.5, Math.max(0, (event.clientX - rect.left) / rect.width * w));
  const y = Math.min(h - 0.5, Math.max(0, (event.clientY - rect.top) / rect.height * h));
  const color = safeColor($("hint-color").value), radius = Number($("hint-radius").value) || 0;
  if (document.querySelector('input[name="mode"]:checked').value === "instance") {
    const hit = (S.info.instance_list || []).filter((i) => x >= i.box[0] && x <= i.box[2] && y >= i.box[1] && y <= i.box[3])
      .sort((a, b) => (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) - (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))[0];
    if (!hit) { $("correct-status").textContent = "no instance there"; return; }
    S.instanceColors[num(hit.index)] = color;
  } else S.hints.push({ x, y, color, radius });
  renderHints(); requestPreview();
}

async function applyHints() {
  const status = $("correct-status");
  status.className = ""; status.textContent = "applying at full resolution…";
  try {
    const data = await api(`/api/images/${S.index}/apply`, payload());
    S.version++; S.preview = null; S.hints = []; S.instanceColors = {};
    await loadBatch(); await openImage(S.index);
    const r = data.record;
    $("correct-status").textContent = `applied: new output ${String(r.output_sha256).slice(0, 12)}… in ${num(r.timings && r.timings.total).toFixed(2)} s`;
  } catch (err) { status.className = "error"; status.textContent = `apply failed: ${err.message}`; }
}

function renderDecision() {
  const d = S.info.decision, box = $("decision-state");
  box.textContent = d ? `last: ${d.decision} by ${d.reviewer} at ${d.time}${d.stale ? " (the output changed since)" : ""}${d.comment ? ` — ${d.comment}` : ""}` : "no decision yet";
  fill($("history"), (S.info.history || []).slice().reverse().map((e) =>
    el("li", {}, `${e.time} ${e.reviewer}: ${e.decision}${e.comment ? ` — ${e.comment}` : ""}`)));
}

async function decide(decision) {
  if (S.index === null) return;
  try {
    await api(`/api/images/${S.index}/decision`, { decision, comment: $("comment").value });
    $("comment").value = ""; S.version++;
    await loadBatch(); S.info = await api(`/api/images/${S.index}`); renderDecision();
    fill($("image-status"), [badge(S.info)]);
  } catch (err) { $("decision-state").className = "error"; $("decision-state").textContent = err.message; }
}

function step(delta) {
  if (S.index === null) return;
  const at = S.order.indexOf(S.index), next = S.order[at + delta];
  if (next !== undefined) location.hash = `#/image/${num(next)}`;
}

function zoom(factor) {
  const wasLarge = large();
  S.zoom = factor === 0 ? 1 : Math.min(16, Math.max(0.25, S.zoom * factor));
  if (S.index !== null && large() !== wasLarge) setView(S.view); else applyZoom();
}

document.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName) && e.key !== "Escape") return;
  const inImage = S.index !== null, views = ["gray", "color", "confidence", "instances", "compare"];
  const keys = { ArrowRight: () => step(1), j: () => step(1), ArrowLeft: () => step(-1), k: () => step(-1),
    a: () => decide("accept"), r: () => decide("reject"), w: () => decide("needs-work"),
    Escape: () => { document.activeElement.blur(); location.hash = "#/"; },
    "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), "0": () => zoom(0) };
  if (inImage && e.key >= "1" && e.key <= "5") { setView(views[Number(e.key) - 1]); return; }
  if (Object.hasOwn(keys, e.key) && (inImage || e.key === "Escape")) { e.preventDefault(); keys[e.key](); }
});
const openCard = (c) => { location.hash = `#/image/${num(c.dataset.index)}`; };
$("grid").addEventListener("click", (e) => { const c = e.target.closest(".card"); if (c) openCard(c); });
$("grid").addEventListener("keydown", (e) => { const c = e.target.closest(".card"); if (c && e.key === "Enter") openCard(c); });
$("sort").addEventListener("change", () => { sortItems(); renderGrid(); });
$("tabs").addEventListener("click", (e) => { if (e.target.dataset.view) setView(e.target.dataset.view); });
$("stage").addEventListener("click", stageClick);
$("stage-box").addEventListener("wheel", (e) => { if (e.ctrlKey) { e.preventDefault(); zoom(e.deltaY < 0 ? 1.25 : 0.8); } }, { passive: false });
$("zoom-in").onclick = () => zoom(1.25); $("zoom-out").onclick = () => zoom(0.8);
$("prev").onclick = () => step(-1); $("next").onclick = () => step(1);
$("slider").addEventListener("input", slide);
$("apply").onclick = applyHints;
$("reference").addEventListener("change", requestPreview);
$("keep-references").addEventListener("change", requestPreview);
$("clear-hints").onclick = () => { S.hints = []; S.instanceColors = {}; renderHints(); requestPreview(); };
$("hint-list").addEventListener("click", (e) => {
  if (e.target.dataset.remove) S.hints.splice(Number(e.target.dataset.remove), 1);
  else if (e.target.dataset.uncolor) delete S.instanceColors[e.target.dataset.uncolor];
  else return;
  renderHints(); requestPreview();
});
document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener("change", renderMarkers));
document.querySelectorAll(".decide button").forEach((b) => { b.onclick = () => decide(b.dataset.decision); });
window.addEventListener("hashchange", () => route().catch(showError));
function showError(err) { $("banner").hidden = false; $("banner").textContent = err.message; }
route().catch(showError);
