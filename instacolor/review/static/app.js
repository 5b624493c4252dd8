// instacolor review: one page, no build step. Talks to the JSON API of instacolor/review/app.py.
"use strict";
const TOKEN = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
const S = { batch: null, items: [], order: [], index: null, info: null, hints: [],
            instanceColors: {}, view: "color", zoom: 1, preview: null, seq: 0, version: 0 };

async function api(path, body) {
  const options = body === undefined ? {} : { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN } };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function badge(item) {
  const d = item.decision;
  if (item.status === "failed") return `<span class="badge failed">failed</span>`;
  if (!d) return `<span class="badge">${item.status}</span>`;
  return `<span class="badge ${d.decision}${d.stale ? " stale" : ""}" title="${d.time} ${d.reviewer}">${d.decision}</span>`;
}

function sortItems() {
  const key = $("sort").value, rank = (i) => (i.decision && !i.decision.stale ? 1 : 0);
  const by = {
    confidence: (a, b) => (a.mean_confidence ?? 2) - (b.mean_confidence ?? 2) || rank(a) - rank(b),
    status: (a, b) => rank(a) - rank(b) || a.status.localeCompare(b.status),
    name: (a, b) => a.name.localeCompare(b.name),
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

function renderGrid() {
  const counts = {};
  $("grid").innerHTML = S.order.map((n) => {
    const item = S.items[n], d = item.decision && !item.decision.stale ? item.decision.decision : "undecided";
    counts[d] = (counts[d] || 0) + 1;
    const conf = item.mean_confidence == null ? "" : `conf ${item.mean_confidence.toFixed(2)}`;
    const thumb = item.output ? `<img loading="lazy" src="/api/images/${n}/thumb.png?v=${S.version}" alt="">` : `<div class="failed">${item.error || item.status}</div>`;
    return `<div class="card" tabindex="0" data-index="${n}">${thumb}<div class="meta"><span>${item.name}</span>${badge(item)}<span>${conf}</span></div></div>`;
  }).join("");
  $("counts").textContent = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
}

function show(which) { $("grid-view").hidden = which !== "grid"; $("image-view").hidden = which !== "image"; }

async function route() {
  const m = location.hash.match(/^#\/image\/(\d+)$/);
  if (!S.batch) await loadBatch();
  if (!m) { S.index = null; await loadBatch(); renderGrid(); show("grid"); return; }
  await openImage(Number(m[1]));
}

async function openImage(n) {
  S.index = n; S.hints = []; S.instanceColors = {}; S.preview = null;
  $("correct-status").textContent = ""; $("decision-state").className = "";
  show("image");
  S.info = await api(`/api/images/${n}`);
  $("image-name").textContent = S.info.name;
  $("image-status").innerHTML = badge(S.info);
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
  else if (view === "confidence" && !S.batch.confidence) { main.src = picture("gray"); note.textContent = S.batch.confidence_note; }
  else main.src = picture(view);
  if (view === "color" && S.preview) note.textContent = "preview with hints (not applied yet)";
  if (view === "instances" && !(S.info.instance_list || []).length) note.textContent = "no instances for this image";
  applyZoom(); renderMarkers(); slide();
}

function applyZoom() {
  const d = S.info && S.info.display; if (!d) return;
  for (const img of [$("main"), $("top")]) { img.style.width = `${d[1] * S.zoom}px`; img.style.height = `${d[0] * S.zoom}px`; }
  $("zoom-level").textContent = `${Math.round(S.zoom * 100)}%`;
}

function slide() { $("top-clip").style.clipPath = `inset(0 ${100 - $("slider").value}% 0 0)`; }

function renderMarkers() {
  const [h, w] = S.info.size || [1, 1];
  let html = S.hints.map((p) => `<div class="marker" style="left:${100 * p.x / w}%;top:${100 * p.y / h}%;background:${p.color}"></div>`).join("");
  if (S.view === "instances" || document.querySelector('input[name="mode"]:checked').value === "instance") {
    html += (S.info.instance_list || []).map((i) => { const [x0, y0, x1, y1] = i.box;
      return `<div class="box" style="left:${100 * x0 / w}%;top:${100 * y0 / h}%;width:${100 * (x1 - x0) / w}%;height:${100 * (y1 - y0) / h}%;${S.instanceColors[i.index] ? `border-color:${S.instanceColors[i.index]}` : ""}">${i.index} ${i.name}</div>`; }).join("");
  }
  $("markers").innerHTML = html;
}

function renderHints() {
  const items = S.hints.map((p, k) => `<li><span class="badge" style="background:${p.color}">&nbsp;</span> point (${Math.round(p.x)}, ${Math.round(p.y)}) r ${p.radius} <button data-remove="${k}">x</button></li>`);
  for (const [k, c] of Object.entries(S.instanceColors)) items.push(`<li><span class="badge" style="background:${c}">&nbsp;</span> instance ${k} <button data-uncolor="${k}">x</button></li>`);
  $("hint-list").innerHTML = items.join("");
  renderMarkers();
}

function payload() {
  return { points: S.hints.map((p) => ({ x: p.x, y: p.y, color: p.color, radius: p.radius })),
           instance_colors: { ...S.instanceColors } };
}

async function requestPreview() {
  const seq = ++S.seq, status = $("correct-status");
  status.className = ""; status.textContent = "previewing…";
  try {
    const t0 = performance.now();
    const data = await api(`/api/images/${S.index}/preview`, payload());
    if (seq !== S.seq) return;
    S.preview = (S.hints.length || Object.keys(S.instanceColors).length) ? data.image : null;
    const shown = new Promise((resolve) => { $("main").onload = resolve; });
    setView(S.view === "compare" ? "compare" : "color");
    await shown;
    const ms = Math.round(performance.now() - t0);
    $("main").dataset.previewSeq = String(seq); $("main").dataset.previewMs = String(ms);
    status.textContent = `preview in ${ms} ms (server ${Math.round(data.seconds * 1000)} ms)`;
  } catch (err) { if (seq === S.seq) { status.className = "error"; status.textContent = err.message; } }
}

function stageClick(event) {
  if (S.index === null || !S.info.size) return;
  const rect = $("main").getBoundingClientRect(), [h, w] = S.info.size;
  const x = Math.min(w - 0.5, Math.max(0, (event.clientX - rect.left) / rect.width * w));
  const y = Math.min(h - 0.5, Math.max(0, (event.clientY - rect.top) / rect.height * h));
  const color = $("hint-color").value, radius = Number($("hint-radius").value) || 0;
  if (document.querySelector('input[name="mode"]:checked').value === "instance") {
    const hit = (S.info.instance_list || []).filter((i) => x >= i.box[0] && x <= i.box[2] && y >= i.box[1] && y <= i.box[3])
      .sort((a, b) => (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) - (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))[0];
    if (!hit) { $("correct-status").textContent = "no instance there"; return; }
    S.instanceColors[hit.index] = color;
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
    $("correct-status").textContent = `applied: new output ${data.record.output_sha256.slice(0, 12)}… in ${data.record.timings.total.toFixed(2)} s`;
  } catch (err) { status.className = "error"; status.textContent = `apply failed: ${err.message}`; }
}

function renderDecision() {
  const d = S.info.decision, box = $("decision-state");
  box.textContent = d ? `last: ${d.decision} by ${d.reviewer} at ${d.time}${d.stale ? " (the output changed since)" : ""}${d.comment ? ` — ${d.comment}` : ""}` : "no decision yet";
  $("history").innerHTML = (S.info.history || []).slice().reverse().map((e) => `<li>${e.time} ${e.reviewer}: ${e.decision}${e.comment ? ` — ${e.comment}` : ""}</li>`).join("");
}

async function decide(decision) {
  if (S.index === null) return;
  try {
    await api(`/api/images/${S.index}/decision`, { decision, comment: $("comment").value });
    $("comment").value = ""; S.version++;
    await loadBatch(); S.info = await api(`/api/images/${S.index}`); renderDecision();
    $("image-status").innerHTML = badge(S.info);
  } catch (err) { $("decision-state").className = "error"; $("decision-state").textContent = err.message; }
}

function step(delta) {
  if (S.index === null) return;
  const at = S.order.indexOf(S.index), next = S.order[at + delta];
  if (next !== undefined) location.hash = `#/image/${next}`;
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
  if (keys[e.key] && (inImage || e.key === "Escape")) { e.preventDefault(); keys[e.key](); }
});
$("grid").addEventListener("click", (e) => { const c = e.target.closest(".card"); if (c) location.hash = `#/image/${c.dataset.index}`; });
$("grid").addEventListener("keydown", (e) => { const c = e.target.closest(".card"); if (c && e.key === "Enter") location.hash = `#/image/${c.dataset.index}`; });
$("sort").addEventListener("change", () => { sortItems(); renderGrid(); });
$("tabs").addEventListener("click", (e) => { if (e.target.dataset.view) setView(e.target.dataset.view); });
$("stage").addEventListener("click", stageClick);
$("stage-box").addEventListener("wheel", (e) => { if (e.ctrlKey) { e.preventDefault(); zoom(e.deltaY < 0 ? 1.25 : 0.8); } }, { passive: false });
$("zoom-in").onclick = () => zoom(1.25); $("zoom-out").onclick = () => zoom(0.8);
$("prev").onclick = () => step(-1); $("next").onclick = () => step(1);
$("slider").addEventListener("input", slide);
$("apply").onclick = applyHints;
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
