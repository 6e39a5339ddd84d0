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
  image: null,         // {blob, name, sample}
  imageId: 0,          // a new number for every image chosen (the cache keys answers by it)
  options: {},         // method name -> its options for /api/explain (none set by the page yet)
  opacity: 0.5,
  cache: new Map(),    // methodKey -> {answer, pictures} | {controller, started, estimate} | {error, kind}
  requests: 0,         // how many /api/explain requests the page has sent
  aborted: 0,          // how many of them it abandoned (and aborted)
  shownHead: null,     // the answer whose picture and predictions are shown
  shownSteps: null,    // the answer whose Grad-CAM steps are shown
  pageError: null,     // a fault in the page's own code, shown until the next redraw
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

// A size (h, w) the way minicnn writes sizes everywhere (minicnn.images.size_text): "64 wide x 32 high".
function sizeText(h, w) { return `${w} wide x ${h} high`; }

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
  state.imageId += 1;
  state.target = null;               // a new picture: explain its top-1 class first
  markChosenSample();
  resetSynth("attack");              // the attack was on the picture before
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
  for (const name of Object.keys(state.model.unavailable || {})) state.chosen.delete(name);
  if (state.chosen.size === 0) state.chosen.add("gradcam");
  for (const input of document.querySelectorAll("#methods input")) input.checked = state.chosen.has(input.value);
  const layers = spatialLayers();
  $("layer").replaceChildren(...layers.map((l) => el("option", {
    value: l.name,
    text: `${"\u2003".repeat(l.depth)}${l.name} · ${l.type} · ${l.shape[0]} maps` +
          (l.name === state.model.default_layer ? "  (default)" : ""),
  })));
  $("layer-slider").max = String(layers.length - 1);
  showLayer(state.model.default_layer);
  buildTargets(null);
  updateEstimates();
  synthClasses();
  resetSynth("visualise");
  resetSynth("attack");
}

function showLayer(name) {
  const layers = spatialLayers();
  const i = Math.max(0, layers.findIndex((l) => l.name === name));
  $("layer").value = layers[i].name;
  $("layer-slider").value = String(i);
  const l = layers[i];
  // the layer's maps for the input shown (the answer says), else for an input of the model's own size
  const head = state.image ? headFor(state.imageId, state.model.name, targetKey()) : null;
  const shape = (head && head.layer_shapes && head.layer_shapes[l.name]) || l.shape;
  const [H, W] = head ? head.input.shape : state.model.input_size.slice(1);
  $("layer-hint").textContent = `${l.name}: ${l.type}, ${shape[0]} maps of ${sizeText(shape[1], shape[2])} ` +
    `for ${head ? "this" : "an"} input of ${sizeText(H, W)}. Slide from the input (left) to the output (right).`;
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
  box.before(el("p", { class: "hint", text: "Under each method: what it costs in passes through the network, and " +
    "about how long it takes here (its passes times a pass measured on this machine)." }));
  for (const m of state.methods) {
    const input = el("input", { type: "checkbox", value: m.name, checked: state.chosen.has(m.name) });
    input.addEventListener("change", () => {
      if (input.checked) state.chosen.add(m.name); else state.chosen.delete(m.name);
      if (state.chosen.size === 0) { state.chosen.add(m.name); input.checked = true; return; }
      explain();
    });
    box.append(el("label", { class: "method", title: m.value, "data-method": m.name },
      input, el("span", { class: "name", text: m.title }), el("span", { class: "cost", text: m.cost }),
      el("span", { class: "estimate" })));
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
    try { drawMaps(); drawAttackMaps(); } catch (e) { pageFault(e); }
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
//
// One request per method, and one cache: a method's answer is kept under the key of what it depends on
// (the image, the model, the class, the layer only for methods that use one, their options). A change asks
// the server only for the ticked methods whose key changed; the layer slider leaves occlusion, IG or LRP
// alone. A request whose key is no longer wanted is aborted, so the server can stop its work.
//
// Two kinds of failure are kept apart: the server refusing a request (HTTP 4xx/5xx: its own one-line
// message) or not answering (network), and a fault in this page's own code while drawing an answer.

function targetKey() {
  // the top-1 class asked for by name is the same question as "the top-1 class"
  const head = headFor(state.imageId, state.model.name, "");
  return state.target && !(head && head.target.name === state.target) ? state.target : "";
}

function currentLayer() {
  return state.layer || state.model.default_layer;
}

// Whether the layer slider means something to method m: CAM (optional) finds its own layer, as under --method all.
function usesLayer(m) {
  return m.uses_layer && !m.optional;
}

function methodKey(m) {
  return JSON.stringify([m.name, state.imageId, state.model.name, targetKey(), usesLayer(m) ? currentLayer() : "",
                         state.options[m.name] || {}]);
}

// Any answer already here for this image, model and class: its picture, predictions and target.
function headFor(imageId, model, target) {
  for (const entry of state.cache.values()) {
    if (entry.answer && entry.imageId === imageId && entry.model === model && entry.target === target) return entry.answer;
  }
  return null;
}

function chosenMethods() {
  return state.methods.filter((m) => state.chosen.has(m.name));
}

function explain() {
  if (!state.image || !state.model) return;
  const wanted = new Map(chosenMethods().map((m) => [methodKey(m), m]));
  for (const [key, entry] of state.cache) {
    if (entry.controller && !wanted.has(key)) {          // abandoned: stop it here and on the server
      entry.controller.abort();
      state.aborted += 1;
      state.cache.delete(key);
    } else if (entry.error && !wanted.has(key)) {
      state.cache.delete(key);                            // a refusal is shown once, not kept
    }
  }
  forgetOldAnswers(wanted);
  for (const [key, m] of wanted) if (!state.cache.has(key)) request(m, key);
  show();
}

// Answers for earlier images are dropped; of the rest, at most KEPT answers are kept (the oldest go first).
const KEPT = 100;
function forgetOldAnswers(wanted) {
  for (const [key, entry] of state.cache) {
    if (entry.answer && entry.imageId !== state.imageId) state.cache.delete(key);
  }
  for (const [key, entry] of state.cache) {
    if (state.cache.size <= KEPT) break;
    if (entry.answer && !wanted.has(key)) state.cache.delete(key);
  }
}

function request(m, key) {
  const controller = new AbortController();
  const target = targetKey();
  const entry = { method: m.name, imageId: state.imageId, model: state.model.name, target, controller,
                  started: performance.now(), estimate: estimateFor(m) };
  state.cache.set(key, entry);
  state.requests += 1;
  const q = new URLSearchParams({ model: state.model.name, method: m.name, ...(state.options[m.name] || {}) });
  if (usesLayer(m)) q.set("layer", currentLayer());
  if (target) q.set("target", target);
  (async () => {
    let r, body;
    try {
      r = await fetch(`/api/explain?${q}`, { method: "POST", body: state.image.blob, signal: controller.signal });
      body = await r.json().catch(() => ({}));
    } catch (e) {
      if (e.name === "AbortError") return;
      entry.error = `the server did not answer ${m.title}: ${e.message}`;
      entry.kind = "network";
    }
    if (state.cache.get(key) !== entry) return;            // abandoned meanwhile
    delete entry.controller;
    if (r && !r.ok) {
      entry.error = `the server refused ${m.title} (HTTP ${r.status}): ${body.error || r.statusText}`;
      entry.kind = "refused";
    } else if (r) {
      try {
        entry.pictures = await decodePictures(body);
        entry.answer = body;
        entry.seconds = (performance.now() - entry.started) / 1000;
      } catch (e) {
        entry.error = `the page could not decode ${m.title}'s answer: ${e.message}`;
        entry.kind = "page";
      }
    }
    if (state.cache.get(key) === entry) show();
  })();
}

async function decodePictures(answer) {
  const pictures = { input: await loadImage(answer.input.png) };
  for (const [key, m] of Object.entries(answer.maps)) pictures[key] = await loadImage(m.png);
  const steps = answer.gradcam_steps;
  if (steps) {
    for (const m of steps.maps) pictures[`A${m.k}`] = await loadImage(m.png);
    pictures.weighted_sum = await loadImage(steps.weighted_sum.png);
    pictures.relu = await loadImage(steps.relu.png);
  }
  return pictures;
}

// What the page shows now: an entry per ticked method (its answer, its refusal, or its progress).
function entries() {
  return chosenMethods().map((m) => ({ m, entry: state.cache.get(methodKey(m)) || {} }));
}

// Redraw everything from the cache; a fault in the page's own drawing is shown as what it is.
function show() {
  state.pageError = null;
  try {
    render();
  } catch (e) {
    pageFault(e);
  }
}

function pageFault(e) {
  console.error(e);
  state.pageError = `a fault in this page's own code (not a refusal by the server): ${e.message}`;
  showError(state.pageError);
  setStatus("the page hit a fault in its own code; the message above says where");
}

// ------------------------------------------------------------------ estimates and progress

function estimateFor(m) {
  const head = state.image && state.model ? headFor(state.imageId, state.model.name, targetKey()) : null;
  let e = ((head && head.estimates) || state.model.estimates || {})[m.name];
  if (e && typeof e === "object") e = e[currentLayer()];
  return typeof e === "number" ? e : null;
}

function secondsText(s) {
  if (s === null || s === undefined) return "?";
  if (s < 1) return "under 1 s";
  if (s < 90) return `about ${Math.round(s)} s`;
  return `about ${Math.round(s / 60)} min`;
}

function updateEstimates() {
  for (const label of document.querySelectorAll("#methods .method")) {
    const m = state.methods.find((x) => x.name === label.dataset.method);
    const why = (state.model.unavailable || {})[m.name];
    const span = label.querySelector(".estimate");
    label.querySelector("input").disabled = !!why;
    label.classList.toggle("unavailable", !!why);
    label.title = why || m.value;
    if (why) {
      span.textContent = `does not apply to ${state.model.name}`;
      label.classList.remove("slow");
      continue;
    }
    const e = estimateFor(m);
    span.textContent = `${secondsText(e)} on ${state.model.name}`;
    label.classList.toggle("slow", e !== null && e >= 10);
    label.dataset.estimate = e === null ? "" : String(e);
  }
}

// "12.3 s of about 60 s": the time since the request left, against its estimate.
function progressText(entry) {
  const elapsed = (performance.now() - entry.started) / 1000;
  return `${elapsed.toFixed(1)} s of ${secondsText(entry.estimate)}`;
}

function tickProgress() {
  if (!state.model || !state.image) return;
  const pending = entries().filter(({ entry }) => entry.controller);
  for (const { m, entry } of pending) {
    const fig = document.querySelector(`#maps figure[data-method="${m.name}"]`);
    if (!fig) continue;
    const elapsed = (performance.now() - entry.started) / 1000;
    fig.querySelector(".elapsed").textContent = progressText(entry);
    const bar = fig.querySelector("progress");
    if (entry.estimate) bar.value = Math.min(0.99, elapsed / entry.estimate);
  }
  if (pending.length) {
    setStatus(`computing ${pending.map(({ m, entry }) => `${m.title} (${progressText(entry)})`).join(", ")}…`);
  }
}

// ------------------------------------------------------------------ showing the answer

function render() {
  const all = entries();
  const pending = all.filter(({ entry }) => entry.controller);
  const failed = all.filter(({ entry }) => entry.error);
  const done = all.filter(({ entry }) => entry.answer);
  document.body.dataset.busy = pending.length ? "1" : "0";
  updateEstimates();
  const head = done.length ? done[0].entry.answer : headFor(state.imageId, state.model.name, targetKey());
  if (head) renderHead(head);
  renderMaps(all, head);
  const gradcam = done.find(({ m }) => m.name === "gradcam");
  renderSteps(gradcam ? gradcam.entry : null);
  showLayer(currentLayer());
  drawMaps();
  showError([...failed.map(({ entry }) => entry.error), state.pageError].filter(Boolean).join("\n"));
  if (pending.length) {
    tickProgress();
  } else if (failed.length) {
    const refused = failed.filter(({ entry }) => entry.kind === "refused").map(({ m }) => m.title);
    const other = failed.filter(({ entry }) => entry.kind !== "refused").map(({ m }) => m.title);
    setStatus([refused.length ? `the server refused ${refused.join(", ")}` : "",
               other.length ? `no map for ${other.join(", ")}` : ""].filter(Boolean).join("; ") +
              (done.length ? `; the other maps are shown` : ""));
  } else if (head) {
    const computed = done.filter(({ entry }) => entry.fresh !== false);
    for (const { entry } of done) entry.fresh = false;
    const took = computed.reduce((t, { entry }) => t + entry.answer.seconds, 0);
    setStatus(`${head.model} · ${currentLayer() || "no layer"} · explained '${head.target.name}': ` +
              (computed.length ? `${computed.length} map${computed.length > 1 ? "s" : ""} computed in ${took.toFixed(2)} s` : "") +
              (computed.length && computed.length < done.length ? ", " : "") +
              (done.length > computed.length ? `${done.length - computed.length} reused` : ""));
  }
}

function renderHead(result) {
  if (state.shownHead === result) return;
  state.shownHead = result;
  const input = $("input-canvas");
  sizeCanvas(input, result.input.shape, 512);
  loadImage(result.input.png).then((img) => { if (state.shownHead === result) drawPicture(input, img); })
    .catch(pageFault);
  const [h, w] = result.input.shape;
  const [ih, iw] = result.image.shape;
  $("input-caption").textContent =
    `${state.image.name}: ${sizeText(ih, iw)}, seen by ${result.model} as ${sizeText(h, w)}`;
  renderPredictions(result);
  buildTargets(result);
  synthClasses();
  $("question-class").textContent = `'${result.target.name}'`;
  $("maps-title").textContent =
    `Explanations of '${result.target.name}' (class ${result.target.index}, y = ${fmt(result.target.score)})`;
  const maps = $("maps");
  maps.dataset.target = result.target.name;
  maps.dataset.model = result.model;
  maps.dataset.layer = currentLayer() || "";
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

function renderMaps(all, head) {
  const maps = $("maps");
  maps.replaceChildren();
  for (const { m, entry } of all) {
    const figure = el("figure", { class: "map", "data-method": m.name });
    const answer = entry.answer;
    const mapEntry = answer && answer.maps[m.key];
    if (mapEntry) {
      const canvas = el("canvas", { "data-key": m.key, "data-display": mapEntry.display });
      canvas.entry = entry;
      sizeCanvas(canvas, answer.input.shape, 512);
      const where = m.uses_layer && answer.layer ? ` · ${answer.layer}` : "";
      figure.dataset.state = "done";
      figure.append(
        el("figcaption", {}, el("b", { text: mapEntry.title }),
           el("span", { text: `${where} · raw ${shapeText(mapEntry.shape)}` })),
        canvas,
        mapEntry.display === "gradient" ? el("div", { class: "gradient-note", text: m.value }) : colourBar(mapEntry),
        mapEntry.note ? el("div", { class: "map-note", text: mapEntry.note }) : "");   // where relevance went, all zero
    } else if (entry.error) {
      figure.dataset.state = "error";
      figure.append(el("figcaption", {}, el("b", { text: m.title })), el("p", { class: "map-error", text: entry.error }));
    } else if (answer) {
      figure.dataset.state = "empty";            // e.g. CAM on a network without GAP -> one dense layer
      figure.append(el("figcaption", {}, el("b", { text: m.title })),
                    el("p", { class: "hint", text: (answer.notes || []).join(" ") || "no map for this model" }));
    } else {
      figure.dataset.state = "pending";
      figure.append(el("figcaption", {}, el("b", { text: m.title }), el("span", { text: "computing…" })),
                    el("div", { class: "pending" }, el("progress", { max: 1 }), el("span", { class: "elapsed" })));
    }
    maps.append(figure);
  }
}

// The shape of a raw map: [h, w] or [C, h, w] (C channels of an input-sized map).
function shapeText(shape) {
  const [h, w] = shape.slice(-2);
  return shape.length > 2 ? `${shape[0]} channels of ${sizeText(h, w)}` : sizeText(h, w);
}

function drawMaps() {
  for (const canvas of document.querySelectorAll("#maps canvas, #step-overlay canvas")) {
    const pictures = canvas.entry && canvas.entry.pictures;
    if (!pictures || !pictures[canvas.dataset.key]) continue;   // nothing (yet) to draw on it
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (canvas.dataset.display === "gradient") {
      drawPicture(canvas, pictures[canvas.dataset.key]);
    } else {
      drawPicture(canvas, pictures.input);
      drawPicture(canvas, pictures[canvas.dataset.key], { alpha: state.opacity });
    }
  }
}

function renderSteps(entry) {
  const result = entry && entry.answer;
  const steps = result && result.gradcam_steps;
  $("steps").hidden = !steps;
  if (!steps) {
    $("step-overlay").replaceChildren();         // no canvas left to draw from an answer without Grad-CAM
    return;
  }
  if (state.shownSteps === result) return;
  state.shownSteps = result;
  const pictures = entry.pictures;
  const [h, w] = steps.shape;
  $("steps-lead").textContent =
    `Layer ${steps.layer} holds K = ${steps.K} feature maps A^k of ${sizeText(h, w)}. One backward pass gives ` +
    `α_k = mean over i,j of ∂y^c/∂A^k_ij for c = '${result.target.name}': how much the class score rises ` +
    `when map k brightens. Grad-CAM is ReLU(Σ_k α_k A^k).`;
  drawAlphaChart(steps);

  const box = $("feature-maps");
  box.replaceChildren();
  const amax = Math.max(...steps.alpha.map(Math.abs), 1e-12);
  const card = (m) => {
    const canvas = el("canvas", { class: "pixels" });
    sizeCanvas(canvas, m.shape, 160);
    drawPicture(canvas, pictures[`A${m.k}`], { smooth: false });
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
  stepFigure("step-sum", "Σ_k α_k A^k", steps.weighted_sum, pictures.weighted_sum);
  stepFigure("step-relu", "ReLU(Σ_k α_k A^k) = Grad-CAM", steps.relu, pictures.relu);
  const overlay = el("canvas", { "data-key": "gradcam", "data-display": "heat" });
  overlay.entry = entry;
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

// ------------------------------------------------------------------ what the network would draw; attack this image
//
// Two panels, each one request at a time (a new click aborts the request before it, so the server stops its
// work): POST /api/visualize for the chosen class (the server keeps its answers, so a second view is instant)
// and POST /api/attack with the image shown, whose maps are those of the methods ticked above.

const synth = {
  visualise: { controller: null, started: 0, answer: null, requests: 0 },
  attack: { controller: null, started: 0, answer: null, requests: 0, pictures: null },
};

// The class the maps above explain: the one chosen, else the top-1 class of the answer shown.
function explainedClass() {
  if (state.target) return state.target;
  const head = state.image && state.model ? headFor(state.imageId, state.model.name, targetKey()) : null;
  return head ? head.target.name : null;
}

function shortName(name) { return String(name).split(",")[0]; }

function synthClasses() {
  const classes = state.model.classes;
  const explained = explainedClass();
  const vis = $("vis-class");
  const keep = vis.value;
  vis.replaceChildren(
    el("option", { value: "", text: explained ? `the class explained above (${shortName(explained)})`
                                              : "the class explained above" }),
    ...classes.map((c, i) => el("option", { value: String(i), text: `${i} ${shortName(c)}` })));
  vis.value = keep && Number(keep) < classes.length ? keep : "";
  const atk = $("atk-target");
  const keepTarget = atk.value;
  atk.replaceChildren(el("option", { value: "", text: "no target: away from the top-1 class" }),
    ...classes.map((c, i) => el("option", { value: String(i), text: `${i} ${shortName(c)}` })));
  atk.value = keepTarget && Number(keepTarget) < classes.length ? keepTarget : "";
}

function panelState(which, working, status, error) {
  const id = which === "visualise" ? "vis" : "atk";
  $(which).dataset.state = working ? "working" : (error ? "error" : (synth[which].answer ? "done" : "idle"));
  $(`${which}`).setAttribute("aria-busy", working ? "true" : "false");
  $(`${id}-status`).textContent = status;
  const e = $(`${id}-error`);
  e.textContent = error || "";
  e.hidden = !error;
}

function resetSynth(which) {
  const p = synth[which];
  if (p.controller) { p.controller.abort(); p.controller = null; }
  p.answer = null;
  $(which === "visualise" ? "vis-result" : "atk-result").hidden = true;
  panelState(which, false, "", "");
}

// POST path?query (body: the image, or nothing); the answer's JSON, or an Error whose message is one line.
async function postJSON(which, path, query, body) {
  const p = synth[which];
  if (p.controller) p.controller.abort();
  const controller = new AbortController();
  p.controller = controller;
  p.started = performance.now();
  p.requests += 1;
  const r = await fetch(`${path}?${query}`, { method: "POST", body, signal: controller.signal });
  const answer = await r.json().catch(() => ({}));
  if (p.controller !== controller) return null;          // abandoned for a newer request meanwhile
  p.controller = null;
  if (!r.ok) throw new Error(`the server refused (HTTP ${r.status}): ${answer.error || r.statusText}`);
  return answer;
}

function tickSynth() {
  for (const which of ["visualise", "attack"]) {
    const p = synth[which];
    if (!p.controller) continue;
    const elapsed = ((performance.now() - p.started) / 1000).toFixed(1);
    $(which === "visualise" ? "vis-status" : "atk-status").textContent = `working… ${elapsed} s`;
  }
}

function predictionList(list, predictions, mark) {
  list.replaceChildren(...predictions.map((p) => el("li", { class: p.index === mark ? "marked" : "",
    text: `${shortName(p.name)}: ${(100 * p.probability).toFixed(1)}% (y = ${fmt(p.logit)})` })));
}

async function runVisualise() {
  if (!state.model) return;
  const chosen = $("vis-class").value;
  const cls = chosen !== "" ? chosen : explainedClass();
  if (cls === null) { panelState("visualise", false, "", "choose a class first"); return; }
  const q = new URLSearchParams({ model: state.model.name, class: cls, steps: $("vis-steps").value || "128",
                                  param: $("vis-param").value, seed: $("vis-seed").value || "0" });
  panelState("visualise", true, "working…", "");
  let answer;
  try {
    answer = await postJSON("visualise", "/api/visualize", q, null);
  } catch (e) {
    if (e.name === "AbortError") return;
    synth.visualise.controller = null;
    panelState("visualise", false, "", e.message);
    return;
  }
  if (!answer) return;
  try {
    await showVisualisation(answer);
  } catch (e) { pageFault(e); }
}

async function showVisualisation(answer) {
  synth.visualise.answer = answer;
  const img = await loadImage(answer.image.png);
  const canvas = $("vis-canvas");
  sizeCanvas(canvas, answer.image.shape, 256);
  drawPicture(canvas, img, { smooth: false });
  $("vis-about").textContent = `${answer.about} (seed ${answer.seed}, ` +
    `${answer.model})`;
  const [h, w] = answer.image.shape;
  $("vis-caption").textContent = `${sizeText(h, w)}, the network's input size; a lossless PNG`;
  predictionList($("vis-predictions"), answer.predictions, answer.class.index);
  drawCurve($("vis-curve"), answer.values);
  $("vis-result").hidden = false;
  $("visualise").dataset.class = answer.class.name;
  panelState("visualise", false, answer.cached
    ? `shown from the server's cache (computed earlier in ${answer.computed_seconds.toFixed(2)} s)`
    : `computed in ${answer.seconds.toFixed(2)} s: y^c rose from ${fmt(answer.first_value)} to ` +
      `${fmt(answer.final_value)}`, "");
}

function drawCurve(canvas, values) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 24;
  ctx.clearRect(0, 0, W, H);
  const finite = values.filter((v) => v !== null);
  if (!finite.length) return;
  const lo = Math.min(...finite), hi = Math.max(...finite), span = hi - lo || 1;
  ctx.strokeStyle = "#9ca3af";
  ctx.strokeRect(pad, 4, W - pad - 4, H - pad - 4);
  ctx.strokeStyle = "#1d4ed8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    if (v === null) return;
    const x = pad + (values.length > 1 ? i / (values.length - 1) : 0) * (W - pad - 4);
    const y = 4 + (1 - (v - lo) / span) * (H - pad - 8);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#374151";
  ctx.font = "12px sans-serif";
  ctx.fillText(fmt(hi), 2, 14);
  ctx.fillText(fmt(lo), 2, H - pad);
  ctx.fillText(`step 1 … ${values.length}`, pad + 4, H - 6);
}

async function runAttack() {
  if (!state.image || !state.model) { panelState("attack", false, "", "choose an image first"); return; }
  const method = $("atk-method").value;
  const q = new URLSearchParams({ model: state.model.name, attack: method, epsilon: $("atk-epsilon").value.trim() });
  if (method === "pgd") q.set("steps", $("atk-steps").value || "10");
  if ($("atk-target").value) q.set("target", $("atk-target").value);
  const methods = chosenMethods();
  q.set("method", methods.map((m) => m.name).join(","));
  if (methods.some(usesLayer)) q.set("layer", currentLayer());
  for (const m of methods) {
    for (const [k, v] of Object.entries(state.options[m.name] || {})) q.set(`explain.${k}`, v);
  }
  const imageId = state.imageId;
  panelState("attack", true, "working…", "");
  let answer;
  try {
    answer = await postJSON("attack", "/api/attack", q, state.image.blob);
  } catch (e) {
    if (e.name === "AbortError") return;
    synth.attack.controller = null;
    panelState("attack", false, "", e.message);
    return;
  }
  if (!answer || imageId !== state.imageId) return;
  try {
    await showAttack(answer, methods);
  } catch (e) { pageFault(e); }
}

async function showAttack(answer, methods) {
  const pictures = { input: await loadImage(answer.input.png), adversarial: await loadImage(answer.adversarial.png) };
  for (const role of ["true", "adversarial"]) {
    for (const [key, m] of Object.entries(answer.maps[role].maps)) pictures[`${role}:${key}`] = await loadImage(m.png);
  }
  synth.attack.answer = answer;
  synth.attack.pictures = pictures;
  for (const [id, picture] of [["atk-original", pictures.input], ["atk-adversarial", pictures.adversarial]]) {
    sizeCanvas($(id), answer.input.shape, 256);
    drawPicture($(id), picture, { smooth: false });
  }
  drawDifference(answer);
  $("atk-about").textContent = answer.about;
  predictionList($("atk-before"), answer.before, answer.true.index);
  predictionList($("atk-after"), answer.after, answer.adversarial_class.index);
  $("atk-adv-caption").textContent = `after: ${answer.fooled ? "fooled" : "not fooled"}, the network says ` +
    `'${shortName(answer.adversarial_class.name)}' (a lossless PNG of ${sizeText(...answer.adversarial.shape)})`;
  $("atk-diff-caption").textContent = `the change, magnified: grey is none; the largest is ` +
    `${answer.adversarial.largest_change_255}/255`;
  const box = $("atk-maps");
  box.replaceChildren();
  for (const m of methods) {
    const figs = [];
    for (const role of ["true", "adversarial"]) {
      const side = answer.maps[role];
      const entry = side.maps[m.key];
      const who = `${role === "true" ? "the true class" : "the adversarial class"} '${shortName(side.class.name)}'`;
      if (!entry) {
        figs.push(el("figure", {}, el("figcaption", { text: who }),
                     el("p", { class: "hint", text: (side.notes || []).join(" ") || "no map for this model" })));
        continue;
      }
      const canvas = el("canvas", { "data-key": `${role}:${m.key}`, "data-display": entry.display });
      sizeCanvas(canvas, answer.adversarial.shape, 256);
      figs.push(el("figure", { "data-role": role }, el("figcaption", { text: who }), canvas,
                   entry.display === "gradient" ? null : colourBar(entry)));
    }
    box.append(el("figure", { class: "map", "data-method": m.name, "data-state": "done" },
      el("figcaption", {}, el("b", { text: m.title }), el("span", { text: "on the adversarial image" })),
      el("div", { class: "pair" }, ...figs)));
  }
  drawAttackMaps();
  $("atk-result").hidden = false;
  panelState("attack", false, `attacked and explained in ${answer.seconds.toFixed(2)} s: ` +
    `'${shortName(answer.true.name)}' → '${shortName(answer.adversarial_class.name)}'`, "");
}

// Each map over the adversarial image, at the page's overlay opacity (a gradient image on its own).
function drawAttackMaps() {
  const pictures = synth.attack.pictures;
  if (!pictures) return;
  for (const canvas of document.querySelectorAll("#atk-maps canvas")) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (canvas.dataset.display === "gradient") {
      drawPicture(canvas, pictures[canvas.dataset.key]);
    } else {
      drawPicture(canvas, pictures.adversarial, { smooth: false });
      drawPicture(canvas, pictures[canvas.dataset.key], { alpha: state.opacity });
    }
  }
}

// (adversarial - original), magnified so that epsilon reaches black or white: 128 + 127 (a - o) / (255 eps).
function drawDifference(answer) {
  const [h, w] = answer.input.shape;
  const read = (picture) => {
    const c = el("canvas");
    c.width = w; c.height = h;
    const ctx = c.getContext("2d");
    ctx.drawImage(picture, 0, 0);
    return ctx.getImageData(0, 0, w, h);
  };
  const a = read(synth.attack.pictures.adversarial), o = read(synth.attack.pictures.input);
  const scale = 127 / Math.max(1, answer.attack.epsilon_255);
  for (let i = 0; i < a.data.length; i += 4) {
    for (let c = 0; c < 3; c++) a.data[i + c] = 128 + scale * (a.data[i + c] - o.data[i + c]);
  }
  const small = el("canvas");
  small.width = w; small.height = h;
  small.getContext("2d").putImageData(a, 0, 0);
  const canvas = $("atk-difference");
  sizeCanvas(canvas, [h, w], 256);
  drawPicture(canvas, small, { smooth: false });
}

function buildSynth() {
  $("vis-go").addEventListener("click", runVisualise);
  $("atk-go").addEventListener("click", runAttack);
  const steps = () => { $("atk-steps").disabled = $("atk-method").value !== "pgd"; };
  $("atk-method").addEventListener("change", steps);
  steps();
  for (const id of ["vis-steps", "vis-seed", "atk-epsilon", "atk-steps"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter") (id.startsWith("vis") ? runVisualise : runAttack)();
    });
  }
  setInterval(() => { try { tickSynth(); } catch (e) { pageFault(e); } }, 250);
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
    buildSynth();
    chooseModel(models.default);
    setInterval(() => { try { tickProgress(); } catch (e) { pageFault(e); } }, 250);
    buildSamples();
    const first = state.samples.find((s) => s.name === "cat_dog") || state.samples[0];
    if (first) await chooseSample(first);
  } catch (e) {
    showError(`cannot start: ${e.message}`);
    document.body.dataset.busy = "0";
  }
}

// A fault anywhere in the page's code is shown as one, never as a refused request.
window.addEventListener("error", (e) => pageFault(e.error || new Error(e.message)));
window.addEventListener("unhandledrejection", (e) => pageFault(e.reason instanceof Error ? e.reason : new Error(String(e.reason))));

start();
