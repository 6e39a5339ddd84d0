// minicnn explorer: choose an image, a model, a layer, a class and methods; watch the maps change.
//
// Everything shown comes from the server's JSON API (see README, "The explorer in the browser"):
// the page only lays the PNG overlays over the input picture and draws bars from the numbers it is given.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  models: [],          // /api/models
  methods: [],         // /api/methods
  samples: [],         // /api/samples
  model: null,         // a model's description
  layer: null,         // a layer name, or null for the model's default
  chosen: new Set(),   // method names
  target: null,        // a class name, or null for the top-1 class
  image: null,         // {blob, name}
  opacity: 0.5,
  result: null,        // the last /api/explain answer
  pictures: {},        // decoded images of the last answer, by key
  seq: 0,              // the number of the latest request (older answers are dropped)
  controller: null,    // aborts the request in flight when a newer one starts
};

// ------------------------------------------------------------------ small helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
  return v.toPrecision(3).replace(/\.?0+$/, (m) => (m.startsWith(".") ? "" : m));
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("cannot decode a picture from the server"));
    img.src = src;
  });
}

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
}

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  const e = $("error");
  e.textContent = message || "";
  e.hidden = !message;
}

// A canvas sized for a picture of shape [h, w]: `long` pixels on its longer side.
function sizeCanvas(canvas, shape, long) {
  const [h, w] = shape;
  const s = long / Math.max(h, w);
  canvas.width = Math.max(1, Math.round(w * s));
  canvas.height = Math.max(1, Math.round(h * s));
}

function drawPicture(canvas, img, { smooth = true, alpha = 1 } = {}) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = smooth;
  ctx.imageSmoothingQuality = "high";
  ctx.globalAlpha = alpha;
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

// A colour bar: the colours low to high, the raw values at both ends and the middle, and what a value is.
function colourBar(entry) {
  const bar = el("div", { class: "colourbar" });
  const strip = el("div", { class: "strip" });
  strip.style.background = `linear-gradient(to right, ${entry.colors.join(", ")})`;
  const [lo, hi] = entry.range;
  const ticks = el("div", { class: "ticks" },
    el("span", { text: fmt(lo) }), el("span", { text: fmt((lo + hi) / 2) }), el("span", { text: fmt(hi) }));
  bar.append(strip, ticks);
  if (entry.label) bar.append(el("div", { class: "label", text: entry.label }));
  return bar;
}

// ------------------------------------------------------------------ controls

function buildSamples() {
  const featured = $("featured");
  featured.replaceChildren();
  for (const s of state.samples.filter((s) => s.group === "featured")) {
    const b = el("button", { type: "button", class: "sample", title: s.about, "data-sample": s.name },
      el("img", { src: s.url, alt: "" }), el("span", { text: s.title }));
    b.addEventListener("click", () => chooseSample(s));
    featured.append(b);
  }
  const classes = [...new Set(state.samples.filter((s) => s.class).map((s) => s.class))];
  const select = $("cifar-class");
  select.replaceChildren(...classes.map((c) => el("option", { value: c, text: c })));
  select.addEventListener("change", buildCifarGrid);
  buildCifarGrid();
}

function buildCifarGrid() {
  const cls = $("cifar-class").value;
  const grid = $("cifar-grid");
  grid.replaceChildren();
  for (const s of state.samples.filter((s) => s.class === cls)) {
    const b = el("button", { type: "button", class: "thumb", title: s.about, "data-sample": s.name },
      el("img", { src: s.url, alt: s.title, loading: "lazy" }));
    b.addEventListener("click", () => chooseSample(s));
    grid.append(b);
  }
  markChosenSample();
}

function markChosenSample() {
  for (const b of document.querySelectorAll("[data-sample]")) {
    b.classList.toggle("chosen", !!state.image && b.dataset.sample === state.image.sample);
  }
}

async function chooseSample(s) {
  try {
    const r = await fetch(s.url);
    if (!r.ok) throw new Error((await r.json()).error);
    setImage(await r.blob(), s.title, s.name);
  } catch (e) {
    showError(e.message);
  }
}

function setImage(blob, name, sample = null) {
  state.image = { blob, name, sample };
  state.target = null;               // a new picture: explain its top-1 class first
  markChosenSample();
  explain();
}

function buildModels() {
  const select = $("model");
  select.replaceChildren(...state.models.map((m) =>
    el("option", { value: m.name, text: `${m.name}${m.accuracy ? ` (${m.accuracy}%)` : ""}` })));
  select.addEventListener("change", () => { chooseModel(select.value); explain(); });
}

function spatialLayers() {
  return state.model.layers.filter((l) => l.spatial);
}

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name) || state.models[0];
  $("model").value = state.model.name;
  state.layer = null;
  state.target = null;
  const layers = spatialLayers();
  $("layer").replaceChildren(...layers.map((l) => el("option", {
    value: l.name,
    text: `${"\u2003".repeat(l.depth)}${l.name} · ${l.type} · ${l.shape.join("×")}` +
          (l.name === state.model.default_layer ? "  (default)" : ""),
  })));
  $("layer-slider").max = String(layers.length - 1);
  showLayer(state.model.default_layer);
  buildTargets(null);
}

function showLayer(name) {
  const layers = spatialLayers();
  const i = Math.max(0, layers.findIndex((l) => l.name === name));
  $("layer").value = layers[i].name;
  $("layer-slider").value = String(i);
  const l = layers[i];
  $("layer-hint").textContent = `${l.name}: ${l.type}, ${l.shape[0]} maps of ${l.shape[1]}×${l.shape[2]} ` +
    `(for a ${state.model.input_size.slice(1).join("×")} input). Slide from the input (left) to the output (right).`;
}

let layerTimer = null;
function buildLayerControls() {
  $("layer").addEventListener("change", () => {
    state.layer = $("layer").value;
    showLayer(state.layer);
    explain();
  });
  $("layer-slider").addEventListener("input", () => {
    const l = spatialLayers()[Number($("layer-slider").value)];
    state.layer = l.name;
    showLayer(l.name);
    clearTimeout(layerTimer);
    layerTimer = setTimeout(explain, 180);
  });
}

function buildMethods() {
  const box = $("methods");
  box.replaceChildren();
  for (const m of state.methods) {
    const input = el("input", { type: "checkbox", value: m.name, checked: state.chosen.has(m.name) });
    input.addEventListener("change", () => {
      if (input.checked) state.chosen.add(m.name); else state.chosen.delete(m.name);
      if (state.chosen.size === 0) { state.chosen.add(m.name); input.checked = true; return; }
      explain();
    });
    box.append(el("label", { class: "method", title: m.value },
      input, el("span", { class: "name", text: m.title }), el("span", { class: "cost", text: m.cost })));
  }
}

function buildTargets(result) {
  const select = $("target");
  const classes = state.model.classes;
  const top = result ? result.predictions[0].name : null;
  select.replaceChildren(
    el("option", { value: "", text: top ? `the top-1 class (${top})` : "the top-1 class" }),
    ...classes.map((c) => el("option", { value: c, text: c })));
  select.value = state.target || "";
}

function buildDisplay() {
  $("opacity").addEventListener("input", () => {
    state.opacity = Number($("opacity").value) / 100;
    $("opacity-value").textContent = `${$("opacity").value}%`;
    drawMaps();
  });
  $("target").addEventListener("change", () => { state.target = $("target").value || null; explain(); });
}

function buildDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (f) setImage(f, f.name);
    $("file").value = "";
  });
  for (const ev of ["dragenter", "dragover"]) {
    document.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    document.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  document.addEventListener("drop", (e) => {
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) setImage(f, f.name);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.type.startsWith("image/"));
    if (item) setImage(item.getAsFile(), "pasted image");
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
}

// ------------------------------------------------------------------ asking the server

async function explain() {
  if (!state.image || !state.model) return;
  const seq = ++state.seq;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const q = new URLSearchParams({ model: state.model.name, method: [...state.chosen].join(",") });
  if (state.layer) q.set("layer", state.layer);
  if (state.target) q.set("target", state.target);
  document.body.dataset.busy = "1";
  const names = state.methods.filter((m) => state.chosen.has(m.name)).map((m) => m.title).join(", ");
  const started = performance.now();
  const tick = setInterval(() => setStatus(`computing ${names}… ${((performance.now() - started) / 1000).toFixed(1)} s`), 200);
  setStatus(`computing ${names}…`);
  try {
    const r = await fetch(`/api/explain?${q}`, { method: "POST", body: state.image.blob, signal: controller.signal });
    const body = await r.json();
    if (seq !== state.seq) return;
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    await render(body);
    if (seq !== state.seq) return;
    showError("");
    setStatus(`${body.model} · ${body.layer || "no layer"} · explained '${body.target.name}' in ${body.seconds.toFixed(2)} s`);
  } catch (e) {
    if (e.name === "AbortError" || seq !== state.seq) return;
    showError(e.message);
    setStatus("the last request was refused; the page shows the answer before it");
  } finally {
    clearInterval(tick);
    if (seq === state.seq) document.body.dataset.busy = "0";
  }
}

// ------------------------------------------------------------------ showing the answer

async function render(result) {
  const pictures = { input: await loadImage(result.input.png) };
  for (const [key, m] of Object.entries(result.maps)) pictures[key] = await loadImage(m.png);
  const steps = result.gradcam_steps;
  if (steps) {
    for (const m of steps.maps) pictures[`A${m.k}`] = await loadImage(m.png);
    pictures.weighted_sum = await loadImage(steps.weighted_sum.png);
    pictures.relu = await loadImage(steps.relu.png);
  }
  state.result = result;
  state.pictures = pictures;

  const input = $("input-canvas");
  sizeCanvas(input, result.input.shape, 512);
  drawPicture(input, pictures.input);
  const [h, w] = result.input.shape;
  const [ih, iw] = result.image.shape;
  $("input-caption").textContent =
    `${state.image.name}: ${ih}×${iw} pixels (height × width), seen by ${result.model} as ${h}×${w}`;

  renderPredictions(result);
  buildTargets(result);
  $("question-class").textContent = `'${result.target.name}'`;
  $("maps-title").textContent =
    `Explanations of '${result.target.name}' (class ${result.target.index}, y = ${fmt(result.target.score)})`;
  renderMaps(result);
  renderSteps(result);
  drawMaps();
  const maps = $("maps");
  maps.dataset.target = result.target.name;
  maps.dataset.model = result.model;
  maps.dataset.layer = result.layer || "";
}

function renderPredictions(result) {
  const list = $("predictions");
  list.replaceChildren();
  for (const p of result.predictions) {
    const bar = el("span", { class: "pbar" });
    bar.style.width = `${(100 * p.probability).toFixed(1)}%`;
    const b = el("button", { type: "button", class: "prediction", "data-class": p.name,
                             title: `explain '${p.name}'` },
      el("span", { class: "pname", text: p.name }),
      el("span", { class: "ptrack" }, bar),
      el("span", { class: "pvalue", text: `${(100 * p.probability).toFixed(1)}%` }),
      el("span", { class: "plogit", text: `y = ${fmt(p.logit)}` }));
    b.classList.toggle("target", p.index === result.target.index);
    b.addEventListener("click", () => { state.target = p.name; explain(); });
    list.append(el("li", {}, b));
  }
}

function renderMaps(result) {
  const maps = $("maps");
  maps.replaceChildren();
  const byKey = Object.fromEntries(state.methods.map((m) => [m.key, m]));
  for (const [key, entry] of Object.entries(result.maps)) {
    if (!byKey[key]) continue;       // e.g. gradcam_upsampled: the same map at the input's size
    const canvas = el("canvas", { "data-key": key, "data-display": entry.display });
    sizeCanvas(canvas, result.input.shape, 512);
    const where = byKey[key].uses_layer && result.layer ? ` · ${result.layer}` : "";
    const shape = entry.shape.join("×");
    const figure = el("figure", { class: "map" },
      el("figcaption", {}, el("b", { text: entry.title }), el("span", { text: `${where} · raw ${shape}` })),
      canvas,
      entry.display === "gradient"
        ? el("div", { class: "gradient-note", text: byKey[key].value })
        : colourBar(entry),
      entry.note ? el("div", { class: "map-note", text: entry.note }) : null);   // where relevance went, all zero
    maps.append(figure);
  }
}

function drawMaps() {
  const result = state.result;
  if (!result) return;
  for (const canvas of document.querySelectorAll("#maps canvas, #step-overlay canvas")) {
    const key = canvas.dataset.key;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (canvas.dataset.display === "gradient") {
      drawPicture(canvas, state.pictures[key]);
    } else {
      drawPicture(canvas, state.pictures.input);
      drawPicture(canvas, state.pictures[key], { alpha: state.opacity });
    }
  }
}

function renderSteps(result) {
  const steps = result.gradcam_steps;
  $("steps").hidden = !steps;
  if (!steps) return;
  const [h, w] = steps.shape;
  $("steps-lead").textContent =
    `Layer ${steps.layer} holds K = ${steps.K} feature maps A^k of ${h}×${w}. One backward pass gives ` +
    `α_k = mean over i,j of ∂y^c/∂A^k_ij for c = '${result.target.name}': how much the class score rises ` +
    `when map k brightens. Grad-CAM is ReLU(Σ_k α_k A^k).`;
  drawAlphaChart(steps);

  const box = $("feature-maps");
  box.replaceChildren();
  const amax = Math.max(...steps.alpha.map(Math.abs), 1e-12);
  const card = (m) => {
    const canvas = el("canvas", { class: "pixels" });
    sizeCanvas(canvas, m.shape, 160);
    drawPicture(canvas, state.pictures[`A${m.k}`], { smooth: false });
    const bar = el("span", { class: `abar ${m.alpha < 0 ? "neg" : "pos"}` });
    bar.style.width = `${(50 * Math.abs(m.alpha) / amax).toFixed(1)}%`;
    return el("figure", { class: `fmap ${m.side}` },
      el("figcaption", { text: `A^${m.k}` }),
      canvas,
      el("div", { class: "atrack", title: "α_k, on the scale of the largest |α|" }, bar),
      el("div", { class: "numbers" },
        el("span", { text: `α = ${fmt(m.alpha)}` }),
        el("span", { text: `mean A = ${fmt(m.mean)}` }),
        el("span", { text: `α·mean A = ${fmt(m.contribution)}` })));
  };
  const group = (side, title) => {
    const maps = steps.maps.filter((m) => m.side === side);
    if (maps.length) box.append(el("div", { class: `fgroup ${side}` }, el("h3", { text: title }), ...maps.map(card)));
  };
  group("for", `Adding most to Σ_k α_k A^k for '${result.target.name}' (largest α_k · mean A^k)`);
  group("against", "Taking most away");
  box.append(el("p", { class: "hint", text:
    "Each A^k on its own colour scale, 0 (dark) to its largest value (yellow); the bar is α_k " +
    "(right: positive, left: negative)." }));

  const stepFigure = (id, title, entry, picture) => {
    const canvas = el("canvas", { class: "pixels" });
    sizeCanvas(canvas, entry.shape, 240);
    drawPicture(canvas, picture, { smooth: false });
    $(id).replaceChildren(el("figcaption", { text: title }), canvas, colourBar(entry));
  };
  stepFigure("step-sum", "Σ_k α_k A^k", steps.weighted_sum, state.pictures.weighted_sum);
  stepFigure("step-relu", "ReLU(Σ_k α_k A^k) = Grad-CAM", steps.relu, state.pictures.relu);
  const overlay = el("canvas", { "data-key": "gradcam", "data-display": "heat" });
  sizeCanvas(overlay, result.input.shape, 240);
  $("step-overlay").replaceChildren(el("figcaption", { text: "over the input" }), overlay,
    result.maps.gradcam ? colourBar(result.maps.gradcam) : null);
}

function drawAlphaChart(steps) {
  const canvas = $("alpha-chart");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, K = steps.alpha.length;
  ctx.clearRect(0, 0, W, H);
  const amax = Math.max(...steps.alpha.map(Math.abs), 1e-12);
  const mid = H / 2, bw = W / K;
  const shown = new Set(steps.maps.map((m) => m.k));
  for (let k = 0; k < K; k++) {
    const a = steps.alpha[k];
    const len = (Math.abs(a) / amax) * (mid - 8);
    ctx.fillStyle = shown.has(k) ? (a >= 0 ? "#c1121f" : "#1d4ed8") : (a >= 0 ? "#f4a3a8" : "#9db4f0");
    ctx.fillRect(k * bw + bw * 0.1, a >= 0 ? mid - len : mid, Math.max(1, bw * 0.8), len);
  }
  ctx.fillStyle = "#333";
  ctx.fillRect(0, mid, W, 2);
  $("alpha-hint").textContent = `α_k for all ${K} maps, k = 0 … ${K - 1} from left to right ` +
    `(up: more of map k raises y^c; down: it lowers it; dark: the maps shown below). Largest |α_k| = ${fmt(amax)}.`;
}

// ------------------------------------------------------------------ start

async function start() {
  try {
    const [models, methods, samples] = await Promise.all(
      [getJSON("/api/models"), getJSON("/api/methods"), getJSON("/api/samples")]);
    state.models = models.models;
    state.methods = methods.methods;
    state.samples = samples.samples;
    state.chosen = new Set([methods.default]);
    buildModels();
    buildLayerControls();
    buildMethods();
    buildDisplay();
    buildDrop();
    chooseModel(models.default);
    buildSamples();
    const first = state.samples.find((s) => s.name === "cat_dog") || state.samples[0];
    if (first) await chooseSample(first);
  } catch (e) {
    showError(`cannot start: ${e.message}`);
    document.body.dataset.busy = "0";
  }
}

start();
