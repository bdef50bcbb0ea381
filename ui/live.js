// rnnlab's browser views: the one renderer of every run picture on every page. Each view
// polls the server's JSON routes (ui/routes.py) and updates its Plotly charts in place, so
// watching a run costs the server no Streamlit rerun per tick. Mounted by ui/live.py,
// which sets `data`.
//
// Every view: {view, page (the page's url_path: routes are relative to the app's root),
//   plotly_url, plotly_fallback_url, lang, labels, active, poll_ms, fed, viewer_key}.
//   viewer_key goes with every request (header X-Rnnlab-Key): the routes answer a run's
//   word, uploaded text and the predictions on them only to its owner's key.
//   "preload": only loads Plotly, ahead of the first run.
//   "loss":    {run_id, points_url, steps, baseline, baseline_label, metric_baseline}
//   "gates":   {run_id, gates_url, layer, cell: {name, states, sigmoid}, titles}
//   "influence": {run_id, influence_url}
//   "inside":  {run_id, points_url, gates_url, gradients_url, influence_url,
//               trajectory_url, layers, cell, titles,
//               settings: {cell, activation, num_layers, hidden_size, steps}}
//   "race":    {sweep_id, sweep_url, total, axes}
//   "room":    {room_url}
//   "study":   {study, study_url, evaluator, objective (the objective in words)}
// Every word a view shows comes translated in data.labels, with {name} placeholders that
// fill() replaces and **bold** that markdown() renders; numbers are formatted for data.lang.
//
// Where the routes cannot be reached (a proxy that forwards only Streamlit's paths), a
// view sets its "fallback" state; the page then mounts the same view "fed": data.fed holds
// exactly what the routes would answer, whole, and a remount with fresh data.fed updates
// the view in place. A fed view never fetches anything but Plotly.
//
// Tests follow the views through data-rnnlab-* attributes: last-step (loss chart),
// snapshot-step (heatmaps), gradient-step (gradient history), influence-step and
// influence-history (the influence charts), trajectory-step (the snapshot a path chart
// shows), trajectory-snapshots and trajectory-layer (its panel), layer and units (Inside's
// root), race-runs and race-done (Race's root), room-runs (Room's chart), trials (finished
// trials drawn, complete + pruned) and version (the study view's root).

const MAX_POINTS = 3000;
const COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6"];
const FAILURES_BEFORE_FALLBACK = 3;
const REQUEST_TIMEOUT_MS = 5000;  // a request unanswered this long is given up (a failure)
const GRADIENTS_POLL_MS = 2000;
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const ENDED = (status) => status !== "running" && status !== "queued";

// ---------------------------------------------------------------- shared helpers

// The app's root as the browser sees it (a hosting proxy may put the app under a prefix,
// such as /~/+/): the page's path without the page's own url_path (data.page, "" on the
// default page).
function apiUrl(path, page) {
  let root = window.location.pathname;
  if (page) {
    const at = root.lastIndexOf("/" + page);
    if (at >= 0) root = root.slice(0, at);
  }
  if (!root.endsWith("/")) root += "/";
  return root + path;
}

// A script run only if it is JavaScript: a server without the route may answer its page's
// HTML instead, which would not load, only throw.
async function loadScript(url) {
  const response = await fetch(url);
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !type.includes("javascript")) throw new Error(`cannot load ${url}: HTTP ${response.status} ${type}`);
  const source = URL.createObjectURL(new Blob([await response.text()], { type: "text/javascript" }));
  try {
    await new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = source;
      script.onload = resolve;
      script.onerror = () => reject(new Error("cannot run " + url));
      document.head.appendChild(script);
    });
  } finally {
    URL.revokeObjectURL(source);
  }
  if (!window.Plotly) throw new Error("no Plotly in " + url);
  return window.Plotly;
}

// Plotly from the first of `urls` that serves it; once loaded, shared by every view.
function loadPlotly(urls) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__rnnlabPlotly) {
    window.__rnnlabPlotly = urls.reduce(
      (tried, url) => tried.catch(() => (window.Plotly ? window.Plotly : loadScript(url))),
      Promise.reject(new Error("no Plotly url")),
    ).catch((error) => {
      window.__rnnlabPlotly = null;
      throw error;
    });
  }
  return window.__rnnlabPlotly;
}

// A translated label with its {name} placeholders filled in (a Python format spec such as
// {step:,} is accepted and ignored: numbers come formatted already).
function fill(template, values) {
  return String(template).replace(/\{(\w+)(?::[^{}]*)?\}/g,
    (whole, name) => (name in values ? String(values[name]) : whole));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" })[c]);
}

// A label's text with its **bold** parts bold: escaped first, so nothing else is markup.
function markdown(node, text) {
  node.innerHTML = escapeHtml(text).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>");
  return node;
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

// The fed mode (see the top): data.fed holds the routes' answers. Once a view of this
// tab has found the routes out of reach, so has the page's session: a view mounted with
// nothing to draw yet (a run without a snapshot) is fed too, and asks nothing.
function isFed(data) {
  return (data.fed !== undefined && data.fed !== null) || window.__rnnlabUnreachable === true;
}

async function getWithTimeout(url, key) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const headers = key ? { "X-Rnnlab-Key": key } : {};
  try {
    return await fetch(url, { cache: "no-store", signal: controller.signal, headers });
  } finally {
    clearTimeout(timer);
  }
}

// A route's JSON answer, asked with the session's viewer key; null for 204 (nothing
// newer). Anything else not JSON throws, with the HTTP status on the error (and for 429,
// the seconds the server asks to wait, as retryAfter).
async function getJson(url, key) {
  const response = await getWithTimeout(url, key);
  if (response.status === 204) return null;
  if (!response.ok || !(response.headers.get("content-type") || "").includes("json")) {
    const error = new Error(`HTTP ${response.status}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("retry-after")) || 1;
    throw error;
  }
  return response.json();
}

// The points of `points` after the last of `steps` (curves only grow: an answer that
// repeats points it sent before must not draw them twice).
function after(steps, points) {
  const last = steps.length ? steps[steps.length - 1] : -Infinity;
  if (!points.step.length || points.step[0] > last) return points;
  const keep = points.step.map((step, i) => i).filter((i) => points.step[i] > last);
  return { step: keep.map((i) => points.step[i]), loss: keep.map((i) => points.loss[i]) };
}

function eta(seconds, labels) {
  if (seconds === null || seconds === undefined) return "…";
  return seconds < 120
    ? fill(labels.seconds, { seconds: Math.round(seconds) })
    : fill(labels.minutes, { minutes: (seconds / 60).toFixed(1) });
}

// What every view shares: Plotly, poll loops with a failure count, the fallback, the fed
// mode, and pausing when Streamlit unmounts or re-renders it.
class View {
  constructor(root, data, component) {
    this.root = root;
    this.data = data;
    this.component = component;
    this.labels = data.labels || {};
    this.fed = isFed(data);
    this.failures = 0;
    this.waitUntil = 0;  // performance.now() before which no poll runs (the server said 429)
    this.stopped = false;  // for good: the run ended, or the page feeds the view instead
    this.paused = false;
    this.timers = new Map();
    this.inFlight = new Set();
    root.innerHTML = "";
    for (const key of Object.keys(root.dataset)) delete root.dataset[key];
  }

  // A whole number with the page language's digit grouping.
  count(value) {
    return Number(value).toLocaleString(this.data.lang || undefined);
  }

  // A measurement with `digits` significant digits ("—" when there is none).
  number(value, digits = 4) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
    const size = Math.abs(value);
    if (size !== 0 && (size < 1e-3 || size >= 1e6)) {
      return Number(value).toPrecision(digits).replace(/\.?0+(e|$)/, "$1");
    }
    return Number(value).toLocaleString(this.data.lang || undefined, { maximumSignificantDigits: digits });
  }

  // Plotly from the route, else from Streamlit's static files (first, when fed: the
  // routes are known to be out of reach); without either, one line says so.
  async loadPlotly() {
    const urls = [this.data.plotly_url, this.data.plotly_fallback_url].filter(Boolean);
    if (this.fed) urls.reverse();
    try {
      this.Plotly = await loadPlotly(urls.map((url) => apiUrl(url, this.data.page)));
      return true;
    } catch (error) {
      this.stopped = true;
      this.root.innerHTML = "";
      element("div", "rnnlab-message", this.root).textContent = this.labels.no_plotly || String(error);
      return false;
    }
  }

  async start() {
    if (!(await this.loadPlotly())) return;
    if (this.fed) this.feed(this.data.fed);
    else this.restart();
  }

  // A remount of the same fed view with fresh answers.
  update(data) {
    this.data = data;
    this.labels = data.labels || this.labels;
    if (this.Plotly) this.feed(data.fed);
  }

  // A route's answer, asked with this session's viewer key.
  get(path, query) {
    return getJson(`${apiUrl(path, this.data.page)}?${query}`, this.data.viewer_key);
  }

  // A request failed: after FAILURES_BEFORE_FALLBACK in a row, let the page feed the view.
  // Too many requests from this address (429) is no failure: the next poll waits instead.
  failed(error) {
    if (error && error.status === 429) {
      this.waitUntil = performance.now() + 1000 * error.retryAfter;
      return;
    }
    this.failures += 1;
    if (this.failures >= FAILURES_BEFORE_FALLBACK) this.fallBack(String(error));
  }

  // Whether a poll of a finished run must be asked again: it failed, or was held back.
  retrying() {
    return this.failures > 0 || this.waitUntil > performance.now();
  }

  fallBack(reason) {
    this.stopped = true;
    window.__rnnlabUnreachable = true;
    this.component.setStateValue("fallback", reason || true);
  }

  // Tell the page once that what it shows has ended (it reruns to show the result).
  // Only a view mounted while things were still going on: a finished one is the result.
  ended(value) {
    if (this.endedSent || this.data.active === false) return;
    this.endedSent = true;
    this.component.setTriggerValue("ended", value);
  }

  polling() {
    return !this.fed && !this.stopped && !this.paused && this.root.isConnected;
  }

  // Run one request of the loop `name` unless one is still out (a view resumed while its
  // last poll was still out would otherwise run two loops, and take their answers twice).
  async once(name, work) {
    if (this.inFlight.has(name)) return false;
    this.inFlight.add(name);
    try {
      await work();
    } finally {
      this.inFlight.delete(name);
    }
    return true;
  }

  schedule(wait, task = () => this.poll(), name = "poll") {
    clearTimeout(this.timers.get(name));
    const held = this.waitUntil - performance.now();
    if (this.polling()) this.timers.set(name, setTimeout(task, Math.max(50, wait, held)));
  }

  pause() {
    // Streamlit calls this when it unmounts the view, and may call it when it re-renders
    // the view with new data; a view still on the page afterwards carries on.
    this.paused = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    setTimeout(() => { if (this.root.isConnected && this.root.__rnnlabView === this) this.resume(); }, 500);
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    if (!this.stopped && !this.fed && this.Plotly && this.data.active !== false) this.restart();
  }

  restart() {
    this.poll();
  }
}

// ---------------------------------------------------------------- loss chart

class LossView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.steps = [];
    this.losses = [];
    this.evaluations = [];
    this.solvedAt = null;
    this.lastStep = 0;
    this.status = element("div", "rnnlab-status", root);
    this.bar = element("div", "rnnlab-bar", this.status);
    this.barFill = element("div", "rnnlab-bar-fill", this.bar);
    this.statusText = element("div", "rnnlab-status-text", this.status);
    this.metrics = element("div", "rnnlab-metrics", root);
    this.chart = element("div", "rnnlab-chart", root);
    this.chart.dataset.rnnlabRun = data.run_id;
    this.chart.dataset.rnnlabLastStep = "0";
    this.caption = element("div", "rnnlab-caption", root);
    this.status.style.display = data.active ? "" : "none";
    // Ask for the first points while Plotly loads.
    if (!this.fed) this.first = this.fetchPoints().catch((error) => error);
  }

  async start() {
    if (!(await this.loadPlotly())) return;
    if (this.fed) this.feed(this.data.fed);
    else this.poll();  // draws with the first answer
  }

  fetchPoints() {
    return this.get(this.data.points_url, `since=${this.lastStep}`);
  }

  // Every poll_ms while the run trains; a finished run's curve is asked for once.
  async poll() {
    if (!this.polling()) return;
    const started = performance.now();
    const polled = await this.once("poll", async () => {
      try {
        const first = this.first;
        this.first = null;
        const answer = first ? await first : await this.fetchPoints();
        if (answer instanceof Error) throw answer;
        this.failures = 0;
        this.receive(answer);
      } catch (error) {
        this.failed(error);
      }
    });
    if (polled && (this.data.active || this.retrying())) this.schedule(this.data.poll_ms - (performance.now() - started));
  }

  // A fed answer is the whole curve: it replaces what is drawn.
  feed(answer) {
    if (!answer) return;
    this.steps = [];
    this.losses = [];
    this.evaluations = [];
    this.absorb(answer);
    this.draw();
    this.settle(answer);
  }

  traces() {
    const evaluations = this.evaluations.filter((e) => e[1] !== null);
    return [
      // Copies: extendTraces appends to Plotly's arrays, and this.steps grows by itself.
      { x: [...this.steps], y: [...this.losses], name: this.labels.train_loss_trace, mode: "lines",
        line: { color: COLOURS[0], width: 1.5 } },
      { x: evaluations.map((e) => e[0]), y: evaluations.map((e) => e[1]),
        name: this.labels.held_out_loss_trace,
        mode: "lines+markers", line: { color: COLOURS[1], width: 2 }, marker: { size: 5 } },
    ];
  }

  layout() {
    const d = this.data;
    const shapes = [], annotations = [];
    if (d.baseline !== null && d.baseline !== undefined) {
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: d.baseline, y1: d.baseline,
        line: { color: "#888", dash: "dash" } });
      annotations.push({ xref: "paper", x: 1, y: this.logY ? Math.log10(d.baseline) : d.baseline,
        text: `${d.baseline_label}: ${this.number(d.baseline, 3)}`, showarrow: false,
        xanchor: "right", yanchor: "bottom" });
    }
    if (this.solvedAt !== null && this.solvedAt !== undefined) {
      const solved = this.solvedAt;
      shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: solved, x1: solved,
        line: { color: COLOURS[2], width: 2 } });
      annotations.push({ yref: "paper", y: 1, x: solved,
        text: fill(this.labels.solved_at, { step: this.count(solved) }),
        showarrow: false, xanchor: "left", yanchor: "top" });
    }
    return {
      // Fixed margins: automargin costs extra layout passes on every redraw.
      height: 340, margin: { l: 60, r: 10, t: 40, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis: { title: { text: this.labels.step_axis }, range: [0, d.steps] },
      yaxis: { title: { text: this.labels.loss_axis }, type: this.logY ? "log" : "linear" },
      shapes, annotations, uirevision: d.run_id,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#F3F6FA",
    };
  }

  draw() {
    const positive = this.losses.filter((v) => v !== null);
    this.logY = positive.length > 0 && positive.every((v) => v > 0);
    this.thin();
    this.Plotly.react(this.chart, this.traces(), this.layout(), PLOT_CONFIG);
    this.chart.dataset.rnnlabLastStep = String(this.lastStep);
    this.caption.textContent = this.steps.length ? this.recorded() : "";
  }

  recorded() {
    return fill(this.labels.steps_recorded, { n: this.count(this.lastStep) });
  }

  thin() {
    // Keep the whole run in view with at most MAX_POINTS points: every other one, and the last.
    while (this.steps.length > MAX_POINTS) {
      const keep = (_, i, all) => i % 2 === 0 || i === all.length - 1;
      this.steps = this.steps.filter(keep);
      this.losses = this.losses.filter(keep);
    }
  }

  // Take in one answer of the route: new points and evaluations (no drawing).
  absorb(answer) {
    const points = after(this.steps, answer.points);
    for (let i = 0; i < points.step.length; i++) {
      this.steps.push(points.step[i]);
      this.losses.push(points.loss[i]);
    }
    if (points.step.length) this.lastStep = points.step[points.step.length - 1];
    this.evaluations.push(...answer.evaluations);
    if (answer.solved_at !== null && answer.solved_at !== undefined) this.solvedAt = answer.solved_at;
  }

  receive(answer) {
    const points = after(this.steps, answer.points);
    const redraw = answer.evaluations.length > 0 || this.steps.length === 0
      || (this.logY && points.loss.some((v) => v !== null && v <= 0))
      || this.steps.length + points.step.length > MAX_POINTS;
    this.absorb(answer);
    if (redraw) {
      this.draw();
    } else if (points.step.length) {
      this.Plotly.extendTraces(this.chart, { x: [points.step], y: [points.loss] }, [0]);
      this.chart.dataset.rnnlabLastStep = String(this.lastStep);
      this.caption.textContent = this.recorded();
    }
    this.settle(answer);
  }

  // Show the progress; once the run has ended, stop and let the page show the result.
  settle(answer) {
    this.showProgress(answer);
    if (ENDED(answer.status)) {
      this.stopped = true;
      this.ended(answer.status);
    }
  }

  showProgress(answer) {
    const d = this.data, labels = this.labels;
    if (answer.status === "queued") {
      this.barFill.style.width = "0%";
      this.statusText.textContent = fill(labels.queued, { position: answer.queue_position || 1 });
    } else {
      const fraction = Math.min(1, answer.step / Math.max(1, answer.steps));
      this.barFill.style.width = `${(100 * fraction).toFixed(1)}%`;
      const rate = answer.steps_per_s ? fill(labels.rate, { rate: this.count(Math.round(answer.steps_per_s)) }) : labels.starting;
      this.statusText.textContent = fill(labels.progress, {
        step: this.count(answer.step), steps: this.count(answer.steps), rate, eta: eta(answer.eta_s, labels),
      });
    }
    const percent = answer.held_out_loss !== null && d.baseline ? 100 * answer.held_out_loss / d.baseline : null;
    const share = percent === null ? ""
      : fill(labels.of_baseline, { percent: percent < 10 ? this.number(percent, 2) : Math.round(percent) });
    const cells = [
      [labels.train_loss, this.number(answer.loss), ""],
      [labels.held_out_loss, this.number(answer.held_out_loss), share],
      [labels.metric, this.number(answer.metric),
        d.metric_baseline !== null && d.metric_baseline !== undefined
          ? fill(labels.chance, { value: this.number(d.metric_baseline, 3) }) : ""],
      [labels.solved, answer.solved ? labels.yes : labels.not_yet, ""],
    ];
    this.metrics.innerHTML = "";
    for (const [label, value, note] of cells) {
      const cell = element("div", "rnnlab-metric", this.metrics);
      element("div", "rnnlab-metric-label", cell).textContent = label;
      element("div", "rnnlab-metric-value", cell).textContent = value;
      element("div", "rnnlab-metric-note", cell).textContent = note;
    }
  }
}

// ---------------------------------------------------------------- heatmaps and predictions

// One state's heatmap values, (units, steps): value = lo + byte * (hi - lo) / 255.
function decodeGate(gate, units, steps) {
  const bytes = Uint8Array.from(atob(gate.bytes), (c) => c.charCodeAt(0));
  const scale = (gate.hi - gate.lo) / 255;
  const z = [];
  for (let u = 0; u < units; u++) {
    const row = new Array(steps);
    for (let t = 0; t < steps; t++) row[t] = gate.lo + bytes[u * steps + t] * scale;
    z.push(row);
  }
  return z;
}

// The rows (positions in view.units) of the kept units within [from, to] (all without a range).
function unitRows(view, range) {
  const rows = [];
  view.units.forEach((unit, row) => {
    if (!range || (unit >= range[0] && unit <= range[1])) rows.push(row);
  });
  return rows;
}

// Time × unit heatmaps of the states `names` of one layer's view, three to a row; sigmoid
// gates on 0..1 (Viridis), the others symmetric around 0 (RdBu). Decoded once per view.
function drawHeatmaps(Plotly, chart, view, { names, sigmoid, titles, labels, range, uirevision }) {
  const shown = names.filter((name) => view.gates && name in view.gates);
  if (!shown.length) return false;
  const rows = unitRows(view, range);
  const units = rows.map((row) => view.units[row]);
  view.decoded = view.decoded || {};
  const columns = Math.min(shown.length, 3), gridRows = Math.ceil(shown.length / columns);
  const traces = [], annotations = [], layout = {
    height: 270 * gridRows, margin: { l: 10, r: 10, t: 40, b: 10 }, showlegend: false,
    grid: { rows: gridRows, columns, pattern: "independent", xgap: 0.08, ygap: gridRows > 1 ? 0.3 : 0.15 },
    paper_bgcolor: "rgba(0,0,0,0)", uirevision,
  };
  shown.forEach((name, index) => {
    const axis = index === 0 ? "" : String(index + 1);
    const gate = view.gates[name];
    const bounded = sigmoid.includes(name);
    const whole = view.decoded[name] || (view.decoded[name] = decodeGate(gate, view.units.length, view.steps.length));
    const reach = Math.max(Math.abs(gate.lo), Math.abs(gate.hi)) || 1;
    traces.push({
      type: "heatmap", z: rows.map((row) => whole[row]), x: view.steps, y: units,
      xaxis: "x" + axis, yaxis: "y" + axis,
      colorscale: bounded ? "Viridis" : "RdBu", zmin: bounded ? 0 : -reach, zmax: bounded ? 1 : reach,
      showscale: index === 0, colorbar: { len: 0.5, thickness: 10 },
      hovertemplate: `t=%{x} ${labels.unit}=%{y}: %{z:.3f}<extra>${name}</extra>`,
    });
    layout["xaxis" + axis] = { title: { text: labels.time_step, standoff: 2 }, automargin: true };
    layout["yaxis" + axis] = { title: { text: labels.unit, standoff: 2 }, automargin: true };
    annotations.push({ text: titles[name] || name, showarrow: false,
      xref: "x" + axis + " domain", yref: "y" + axis + " domain", x: 0.5, y: 1.0,
      xanchor: "center", yanchor: "bottom", font: { size: 13 } });
  });
  layout.annotations = annotations;
  Plotly.react(chart, traces, layout, PLOT_CONFIG);
  chart.dataset.rnnlabSnapshotStep = String(view.step);
  return true;
}

const visible = (symbol) => ({ "\n": "⏎", " ": "␣" })[symbol] ?? symbol;

// The predictions on the probe sequences: a table of the top next symbols per step, or a
// chart of predicted against true values (adding: sums; sine: the series).
class Predictions {
  constructor(parent, labels, Plotly, uirevision) {
    this.node = element("div", "rnnlab-predictions", parent);
    this.labels = labels;
    this.Plotly = Plotly;
    this.uirevision = uirevision;
  }

  // `note`: why there are none (they show someone else's word or text).
  draw(predictions, note) {
    if (!predictions) {
      if (note) {
        this.node.innerHTML = "";
        this.valueChart = null;
        element("div", "rnnlab-caption", this.node).textContent = note;
      }
      return;
    }
    if (predictions.kind === "next_symbol") this.table(predictions);
    else if ("predicted" in predictions && "target" in predictions) this.chart(predictions);
  }

  table(predictions) {
    const labels = this.labels;
    this.node.innerHTML = "";
    this.valueChart = null;
    element("div", "rnnlab-gates-title", this.node).textContent = labels.predictions;
    const table = element("table", "rnnlab-table", this.node);
    const head = element("tr", "", element("thead", "", table));
    for (const label of ["t", labels.input, labels.target, labels.top_guesses]) {
      element("th", "", head).textContent = label;
    }
    const body = element("tbody", "", table);
    predictions.input.forEach((seen, t) => {
      const top = predictions.top[t] || [];
      const row = element("tr", top.length && top[0][0] === predictions.target[t] ? "right" : "wrong", body);
      element("td", "", row).textContent = String(t);
      element("td", "", row).textContent = visible(seen);
      element("td", "", row).textContent = visible(predictions.target[t]);
      element("td", "", row).textContent = top.map(([s, p]) => `${visible(s)} ${Math.round(100 * p)}%`).join(",  ");
    });
  }

  chart(predictions) {
    const labels = this.labels;
    if (!this.valueChart) {
      this.node.innerHTML = "";
      element("div", "rnnlab-gates-title", this.node).textContent = labels.value_predictions;
      this.valueChart = element("div", "rnnlab-values-chart", this.node);
    }
    const layout = { height: 300, margin: { l: 60, r: 10, t: 30, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 }, paper_bgcolor: "rgba(0,0,0,0)",
      uirevision: this.uirevision };
    let traces;
    if (predictions.kind === "last_value") {
      const values = [...predictions.target, ...predictions.predicted].filter((v) => v !== null);
      const low = Math.min(0, ...values), high = Math.max(2, ...values);
      traces = [
        { x: predictions.target, y: predictions.predicted, mode: "markers", name: labels.sequences,
          marker: { color: COLOURS[0], size: 7 } },
        { x: [low, high], y: [low, high], mode: "lines", name: labels.perfect,
          line: { dash: "dot", color: "#999" } },
      ];
      layout.xaxis = { title: { text: labels.true_sum } };
      layout.yaxis = { title: { text: labels.predicted_sum } };
    } else {
      traces = [
        { y: predictions.target, name: labels.true_next_value, mode: "lines", line: { color: COLOURS[0] } },
        { y: predictions.predicted, name: labels.predicted, mode: "lines", line: { color: COLOURS[1] } },
      ];
      if (predictions.input) {
        traces.push({ y: predictions.input, name: labels.input, mode: "lines", line: { color: "#bbb", dash: "dot" } });
      }
      layout.xaxis = { title: { text: labels.time_step } };
    }
    this.Plotly.react(this.valueChart, traces, layout, PLOT_CONFIG);
  }
}

// ---------------------------------------------------------------- Train's gates

class GatesView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.after = -1;
    this.title = element("div", "rnnlab-gates-title", root);
    this.chart = element("div", "rnnlab-gates-chart", root);
    this.title.textContent = this.labels.waiting;
  }

  async start() {
    if (!(await this.loadPlotly())) return;
    this.predictions = new Predictions(this.root, this.labels, this.Plotly, this.data.run_id);
    if (this.fed) this.feed(this.data.fed);
    else this.poll();
  }

  // Every poll_ms while the run trains; a finished run's final snapshot is asked for once.
  async poll() {
    if (!this.polling()) return;
    const polled = await this.once("poll", async () => {
      try {
        const d = this.data;
        const view = await this.get(d.gates_url, `layer=${d.layer}&after=${this.after}`);
        if (view) this.draw(view);
        this.failures = 0;
      } catch (error) {
        if (error.status === 404) this.stopped = true;  // not a run this server knows
        else this.failed(error);
      }
    });
    if (polled && (this.data.active || this.retrying())) this.schedule(this.data.poll_ms);
  }

  feed(view) {
    if (view && view.step !== this.after) this.draw(view);
  }

  draw(view) {
    this.after = view.step;
    const d = this.data;
    const drawn = drawHeatmaps(this.Plotly, this.chart, view, {
      names: d.cell.states, sigmoid: d.cell.sigmoid, titles: d.titles, labels: this.labels,
      range: null, uirevision: d.run_id,
    });
    if (!drawn) return;
    this.title.textContent = fill(this.labels.inside, { layer: d.layer + 1, step: this.count(view.step) });
    this.predictions.draw(view.predictions, view.private ? this.labels.private : null);
  }
}

// ---------------------------------------------------------------- influence and paths

const INFLUENCE_FLOOR = 1e-4;  // rnnlab.events.INFLUENCE_FLOOR: the log axis's bottom
const INFLUENCE_HISTORY = 32;  // rnnlab.events.MAX_INFLUENCE_HISTORY
const TRAJECTORY_HISTORY = 16;  // rnnlab.events.MAX_TRAJECTORY_HISTORY
const INSIGHTS_POLL_MS = 2000;  // influence and paths change with the gradients (~5 s)
const SUPERSCRIPTS = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴" };
const POWERS = [-4, -3, -2, -1, 0];
const POWER_TEXT = POWERS.map((p) => (p === 0 ? "1" : "10" + String(p).split("").map((c) => SUPERSCRIPTS[c]).join("")));

// rnnlab.events.relative_influence: each value over the list's largest, no less than
// INFLUENCE_FLOOR (null stays).
function relativeInfluence(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const peak = present.length ? Math.max(...present) : 0;
  return values.map((v) => (v === null || v === undefined ? null
    : peak > 0 ? Math.max(v / peak, INFLUENCE_FLOOR) : INFLUENCE_FLOOR));
}

const log10OrNull = (v) => (v === null ? null : Math.log10(v));

// `seen` and `fresh` merged by step (fresh wins), sorted, at most `limit` (every other
// dropped, the last kept): a run that ends is answered from the store with its last
// snapshot alone, and the browser keeps what it saw.
function mergeByStep(seen, fresh, stepOf, limit) {
  const byStep = new Map(seen.map((entry) => [stepOf(entry), entry]));
  for (const entry of fresh) byStep.set(stepOf(entry), entry);
  let merged = [...byStep.values()].sort((a, b) => stepOf(a) - stepOf(b));
  while (merged.length > limit) merged = merged.filter((e, i, all) => i % 2 === 0 || i === all.length - 1);
  return merged;
}

// Which input steps the predictions use: the last prediction's influence per probe
// sequence (log scale, each line over its own largest), the map of every prediction t′
// against every input t (tasks that answer at every step), and sequence 1's influence
// at each snapshot with influence so far. Drawn by InsideView and InfluenceView alike.
class InfluencePanel {
  constructor(parent, view) {
    this.owner = view;  // the View: its Plotly, labels, number formats
    const labels = view.labels;
    this.view = null;
    this.history = [];
    this.drawn = null;
    this.node = element("div", "rnnlab-influence", parent);
    markdown(element("div", "rnnlab-chart-title", this.node), labels.influence_title);
    this.waiting = element("div", "rnnlab-caption", this.node);
    this.waiting.textContent = labels.influence_waiting;
    this.body = element("div", "", this.node);
    this.body.style.display = "none";
    this.lastChart = element("div", "rnnlab-influence-chart", this.body);
    this.lastCaption = element("div", "rnnlab-caption", this.body);
    this.columns = element("div", "rnnlab-columns", this.body);
    const columns = this.columns;
    this.mapBox = element("div", "", columns);
    markdown(element("div", "rnnlab-chart-title", this.mapBox), labels.influence_map_title);
    this.mapChart = element("div", "rnnlab-influence-map", this.mapBox);
    this.mapCaption = element("div", "rnnlab-caption", this.mapBox);
    const historyBox = element("div", "", columns);
    markdown(element("div", "rnnlab-chart-title", historyBox), labels.influence_history_title);
    this.historyChart = element("div", "rnnlab-influence-history", historyBox);
    this.historyCaption = element("div", "rnnlab-caption", historyBox);
  }

  update(view) {
    if (!view) return;
    const fresh = view.history || [];
    const reset = this.view && view.seq_len !== this.view.seq_len;
    this.history = mergeByStep(reset ? [] : this.history, fresh, (entry) => entry[0], INFLUENCE_HISTORY);
    this.view = view;
  }

  // An input step's label: t, and the probe's symbol there if the view has them.
  tick(t) {
    const view = this.view;
    const at = view.symbols ? view.steps.indexOf(t) : -1;
    return at >= 0 ? `${t} ${escapeHtml(visible(view.symbols[at]))}` : String(t);
  }

  logAxis(title) {
    return { title: { text: title }, type: "log", range: [Math.log10(INFLUENCE_FLOOR), 0.05],
      tickvals: POWERS.map((p) => 10 ** p), ticktext: POWER_TEXT };
  }

  colourBar(title) {
    return { len: 0.9, thickness: 10, title: { text: title, side: "right" }, tickvals: POWERS, ticktext: POWER_TEXT };
  }

  draw() {
    const view = this.view, owner = this.owner, Plotly = owner.Plotly;
    this.waiting.style.display = view ? "none" : "";
    this.body.style.display = view ? "" : "none";
    if (!view || !Plotly) return;
    const signature = `${view.step}:${this.history.length}:${this.node.offsetWidth}`;
    if (this.drawn === signature) return;
    this.drawn = signature;
    const labels = owner.labels, uirevision = owner.data.run_id;
    const layoutBase = { margin: { l: 70, r: 10, t: 30, b: 50 }, paper_bgcolor: "rgba(0,0,0,0)", uirevision };
    const steps = view.steps;
    const lines = view.last.map((values, i) => ({
      x: steps, y: relativeInfluence(values), name: fill(labels.sequence_trace, { n: i + 1 }),
      mode: "lines+markers", line: { color: COLOURS[i % COLOURS.length], width: 2 }, marker: { size: 4 },
      hovertemplate: `t=%{x}: %{y:.2e}<extra>${fill(labels.sequence_trace, { n: i + 1 })}</extra>`,
    }));
    if (view.marked) {
      const x = [], y = [], colours = [];
      view.marked.forEach((positions, i) => {
        const relative = lines[i] ? lines[i].y : null;
        for (const t of positions) {
          let at = 0;
          steps.forEach((s, k) => { if (Math.abs(s - t) < Math.abs(steps[at] - t)) at = k; });
          x.push(t);
          y.push(relative ? relative[at] : 1);
          colours.push(COLOURS[i % COLOURS.length]);
        }
      });
      lines.push({ x, y, name: labels.marked_trace, mode: "markers", hovertemplate: `t=%{x}<extra>${labels.marked_trace}</extra>`,
        marker: { symbol: "star", size: 14, color: colours, line: { color: "#222", width: 1 } } });
    }
    const xaxis = { title: { text: labels.input_step_axis }, range: [-0.5, view.seq_len - 0.5] };
    if (view.symbols && steps.length <= 40) {
      xaxis.tickvals = steps;
      xaxis.ticktext = steps.map((t) => this.tick(t));
    }
    Plotly.react(this.lastChart, lines, {
      ...layoutBase, height: 320, legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis, yaxis: this.logAxis(labels.influence_axis),
    }, PLOT_CONFIG);
    this.lastChart.dataset.rnnlabInfluenceStep = String(view.step);
    this.lastCaption.textContent = fill(view.marked ? labels.influence_caption_marked : labels.influence_caption, {
      step: owner.count(view.step),
    }) + (view.private ? " " + labels.influence_private : "");

    if (view.map && view.map_steps) {
      const outputs = view.map_steps;
      const z = view.map.map((row) => {
        const relative = relativeInfluence(row).map(log10OrNull);
        return outputs.map((_, j) => (j < relative.length ? relative[j] : null));
      });
      const ticks = outputs.map((t) => this.tick(t));
      const index = outputs.map((_, i) => i);
      Plotly.react(this.mapChart, [{
        type: "heatmap", z, x: index, y: index, zmin: Math.log10(INFLUENCE_FLOOR), zmax: 0,
        colorscale: "Viridis", colorbar: this.colourBar(labels.relative_axis), hoverongaps: false,
        customdata: outputs.map((tp) => outputs.map((t) => [t, tp])),
        hovertemplate: `t=%{customdata[0]} → t′=%{customdata[1]}: 10^%{z:.1f}<extra></extra>`,
      }], {
        ...layoutBase, height: 340,
        xaxis: { title: { text: labels.input_step_axis }, tickvals: index, ticktext: ticks, tickangle: 0 },
        yaxis: { title: { text: labels.prediction_step_axis }, tickvals: index, ticktext: ticks },
      }, PLOT_CONFIG);
      this.mapBox.style.display = "";
      this.columns.classList.remove("rnnlab-single");
      this.mapCaption.textContent = labels.influence_map_caption;
    } else {  // the model answers at the last step only: the history gets the whole width
      this.clear(this.mapChart);
      this.mapBox.style.display = "none";
      this.columns.classList.add("rnnlab-single");
    }

    const history = this.history;
    const z = history.map(([, values]) => relativeInfluence(values).map(log10OrNull));
    const rows = history.map((_, i) => i);
    const shapes = (view.marked && view.marked[0] ? view.marked[0] : []).map((t) => ({
      type: "line", x0: t, x1: t, yref: "paper", y0: 0, y1: 1, line: { color: "#fff", width: 1.5, dash: "dot" } }));
    Plotly.react(this.historyChart, [{
      type: "heatmap", z, x: steps, y: rows, zmin: Math.log10(INFLUENCE_FLOOR), zmax: 0,
      colorscale: "Viridis", colorbar: this.colourBar(labels.relative_axis),
      customdata: history.map(([step]) => steps.map(() => owner.count(step))),
      hovertemplate: `t=%{x}, ${labels.training_step_axis} %{customdata}: 10^%{z:.1f}<extra></extra>`,
    }], {
      ...layoutBase, height: 340, shapes,
      xaxis: { title: { text: labels.input_step_axis } },
      yaxis: { title: { text: labels.training_step_axis }, tickvals: rows,
        ticktext: history.map(([step]) => owner.count(step)), nticks: 8 },
    }, PLOT_CONFIG);
    this.historyChart.dataset.rnnlabInfluenceHistory = String(history.length);
    this.historyCaption.textContent = history.length > 1 ? labels.influence_history_caption : labels.influence_history_empty;
  }

  clear(node) {
    if (node.data && this.owner.Plotly) this.owner.Plotly.purge(node);
  }
}

// `seen` (a layer's trajectory view the browser has) brought up to date with `fresh`:
// the paths of the snapshots on the latest axes, those the browser saw included.
function mergeTrajectory(seen, fresh) {
  if (!fresh) return seen;
  if (!seen || seen.reference_step !== fresh.reference_step) return fresh;
  const snapshots = mergeByStep(seen.snapshots, fresh.snapshots, (entry) => entry.step, TRAJECTORY_HISTORY);
  return { ...fresh, snapshots };
}

// Where a layer's hidden state travels: each probe sequence's path through time on the
// two principal axes fitted at the view's reference_step (start ○, end ✕, time by
// colour), and a slider over the snapshots that share those axes.
class TrajectoryPanel {
  constructor(parent, view) {
    this.owner = view;
    const labels = view.labels;
    this.view = null;
    this.chosen = null;  // the step the slider holds; null: follow the latest
    this.drawn = null;
    this.node = element("div", "rnnlab-trajectory", parent);
    markdown(element("div", "rnnlab-chart-title", this.node), labels.trajectory_title);
    this.waiting = element("div", "rnnlab-caption", this.node);
    this.waiting.textContent = labels.trajectory_waiting;
    this.body = element("div", "", this.node);
    this.body.style.display = "none";
    this.control = element("label", "rnnlab-profiles rnnlab-trajectory-control", this.body);
    element("span", "", this.control).textContent = labels.trajectory_slider;
    this.slider = element("input", "rnnlab-trajectory-slider", this.control);
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.step = "1";
    this.sliderText = element("span", "rnnlab-profiles-count", this.control);
    this.slider.addEventListener("input", () => {
      const snapshots = this.view ? this.view.snapshots : [];
      const at = Number(this.slider.value);
      this.chosen = at >= snapshots.length - 1 ? null : snapshots[at].step;
      this.draw();
    });
    this.chart = element("div", "rnnlab-trajectory-chart", this.body);
    this.caption = element("div", "rnnlab-caption", this.body);
  }

  show(view) {
    if (view !== this.view) {
      if (!view || !this.view || view.reference_step !== this.view.reference_step || view.layer !== this.view.layer) this.chosen = null;
      this.view = view;
    }
    this.draw();
  }

  draw() {
    const view = this.view, owner = this.owner, Plotly = owner.Plotly, labels = owner.labels;
    this.waiting.style.display = view ? "none" : "";
    this.body.style.display = view ? "" : "none";
    if (!view || !Plotly) return;
    const snapshots = view.snapshots;
    let at = snapshots.length - 1;
    if (this.chosen !== null) {
      const found = snapshots.findIndex((entry) => entry.step >= this.chosen);
      at = found >= 0 ? found : at;
    }
    const entry = snapshots[at];
    const signature = `${view.layer}:${view.step}:${snapshots.length}:${at}:${this.node.offsetWidth}`;
    this.slider.max = String(snapshots.length - 1);
    this.slider.value = String(at);
    this.slider.disabled = snapshots.length < 2;
    this.sliderText.textContent = fill(labels.trajectory_position, {
      step: owner.count(entry.step), n: at + 1, count: snapshots.length });
    this.node.dataset.rnnlabTrajectorySnapshots = String(snapshots.length);
    this.node.dataset.rnnlabTrajectoryLayer = String(view.layer);
    if (this.drawn === signature) return;
    this.drawn = signature;
    // The same ranges for every snapshot on these axes: moving the slider moves the paths.
    let xs = [], ys = [];
    for (const shot of snapshots) for (const path of shot.paths) for (const [x, y] of path) { xs.push(x); ys.push(y); }
    const span = (values) => {
      const low = Math.min(...values), high = Math.max(...values), pad = 0.06 * (high - low || 1);
      return [low - pad, high + pad];
    };
    const steps = view.steps, traces = [];
    entry.paths.forEach((path, i) => {
      const colour = COLOURS[i % COLOURS.length];
      const name = fill(labels.sequence_trace, { n: i + 1 });
      traces.push({ x: path.map((p) => p[0]), y: path.map((p) => p[1]), name, mode: "lines+markers",
        line: { color: colour, width: 1.5 }, customdata: steps,
        marker: { size: 6, color: steps, colorscale: "Viridis", cmin: 0, cmax: Math.max(1, steps[steps.length - 1]),
          showscale: i === 0, colorbar: { len: 0.8, thickness: 10, title: { text: labels.time_step_t, side: "right" } } },
        hovertemplate: `t=%{customdata}: (%{x:.3g}, %{y:.3g})<extra>${name}</extra>` });
    });
    const ends = (which, symbol, name) => ({
      x: entry.paths.map((path) => path[which(path)][0]), y: entry.paths.map((path) => path[which(path)][1]),
      name, mode: "markers", hoverinfo: "name",
      marker: { symbol, size: 13, color: entry.paths.map((_, i) => COLOURS[i % COLOURS.length]), line: { color: "#222", width: 2 } },
    });
    traces.push(ends(() => 0, "circle-open", labels.start_trace));
    traces.push(ends((path) => path.length - 1, "x", labels.end_trace));
    const percent = (share) => Math.round(100 * share);
    Plotly.react(this.chart, traces, {
      height: 440, margin: { l: 70, r: 10, t: 30, b: 50 }, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#F3F6FA", legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis: { title: { text: fill(labels.pc_axis, { n: 1, percent: percent(entry.explained[0]) }) }, range: span(xs), zeroline: false },
      yaxis: { title: { text: fill(labels.pc_axis, { n: 2, percent: percent(entry.explained[1]) }) }, range: span(ys), zeroline: false },
      uirevision: `${owner.data.run_id}-trajectory-${view.layer}`,
    }, PLOT_CONFIG);
    this.chart.dataset.rnnlabTrajectoryStep = String(entry.step);
    this.caption.textContent = fill(labels.trajectory_caption, {
      reference: owner.count(view.reference_step), count: snapshots.length,
      percent: percent(view.reference_explained[0] + view.reference_explained[1]),
    });
  }
}

// ---------------------------------------------------------------- Train's influence

class InfluenceView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.panel = new InfluencePanel(root, this);
  }

  async poll() {
    if (!this.polling()) return;
    const polled = await this.once("poll", async () => {
      try {
        const after = this.panel.view ? this.panel.view.step : -1;
        const view = await this.get(this.data.influence_url, `after=${after}`);
        this.failures = 0;
        if (view) {
          this.panel.update(view);
          this.panel.draw();
        }
      } catch (error) {
        if (error.status === 404) this.stopped = true;
        else this.failed(error);
      }
    });
    if (polled && (this.data.active || this.retrying())) this.schedule(INSIGHTS_POLL_MS);
  }

  feed(view) {
    if (view && (!this.panel.view || this.panel.view.step !== view.step)) this.panel.update(view);
    this.panel.draw();
  }
}

// ---------------------------------------------------------------- Inside the cell

class InsideView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.views = {};  // layer -> its latest view (a snapshot's pictures of that layer)
    this.layer = 0;
    this.range = null;  // [first, last] unit shown; null: every kept unit
    this.progress = null;
    this.gradients = null;
    this.profilesShown = null;  // how many of the latest gradient profiles; null: all
    const labels = this.labels;
    root.dataset.rnnlabLayer = "0";
    this.header = element("div", "rnnlab-header", root);
    this.waiting = element("div", "rnnlab-caption", root);
    this.waiting.textContent = labels.no_snapshot;
    this.body = element("div", "rnnlab-inside", root);
    this.body.style.display = "none";
    this.unitsNote = element("div", "rnnlab-caption", this.body);
    const controls = element("div", "rnnlab-controls", this.body);
    this.tabs = element("div", "rnnlab-tabs", controls);
    if ((data.layers || 1) > 1) {
      for (let layer = 0; layer < data.layers; layer++) {
        const tab = element("button", "rnnlab-tab", this.tabs);
        tab.type = "button";
        tab.dataset.layer = String(layer);
        tab.textContent = fill(labels.layer_tab, { n: layer + 1 });
        tab.addEventListener("click", () => this.selectLayer(layer));
      }
    }
    const range = element("label", "rnnlab-range", controls);
    element("span", "", range).textContent = labels.units;
    this.rangeFrom = element("select", "rnnlab-range-from", range);
    element("span", "", range).textContent = "–";
    this.rangeTo = element("select", "rnnlab-range-to", range);
    for (const select of [this.rangeFrom, this.rangeTo]) {
      select.addEventListener("change", () => this.selectUnits(Number(this.rangeFrom.value), Number(this.rangeTo.value)));
    }
    this.heatmaps = element("div", "rnnlab-gates-chart", this.body);
    this.means = element("div", "rnnlab-caption", this.body);
    this.saturation = element("div", "rnnlab-saturation", this.body);
    markdown(element("div", "rnnlab-chart-title", this.saturation), labels.saturation_title);
    this.saturationChart = element("div", "rnnlab-saturation-chart", this.saturation);
    element("div", "rnnlab-caption", this.saturation).textContent = labels.saturation_caption;
    this.radius = element("div", "rnnlab-caption", this.body);
    const columns = element("div", "rnnlab-columns", this.body);
    const left = element("div", "", columns), right = element("div", "", columns);
    markdown(element("div", "rnnlab-chart-title", left), labels.gradient_title);
    this.gradientChart = element("div", "rnnlab-gradient-chart", left);
    element("div", "rnnlab-caption", left).textContent = labels.gradient_caption;
    markdown(element("div", "rnnlab-chart-title", right), labels.history_title);
    this.historyControl = element("label", "rnnlab-profiles", right);
    element("span", "", this.historyControl).textContent = labels.snapshots_shown;
    this.historySlider = element("input", "", this.historyControl);
    this.historySlider.type = "range";
    this.historySlider.min = "1";
    this.historyCount = element("span", "rnnlab-profiles-count", this.historyControl);
    this.historySlider.addEventListener("input", () => {
      this.profilesShown = Number(this.historySlider.value);
      this.drawHistory();
    });
    this.historyChart = element("div", "rnnlab-history-chart", right);
    this.historyCaption = element("div", "rnnlab-caption", right);
    this.trajectories = {};  // layer -> its trajectory view, merged (mergeTrajectory)
    this.influencePanel = new InfluencePanel(this.body, this);
    this.trajectoryPanel = new TrajectoryPanel(this.body, this);
    this.selectTab();
  }

  restart() {
    this.poll();  // a finished run's: once, with its gradients
    if (this.data.active !== false) this.pollGradients();
  }

  fetchView(layer) {
    const after = this.views[layer] ? this.views[layer].step : -1;
    return this.get(this.data.gates_url, `layer=${layer}&after=${after}`);
  }

  fetchGradients() {
    const after = this.gradients ? this.gradients.gradient_step : -1;
    return this.get(this.data.gradients_url, `after=${after}`);
  }

  fetchInfluence() {
    const seen = this.influencePanel.view;
    return this.get(this.data.influence_url, `after=${seen ? seen.step : -1}`);
  }

  fetchTrajectory(layer) {
    const seen = this.trajectories[layer];
    return this.get(this.data.trajectory_url, `layer=${layer}&after=${seen ? seen.step : -1}`);
  }

  // Take in the answers of the influence and trajectory routes (null: nothing newer).
  takeInsights(influence, trajectory, layer) {
    if (influence) this.influencePanel.update(influence);
    if (trajectory) this.trajectories[layer] = mergeTrajectory(this.trajectories[layer], trajectory);
  }

  // Progress and the shown layer's view every poll_ms while the run trains; once it has
  // ended, one last look at both pictures, then no more.
  async poll() {
    if (!this.polling()) return;
    const started = performance.now(), layer = this.layer;
    const polled = await this.once("poll", async () => {
      const [progress, view] = await Promise.all([
        this.get(this.data.points_url, `since=${this.data.settings.steps}`),
        this.fetchView(layer),
      ]);
      this.failures = 0;
      this.progress = progress;
      if (view) this.views[layer] = view;
      if (ENDED(progress.status) || this.data.active === false) {
        this.stopped = true;
        const shown = this.layer;
        const [last, gradients, influence, trajectory] = await Promise.all([
          this.fetchView(shown), this.fetchGradients(), this.fetchInfluence(), this.fetchTrajectory(shown),
        ]);
        if (last) this.views[shown] = last;
        if (gradients) this.gradients = gradients;
        this.takeInsights(influence, trajectory, shown);
      }
      this.draw();
    }).catch((error) => {
      if (error.status === 404) this.stopped = true;
      else this.failed(error);
      return true;
    });
    if (polled) this.schedule(this.data.poll_ms - (performance.now() - started));
  }

  // The gradient history, the influence and the shown layer's paths, which all change
  // with the gradients (every few seconds).
  async pollGradients() {
    if (!this.polling()) return;
    const polled = await this.once("gradients", async () => {
      const layer = this.layer, quiet = () => null;  // the progress poll counts failures
      const [gradients, influence, trajectory] = await Promise.all([
        this.fetchGradients().catch(quiet), this.fetchInfluence().catch(quiet),
        this.fetchTrajectory(layer).catch(quiet),
      ]);
      if (gradients) {
        this.gradients = gradients;
        this.drawHistory();
      }
      this.takeInsights(influence, trajectory, layer);
      if (influence || trajectory) this.drawInsights();
    });
    if (polled) this.schedule(GRADIENTS_POLL_MS, () => this.pollGradients(), "gradients");
  }

  feed(fed) {
    if (!fed) return;
    this.progress = fed.progress || this.progress;
    for (const [layer, view] of Object.entries(fed.views || {})) {
      if (view && (!this.views[layer] || this.views[layer].step !== view.step)) this.views[layer] = view;
    }
    if (fed.gradients) this.gradients = fed.gradients;
    if (fed.influence) this.influencePanel.update(fed.influence);
    for (const [layer, view] of Object.entries(fed.trajectories || {})) {
      if (view) this.trajectories[layer] = mergeTrajectory(this.trajectories[layer], view);
    }
    this.draw();
  }

  // A layer's pictures from the browser's copy; the layer's view is asked for when the
  // browser has none yet (fed views have every layer).
  async selectLayer(layer) {
    this.layer = layer;
    this.root.dataset.rnnlabLayer = String(layer);
    this.selectTab();
    this.draw();
    if (this.fed) return;
    try {
      const [view, trajectory] = await Promise.all([
        this.views[layer] ? null : this.fetchView(layer),
        this.trajectories[layer] ? null : this.fetchTrajectory(layer),
      ]);
      if (view) this.views[layer] = view;
      this.takeInsights(null, trajectory, layer);
      if (this.layer === layer && (view || trajectory)) this.draw();
    } catch (error) {
      this.failed(error);
    }
  }

  selectTab() {
    for (const tab of this.tabs.children) tab.classList.toggle("selected", Number(tab.dataset.layer) === this.layer);
  }

  selectUnits(first, last) {
    this.range = [Math.min(first, last), Math.max(first, last)];
    this.draw();
  }

  // The range selector's choices: the kept units; the range kept within them.
  rangeOf(view) {
    const units = view.units;
    const first = units[0], last = units[units.length - 1];
    let range = this.range ? [Math.max(first, this.range[0]), Math.min(last, this.range[1])] : [first, last];
    if (range[0] > range[1]) range = [first, last];
    const options = units.map(String).join(",");
    if (this.rangeOptions !== options) {
      this.rangeOptions = options;
      for (const select of [this.rangeFrom, this.rangeTo]) {
        select.innerHTML = "";
        for (const unit of units) element("option", "", select).textContent = String(unit);
      }
    }
    this.rangeFrom.value = String(units.find((unit) => unit >= range[0]));
    this.rangeTo.value = String([...units].reverse().find((unit) => unit <= range[1]));
    this.root.dataset.rnnlabUnits = `${range[0]}-${range[1]}`;
    return range;
  }

  draw() {
    const view = this.views[this.layer] || this.views[String(this.layer)];
    const d = this.data, labels = this.labels;
    this.drawHeader(view);
    this.waiting.style.display = view ? "none" : "";
    this.body.style.display = view ? "" : "none";
    if (!view) return;
    const range = this.rangeOf(view);
    const shown = unitRows(view, range).length;
    this.unitsNote.textContent = shown < view.hidden_size
      ? fill(labels.showing_units, { shown: this.count(shown), total: this.count(view.hidden_size) }) : "";
    drawHeatmaps(this.Plotly, this.heatmaps, view, {
      names: d.cell.states, sigmoid: d.cell.sigmoid, titles: d.titles, labels,
      range, uirevision: `${d.run_id}-${this.layer}`,
    });
    const means = Object.entries(view.gate_means || {}).filter(([, v]) => v !== null && v !== undefined);
    this.means.textContent = means.length ? fill(labels.gate_means, {
      values: means.map(([gate, v]) => `${gate} = ${Number(v).toLocaleString(d.lang || undefined,
        { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`).join(", "),
    }) : "";
    this.drawSaturation(view, range);
    const radii = Object.entries(view.spectral_radius || {}).filter(([, v]) => v !== null && v !== undefined);
    this.radius.textContent = radii.length
      ? fill(labels.spectral_radius, { radii: radii.map(([block, v]) => `${block} ${this.number(v, 3)}`).join(", ") })
      : "";
    this.drawGradients(view);
    this.drawHistory();
    this.drawInsights();
  }

  drawInsights() {
    if (this.body.style.display === "none") return;
    this.influencePanel.draw();
    this.trajectoryPanel.show(this.trajectories[this.layer] || null);
  }

  drawHeader(view) {
    const s = this.data.settings, labels = this.labels;
    if (!view) {
      this.header.textContent = "";
      return;
    }
    const status = this.progress ? this.progress.status : null;
    markdown(this.header, fill(s.num_layers === 1 ? labels.header_one : labels.header_other, {
      cell: String(s.cell).toUpperCase(), activation: s.activation, n: s.num_layers,
      hidden: this.count(s.hidden_size), step: this.count(view.step), steps: this.count(s.steps),
      status: status === null ? "…" : (labels.statuses || {})[status] || status,
    }));
  }

  // Per unit: the fraction of time steps a gate is nearly closed (x) against nearly open (y).
  drawSaturation(view, range) {
    const gates = Object.entries(view.saturation || {});
    this.saturation.style.display = gates.length ? "" : "none";
    if (!gates.length) return;
    const rows = unitRows(view, range);
    const traces = gates.map(([gate, values], index) => ({
      x: rows.map((row) => values.left[row]), y: rows.map((row) => values.right[row]),
      text: rows.map((row) => `${this.labels.unit} ${view.units[row]}`),
      name: this.data.titles[gate] || gate, mode: "markers",
      marker: { size: 7, opacity: 0.7, color: COLOURS[index % COLOURS.length] },
    }));
    this.Plotly.react(this.saturationChart, traces, {
      height: 360, margin: { l: 60, r: 10, t: 40, b: 50 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      shapes: [{ type: "line", x0: 0, y0: 1, x1: 1, y1: 0, line: { color: "#bbb", dash: "dot" } }],
      xaxis: { title: { text: this.labels.closed_axis }, range: [-0.03, 1.03] },
      yaxis: { title: { text: this.labels.open_axis }, range: [-0.03, 1.03] },
      paper_bgcolor: "rgba(0,0,0,0)", uirevision: `${this.data.run_id}-saturation`,
    }, PLOT_CONFIG);
  }

  // ‖∂L/∂h_t‖ across the kept time steps, one line per layer, log scale.
  drawGradients(view) {
    const norms = view.gradient_norms || [];
    const traces = norms.map((layerNorms, layer) => ({
      x: view.steps, y: layerNorms, name: fill(this.labels.layer_trace, { layer: layer + 1 }),
      mode: "lines+markers", line: { color: COLOURS[layer % COLOURS.length] }, marker: { size: 4 },
    }));
    this.Plotly.react(this.gradientChart, traces, this.gradientLayout("‖∂L/∂h_t‖", "gradients"), PLOT_CONFIG);
  }

  gradientLayout(yTitle, name) {
    return {
      height: 320, margin: { l: 70, r: 10, t: 40, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis: { title: { text: this.labels.time_step_t } },
      yaxis: { title: { text: yTitle }, type: "log", exponentformat: "power" },
      paper_bgcolor: "rgba(0,0,0,0)", uirevision: `${this.data.run_id}-${name}`,
    };
  }

  // Layer 1's gradient profile at the latest snapshots with gradients, light (early) to
  // dark (late); the slider picks how many of the latest.
  drawHistory() {
    const gradients = this.gradients;
    const history = gradients ? gradients.history : [];
    const enough = history.length > 1;
    this.historyControl.style.display = enough ? "" : "none";
    this.historyChart.style.display = enough ? "" : "none";
    this.historyCaption.textContent = enough ? this.labels.history_caption : this.labels.history_empty;
    if (gradients) this.historyChart.dataset.rnnlabGradientStep = String(gradients.gradient_step);
    if (!enough || !this.Plotly) return;
    const shown = Math.min(history.length, this.profilesShown ?? history.length);
    this.historySlider.max = String(history.length);
    this.historySlider.value = String(shown);
    this.historyCount.textContent = this.count(shown);
    const latest = history.slice(history.length - shown);
    const traces = latest.map(([step, norms], index) => ({
      x: gradients.steps, y: norms, name: fill(this.labels.step_trace, { step: this.count(step) }),
      mode: "lines", line: { color: `rgba(76,120,168,${(0.25 + 0.75 * (index + 1) / shown).toFixed(2)})` },
    }));
    this.Plotly.react(this.historyChart, traces, this.gradientLayout(this.labels.history_axis, "history"), PLOT_CONFIG);
  }
}

// ---------------------------------------------------------------- a race's runs

// ---------------------------------------------------------------- many runs' rows

// What the race and the room share: rows of runs from one route (`rowsUrl`), each with
// the new points of its curve after the step it was last seen at; the curves extend in
// place unless runs came or went. Subclasses draw (`draw`) and say what else a new
// answer changes (`received`).
class RunsView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.runs = new Map();  // run id -> {row, steps, losses, seen, ...newRun(row)}
    this.order = [];
  }

  async poll() {
    if (!this.polling()) return;
    const started = performance.now();
    const polled = await this.once("poll", async () => {
      try {
        const since = [...this.runs].map(([id, run]) => `${id}:${run.seen}`).join(",");
        this.receive(await this.get(this.rowsUrl(), `since=${since}`), false);
        this.failures = 0;
      } catch (error) {
        this.failed(error);
      }
    });
    if (polled) this.schedule(Math.max(100, this.data.poll_ms - (performance.now() - started)));
  }

  feed(answer) {
    if (answer) this.receive(answer, true);
  }

  newRun(row) {
    return {};
  }

  // New rows and points (or, `whole`, every point again).
  receive(answer, whole) {
    const runs = new Map(), extension = { x: [], y: [], indices: [] };
    let changed = answer.runs.length !== this.runs.size || whole;
    for (const row of answer.runs) {
      let run = this.runs.get(row.run_id);
      if (!run || whole) {
        run = { steps: [], losses: [], ...this.newRun(row) };
        changed = true;
      }
      run.row = row;
      run.seen = row.seen;
      const points = after(run.steps, row.points);
      run.steps.push(...points.step);
      run.losses.push(...points.loss);
      if (points.step.length && !changed) {
        extension.x.push(points.step);
        extension.y.push(points.loss);
        extension.indices.push(this.order.indexOf(row.run_id));
      }
      runs.set(row.run_id, run);
    }
    this.runs = runs;
    const positive = [...runs.values()].every((run) => run.losses.every((v) => v === null || v > 0));
    if (changed || positive !== this.logY) {
      this.order = [...runs.keys()];
      this.logY = positive;
      this.draw();
    } else if (extension.indices.length) {
      this.Plotly.extendTraces(this.chart, { x: extension.x, y: extension.y }, extension.indices);
    }
    this.received();
  }
}

// One small loss chart per run of a sweep (three to a row, a shared log y), in the order
// the runs were submitted, extended in place; when all `total` runs have ended, the
// result grid: the mean final loss for each value of axes[0] (rows) and of axes[1] (or
// the seed, columns).
const RACE_COLUMNS = 3;

class RaceView extends RunsView {
  constructor(root, data, component) {
    super(root, data, component);
    this.status = element("div", "rnnlab-status", root);
    this.bar = element("div", "rnnlab-bar", this.status);
    this.barFill = element("div", "rnnlab-bar-fill", this.bar);
    this.statusText = element("div", "rnnlab-status-text", this.status);
    this.chart = element("div", "rnnlab-race-chart", root);
    this.grid = element("div", "rnnlab-race-grid", root);
    root.dataset.rnnlabRaceRuns = "0";
    root.dataset.rnnlabRaceDone = "0";
    this.showProgress(0);
  }

  rowsUrl() {
    return this.data.sweep_url;
  }

  received() {
    const done = [...this.runs.values()].filter((run) => ENDED(run.row.status)).length;
    this.showProgress(done);
    if (done >= this.data.total && this.runs.size >= this.data.total) {
      this.drawGrid();
      this.stopped = true;
      this.ended(true);
    }
  }

  showProgress(done) {
    const total = this.data.total, labels = this.labels;
    this.barFill.style.width = `${(100 * Math.min(1, done / Math.max(1, total))).toFixed(1)}%`;
    this.statusText.textContent = fill(total === 1 ? labels.progress_one : labels.progress_other,
      { done: this.count(done), total: this.count(total) });
    this.root.dataset.rnnlabRaceDone = String(done);
  }

  setting(row, name) {
    return row.config && name in row.config ? row.config[name] : row[name];
  }

  title(row) {
    const parts = this.data.axes.map((axis) => `${axis}=${this.setting(row, axis)}`);
    parts.push(fill(this.labels.seed, { seed: this.setting(row, "seed") }));
    return parts.join(" · ");
  }

  draw() {
    const count = this.order.length, rows = Math.max(1, Math.ceil(count / RACE_COLUMNS));
    const traces = [], annotations = [];
    const layout = {
      height: 180 * rows + 60, margin: { l: 50, r: 10, t: 40, b: 30 }, showlegend: false,
      grid: { rows, columns: RACE_COLUMNS, pattern: "independent", xgap: 0.08, ygap: 0.35 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#F3F6FA", uirevision: this.data.sweep_id,
    };
    this.order.forEach((id, index) => {
      const run = this.runs.get(id), axis = index === 0 ? "" : String(index + 1);
      traces.push({ x: [...run.steps], y: [...run.losses], mode: "lines", xaxis: "x" + axis, yaxis: "y" + axis,
        name: escapeHtml(this.title(run.row)), line: { color: COLOURS[index % COLOURS.length], width: 1.5 } });
      layout["xaxis" + axis] = { range: [0, run.row.steps], ...(index ? { matches: "x" } : {}) };
      layout["yaxis" + axis] = { type: this.logY ? "log" : "linear", exponentformat: "power", autorange: true,
        ...(index ? { matches: "y" } : {}) };
      annotations.push({ text: escapeHtml(this.title(run.row)), showarrow: false, font: { size: 11 },
        xref: "x" + axis + " domain", yref: "y" + axis + " domain", x: 0.5, y: 1.0,
        xanchor: "center", yanchor: "bottom" });
    });
    layout.annotations = annotations;
    this.chart.style.display = count ? "" : "none";
    if (count) this.Plotly.react(this.chart, traces, layout, PLOT_CONFIG);
    this.root.dataset.rnnlabRaceRuns = String(count);
  }

  // Rows: the values of axes[0]; columns: of axes[1], or the seed; each cell the mean
  // final loss of its runs, in the order the values were first submitted.
  drawGrid() {
    const axes = this.data.axes;
    const rowAxis = axes[0], columnAxis = axes.length > 1 ? axes[1] : "seed";
    const rowValues = [], columnValues = [], cells = new Map();
    for (const id of this.order) {
      const row = this.runs.get(id).row;
      const r = String(this.setting(row, rowAxis)), c = String(this.setting(row, columnAxis));
      if (!rowValues.includes(r)) rowValues.push(r);
      if (!columnValues.includes(c)) columnValues.push(c);
      const loss = row.final_loss;
      if (loss === null || loss === undefined || !Number.isFinite(loss)) continue;
      const cell = cells.get(`${r}\u0000${c}`) || { sum: 0, n: 0 };
      cell.sum += loss;
      cell.n += 1;
      cells.set(`${r}\u0000${c}`, cell);
    }
    const z = rowValues.map((r) => columnValues.map((c) => {
      const cell = cells.get(`${r}\u0000${c}`);
      return cell ? cell.sum / cell.n : null;
    }));
    this.Plotly.react(this.grid, [{
      type: "heatmap", z, x: columnValues, y: rowValues, colorscale: "Viridis", reversescale: true,
      text: z.map((values) => values.map((v) => (v === null ? "" : this.number(v, 3)))),
      texttemplate: "%{text}", hovertemplate: "%{y} × %{x}: %{z:.4g}<extra></extra>",
    }], {
      title: { text: this.labels.grid_title }, height: 300, margin: { l: 60, r: 10, t: 50, b: 45 },
      xaxis: { title: { text: columnAxis }, type: "category" },
      yaxis: { title: { text: rowAxis }, type: "category", autorange: "reversed" },  // first value on top
      paper_bgcolor: "rgba(0,0,0,0)",
    }, PLOT_CONFIG);
    this.grid.dataset.rnnlabRaceGrid = String(rowValues.length * columnValues.length);
  }
}

// ---------------------------------------------------------------- the room's runs

// Every run on the server: a leaderboard (solved first, by the step they solved at; then
// by loss) and their curves overlaid, one colour per run, one line style per cell. Each
// row carries data-rnnlab-room-run and data-step; the chart carries data-rnnlab-room-runs.
const ROOM_PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2",
  "#FF9DA6", "#9D755D", "#EECA3B", "#BAB0AC"];
const ROOM_DASH = { rnn: "dot", lstm: "solid", gru: "dash" };
const ROOM_COLUMNS = ["rank", "name", "status", "cell", "activation", "hidden_size", "num_layers",
  "seq_len", "lr", "task", "step", "loss", "solved_at"];

class RoomView extends RunsView {
  constructor(root, data, component) {
    super(root, data, component);
    this.colours = new Map();  // run id -> its colour, while the run is in the room
    this.coloured = 0;
    this.empty = element("div", "rnnlab-caption", root);
    this.empty.textContent = this.labels.empty;
    this.table = element("table", "rnnlab-table rnnlab-room-table", root);
    const head = element("tr", "", element("thead", "", this.table));
    for (const column of ROOM_COLUMNS) element("th", "", head).textContent = this.labels.columns[column];
    this.body = element("tbody", "", this.table);
    this.table.style.display = "none";
    this.chart = element("div", "rnnlab-chart rnnlab-room-chart", root);
    this.chart.dataset.rnnlabRoomRuns = "0";
  }

  rowsUrl() {
    return this.data.room_url;
  }

  newRun(row) {
    if (!this.colours.has(row.run_id)) {
      this.colours.set(row.run_id, ROOM_PALETTE[this.coloured++ % ROOM_PALETTE.length]);
    }
    return { colour: this.colours.get(row.run_id) };
  }

  received() {
    for (const id of this.colours.keys()) if (!this.runs.has(id)) this.colours.delete(id);
    this.drawTable();
  }

  // Who started the run, and which study's trial it is (a study's trials are whose).
  name(row) {
    const who = row.name || this.labels.anonymous;
    if (row.study === undefined || row.study === null) return who;
    return `${who} · ${fill(this.labels.trial_of, { number: row.trial, study: row.study })}`;
  }

  draw() {
    const labels = this.labels;
    const traces = this.order.map((id) => {
      const run = this.runs.get(id);
      return { x: [...run.steps], y: [...run.losses], mode: "lines",
        // A name someone typed: shown as text, never as Plotly's markup (links, styles).
        name: escapeHtml(`${this.name(run.row)} · ${run.row.cell}`),
        line: { color: run.colour, width: 1.5, dash: ROOM_DASH[run.row.cell] || "solid" } };
    });
    this.Plotly.react(this.chart, traces, {
      height: 420, margin: { l: 60, r: 10, t: 30, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis: { title: { text: labels.step_axis } },
      yaxis: { title: { text: labels.loss_axis }, type: this.logY ? "log" : "linear" },
      uirevision: "room", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#F3F6FA",
    }, PLOT_CONFIG);
    this.chart.dataset.rnnlabRoomRuns = String(this.order.length);
  }

  // Solved runs first, by the step they solved at; then by their latest loss.
  ranked() {
    const key = (row) => [row.solved_at === null ? 1 : 0, row.solved_at ?? 0, row.loss ?? Infinity];
    return [...this.runs.values()].sort((a, b) => {
      const [x, y] = [key(a.row), key(b.row)];
      return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
    });
  }

  drawTable() {
    const labels = this.labels;
    this.empty.style.display = this.runs.size ? "none" : "";
    this.table.style.display = this.runs.size ? "" : "none";
    this.body.innerHTML = "";
    this.ranked().forEach((run, index) => {
      const row = run.row;
      const tr = element("tr", "", this.body);
      tr.dataset.rnnlabRoomRun = row.run_id;
      tr.dataset.step = String(row.step);
      const status = row.status === "queued" && row.queue_position
        ? fill(labels.queued_at, { position: row.queue_position })
        : labels.statuses[row.status] || row.status;
      const cells = {
        rank: String(index + 1), name: this.name(row), status, cell: row.cell, activation: row.activation,
        hidden_size: String(row.hidden_size), num_layers: String(row.num_layers), seq_len: String(row.seq_len),
        lr: this.number(row.lr, 2), task: row.task,
        step: `${this.count(row.step)} / ${this.count(row.steps)}`,
        loss: this.number(row.loss), solved_at: row.solved_at === null ? labels.not_solved : this.count(row.solved_at),
      };
      for (const column of ROOM_COLUMNS) {
        const td = element("td", "", tr);
        td.textContent = cells[column];
        td.dataset.column = column;
        if (column === "name") td.style.borderLeft = `4px solid ${run.colour}`;
      }
    });
  }
}

// ---------------------------------------------------------------- a study's trials

// A study (rnnlab.tune, answered by GET /api/studies/NAME): its counts and best trial,
// best so far against finished trials and against CPU-seconds, every trial's held-out
// curve (× where a pruned one stopped), parallel coordinates of the settings that vary
// (a log setting as log10 with its real values as ticks, a categorical one as its
// choices; the best k only, if asked), one slice per searched setting, what matters
// (bars with their 5-95 % interval, and a sentence), and the trials with who asked for
// them. Asked again every poll_ms while trials train, every STUDY_IDLE_POLL_MS when none
// does (someone in the room may add more); a 204 means nothing changed.
const STUDY_IDLE_POLL_MS = 3000;
const TOP_K = [0, 5, 10, 20];  // 0: every complete trial
const SLICE_COLUMNS = 3;

class StudyView extends View {
  constructor(root, data, component) {
    super(root, data, component);
    this.version = -1;
    this.topK = 0;
    this.answer = null;
    root.dataset.rnnlabStudy = data.study;
    root.dataset.rnnlabTrials = "0";
    const labels = this.labels;
    this.summary = element("div", "rnnlab-status-text", root);
    this.bestLine = element("div", "rnnlab-message", root);
    this.bestLine.textContent = labels.waiting;
    const section = (title) => {
      const box = element("div", "rnnlab-study-section", root);
      markdown(element("div", "rnnlab-chart-title", box), title);
      return box;
    };
    this.bestChart = element("div", "rnnlab-study-chart", section(labels.best_title));
    this.curvesChart = element("div", "rnnlab-study-chart", section(labels.curves_title));
    const parallel = section(labels.parallel_title);
    const controls = element("label", "rnnlab-range", parallel);
    element("span", "", controls).textContent = labels.show;
    this.topKSelect = element("select", "", controls);
    for (const k of TOP_K) {
      const option = element("option", "", this.topKSelect);
      option.value = String(k);
      option.textContent = k ? fill(labels.best_k, { k }) : labels.all_trials;
    }
    this.topKSelect.addEventListener("change", () => {
      this.topK = Number(this.topKSelect.value);
      if (this.answer) this.drawParallel();
    });
    this.parallelEmpty = element("div", "rnnlab-caption", parallel);
    this.parallelEmpty.textContent = labels.parallel_empty;
    this.parallelChart = element("div", "rnnlab-study-chart", parallel);
    this.slicesChart = element("div", "rnnlab-study-chart", section(labels.slices_title));
    const matters = section(labels.importance_title);
    this.importanceMessage = element("div", "rnnlab-message", matters);
    this.importanceChart = element("div", "rnnlab-study-chart", matters);
    this.importanceCaption = element("div", "rnnlab-caption", matters);
    const trials = section(labels.table_title);
    this.table = element("table", "rnnlab-table rnnlab-study-table", trials);
    const head = element("tr", "", element("thead", "", this.table));
    for (const column of Object.keys(labels.columns)) element("th", "", head).textContent = labels.columns[column];
    this.body = element("tbody", "", this.table);
  }

  async poll() {
    if (!this.polling()) return;
    const started = performance.now();
    const polled = await this.once("poll", async () => {
      try {
        let query = `since=${this.version}`;
        if (this.data.evaluator) query += `&evaluator=${encodeURIComponent(this.data.evaluator)}`;
        const answer = await this.get(this.data.study_url, query);
        this.failures = 0;
        if (answer) this.receive(answer);
      } catch (error) {
        this.failed(error);
      }
    });
    if (!polled) return;
    const wait = this.answer && !this.answer.busy ? STUDY_IDLE_POLL_MS : this.data.poll_ms;
    this.schedule(wait - (performance.now() - started));
  }

  feed(answer) {
    if (answer) this.receive(answer);
  }

  receive(answer) {
    this.answer = answer;
    this.version = answer.version;
    this.mine = new Set(answer.mine || []);
    this.space = new Map(answer.settings.space.map((p) => [p.name, p]));
    this.drawSummary();
    this.drawBest();
    this.drawCurves();
    this.drawParallel();
    this.drawSlices();
    this.drawImportance();
    this.drawTable();
    this.root.dataset.rnnlabVersion = String(answer.version);
    this.root.dataset.rnnlabTrials = String(answer.drawn);
  }

  settingLabel(name) {
    return (this.labels.settings || {})[name] || name;
  }

  // A setting's value as a person reads it: numbers to 3 significant digits.
  value(v) {
    return typeof v === "number" ? this.number(v, 3) : String(v);
  }

  // Complete trials with an objective, best first.
  ranked() {
    const sign = this.answer.settings.direction === "maximize" ? -1 : 1;
    return this.answer.trials.filter((t) => t.state === "complete" && t.value !== null)
      .sort((a, b) => sign * (a.value - b.value));
  }

  // "log" for positive values spanning more than a decade (a loss falling from 0.15 to
  // 0.0001), else "linear" (a log axis over a narrow range labels every minor tick).
  axisType(values) {
    const shown = values.filter((v) => v !== null && v !== undefined);
    const low = Math.min(...shown), high = Math.max(...shown);
    return shown.length && low > 0 && high / low > 10 ? "log" : "linear";
  }

  layout(extra) {
    return { margin: { l: 60, r: 20, t: 20, b: 45 }, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#F3F6FA", showlegend: false, uirevision: this.data.study, ...extra };
  }

  drawSummary() {
    const counts = this.answer.counts;
    this.summary.textContent = fill(this.labels.counts, {
      drawn: this.count(this.answer.drawn), complete: this.count(counts.complete),
      pruned: this.count(counts.pruned), failed: this.count(counts.failed),
      running: this.count(counts.running), queued: this.count(counts.queued),
      to_ask: this.count(counts.to_ask) });
    const best = this.answer.best;
    if (!best) {
      this.bestLine.textContent = this.answer.trials.length ? this.labels.no_best : this.labels.waiting;
      return;
    }
    const settings = Object.entries(best.params).map(([name, v]) => `${this.settingLabel(name)} = ${this.value(v)}`);
    markdown(this.bestLine, `${fill(this.labels.best, { value: this.number(best.value), number: best.number })} — ${settings.join(", ")}`);
    this.bestLine.dataset.rnnlabBest = String(best.number);
  }

  drawBest() {
    const series = this.answer.best_so_far, labels = this.labels;
    const line = (x, axis) => ({ x, y: series.value, xaxis: "x" + axis, yaxis: "y" + axis, mode: "lines+markers",
      line: { shape: "hv", color: COLOURS[0], width: 2 }, marker: { size: 4 },
      text: series.number.map((n) => fill(labels.trial_trace, { number: n })),
      hovertemplate: "%{text}: %{y:.4g}<extra></extra>" });
    this.Plotly.react(this.bestChart, [line(series.trials, ""), line(series.cpu_s, "2")], this.layout({
      height: 300, grid: { rows: 1, columns: 2, pattern: "independent", xgap: 0.12 },
      xaxis: { title: { text: labels.finished_axis } }, xaxis2: { title: { text: labels.cpu_axis } },
      yaxis: { title: { text: this.data.objective || labels.objective_axis }, type: this.axisType(series.value),
        exponentformat: "power" },
      yaxis2: { matches: "y", type: this.axisType(series.value), exponentformat: "power" },
    }), PLOT_CONFIG);
    this.bestChart.dataset.rnnlabPoints = String(series.trials.length);
  }

  drawCurves() {
    const labels = this.labels, best = this.answer.best ? this.answer.best.number : null;
    const traces = [], stops = { x: [], y: [], text: [] };
    let positive = true;
    for (const trial of this.answer.trials) {
      const curve = trial.curve;
      if (!curve.step.length) continue;
      positive = positive && curve.value.every((v) => v === null || v > 0);
      const who = trial.who ? ` · ${trial.who}` : "";
      traces.push({ x: curve.step, y: curve.value, mode: "lines",
        name: escapeHtml(fill(labels.trial_trace, { number: trial.number }) + who),
        line: trial.number === best ? { color: COLOURS[1], width: 3 }
          : { color: trial.state === "pruned" ? "rgba(150,150,150,0.55)" : "rgba(76,120,168,0.6)", width: 1.2 } });
      if (trial.state === "pruned" && trial.pruned_at !== null) {
        const at = curve.step.lastIndexOf(trial.pruned_at);
        stops.x.push(trial.pruned_at);
        stops.y.push(curve.value[at >= 0 ? at : curve.value.length - 1]);
        stops.text.push(escapeHtml(`${fill(labels.trial_trace, { number: trial.number })}: ${fill(labels.pruned_marker, { step: this.count(trial.pruned_at) })}`));
      }
    }
    traces.push({ ...stops, mode: "markers", marker: { symbol: "x", size: 9, color: COLOURS[3] },
      hovertemplate: "%{text}<extra></extra>" });
    this.Plotly.react(this.curvesChart, traces, this.layout({ height: 340,
      xaxis: { title: { text: labels.step_axis } },
      yaxis: { title: { text: labels.held_out_axis }, type: positive ? "log" : "linear", exponentformat: "power" },
    }), PLOT_CONFIG);
    this.curvesChart.dataset.rnnlabCurves = String(traces.length - 1);
    this.curvesChart.dataset.rnnlabPrunedMarks = String(stops.x.length);
  }

  // One parallel-coordinates axis: a log setting as log10 with its real values as ticks,
  // a categorical one as the index of its choice with the choices as ticks.
  dimension(name, trials) {
    const p = this.space.get(name), values = trials.map((t) => t.params[name]);
    const label = escapeHtml(this.settingLabel(name));
    if (!p || p.kind === "categorical") {
      const choices = p ? p.choices.map(String) : [...new Set(values.map(String))];
      return { label, values: values.map((v) => choices.indexOf(String(v))), range: [0, Math.max(1, choices.length - 1)],
        tickvals: choices.map((c, i) => i), ticktext: choices.map(escapeHtml) };
    }
    if (p.log) {
      const low = Math.log10(p.low), high = Math.log10(p.high), ticks = [];
      for (let e = Math.floor(low); e <= Math.ceil(high); e++) {
        for (const m of [1, 2, 5]) {
          const t = m * 10 ** e;
          if (Math.log10(t) >= low - 1e-9 && Math.log10(t) <= high + 1e-9) ticks.push(t);
        }
      }
      return { label, values: values.map((v) => Math.log10(v)), range: [low, high],
        tickvals: ticks.map((t) => Math.log10(t)), ticktext: ticks.map((t) => this.value(Number(t.toPrecision(3)))) };
    }
    return { label, values, range: [p.low, p.high] };
  }

  drawParallel() {
    const varying = this.answer.varying;
    let trials = this.ranked();
    if (this.topK) trials = trials.slice(0, this.topK);
    const empty = !varying.length || trials.length < 2;
    this.parallelEmpty.style.display = empty ? "" : "none";
    this.parallelChart.style.display = empty ? "none" : "";
    this.parallelChart.dataset.rnnlabParallel = empty ? "0" : String(varying.length);
    this.parallelChart.dataset.rnnlabLines = empty ? "0" : String(trials.length);
    if (empty) return;
    const values = trials.map((t) => t.value);
    const dimensions = varying.map((name) => this.dimension(name, trials));
    dimensions.push({ label: escapeHtml(this.labels.objective_axis), values });
    this.Plotly.react(this.parallelChart, [{
      type: "parcoords", dimensions,
      line: { color: values, colorscale: "Viridis", reversescale: this.answer.settings.direction !== "maximize",
        showscale: true, colorbar: { thickness: 12 } },
    }], { height: 360, margin: { l: 70, r: 70, t: 50, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)" }, PLOT_CONFIG);
  }

  drawSlices() {
    const names = [...this.space.keys()], labels = this.labels;
    const trials = this.ranked().reverse();  // the best drawn last, on top
    const rows = Math.max(1, Math.ceil(names.length / SLICE_COLUMNS));
    const columns = Math.min(SLICE_COLUMNS, Math.max(1, names.length));
    const layout = this.layout({ height: 240 * rows + 40,
      grid: { rows, columns, pattern: "independent", xgap: 0.1, ygap: 0.3 } });
    const traces = names.map((name, index) => {
      const axis = index === 0 ? "" : String(index + 1), p = this.space.get(name);
      layout["xaxis" + axis] = { title: { text: escapeHtml(this.settingLabel(name)) },
        type: p.kind === "categorical" ? "category" : p.log ? "log" : "linear" };
      layout["yaxis" + axis] = { title: { text: index % columns === 0 ? labels.objective_axis : "" },
        type: this.axisType(trials.map((t) => t.value)), exponentformat: "power" };
      return { x: trials.map((t) => (p.kind === "categorical" ? String(t.params[name]) : t.params[name])),
        y: trials.map((t) => t.value), xaxis: "x" + axis, yaxis: "y" + axis, mode: "markers",
        marker: { size: 8, color: trials.map((t) => t.number), colorscale: "Blues", line: { width: 0.5, color: "#333" } },
        text: trials.map((t) => fill(labels.trial_trace, { number: t.number })),
        hovertemplate: "%{text}: %{x} → %{y:.4g}<extra></extra>" };
    });
    this.Plotly.react(this.slicesChart, traces, layout, PLOT_CONFIG);
    this.slicesChart.dataset.rnnlabSlices = String(names.length);
  }

  // What matters in one sentence, in the page's language (rnnlab.tune.importance's rule).
  importanceSentence(found) {
    const labels = this.labels;
    if (!found) return labels.no_importance;
    if (found.unavailable) return fill(labels.unavailable, { reason: found.unavailable });
    if (!found.ranking.length) return fill(labels.none_varies, { n: found.trials });
    const first = this.settingLabel(found.ranking[0]);
    if (found.importances[0].value <= 0) {
      return fill(labels.none_explains, { more: found.more_trials_needed || found.trials });
    }
    if (found.more_trials_needed === 0) {
      return fill(labels.stable, { n: found.trials, first, share: Math.round(100 * found.first_share) });
    }
    const more = found.more_trials_needed;
    return fill(more === 1 ? labels.more_needed_one : labels.more_needed_other, { more, first });
  }

  drawImportance() {
    const found = this.answer.importances;
    this.importanceMessage.textContent = this.importanceSentence(found);
    const rows = found && found.importances ? [...found.importances].reverse() : [];  // the first on top
    this.importanceChart.style.display = rows.length ? "" : "none";
    this.importanceChart.dataset.rnnlabImportance = String(rows.length);
    this.importanceCaption.textContent = found && found.importances
      ? fill(this.labels.evaluator, { name: found.evaluator, trials: found.trials, resamples: found.resamples }) : "";
    if (!rows.length) return;
    this.Plotly.react(this.importanceChart, [{
      type: "bar", orientation: "h", y: rows.map((r) => escapeHtml(this.settingLabel(r.param))),
      x: rows.map((r) => r.value), marker: { color: COLOURS[0] },
      error_x: { type: "data", symmetric: false, array: rows.map((r) => r.high - r.value),
        arrayminus: rows.map((r) => r.value - r.low), color: "#333", thickness: 1.5 },
      hovertemplate: "%{y}: %{x:.2f}<extra></extra>",
    }], this.layout({ height: 70 + 40 * rows.length, margin: { l: 140, r: 20, t: 10, b: 45 },
      xaxis: { title: { text: this.labels.importance_axis }, range: [0, 1.05] } }), PLOT_CONFIG);
  }

  drawTable() {
    const labels = this.labels;
    this.body.innerHTML = "";
    for (const trial of [...this.answer.trials].reverse()) {  // the latest first
      const tr = element("tr", this.mine.has(trial.number) ? "mine" : "", this.body);
      tr.dataset.rnnlabTrial = String(trial.number);
      tr.dataset.state = trial.state;
      const who = trial.who || labels.anonymous;
      const note = trial.state === "pruned" && trial.pruned_at !== null
        ? fill(labels.pruned_marker, { step: this.count(trial.pruned_at) }) : trial.error || "";
      const cells = {
        number: String(trial.number), state: labels.states[trial.state] || trial.state,
        value: this.number(trial.value), who: this.mine.has(trial.number) ? `${who} (${labels.you})` : who,
        settings: Object.entries(trial.params).map(([name, v]) => `${name}=${this.value(v)}`).join(", "),
        cpu_s: trial.cpu_s === null || trial.cpu_s === undefined ? "—" : this.number(trial.cpu_s, 3), note,
      };
      for (const column of Object.keys(labels.columns)) {
        const td = element("td", "", tr);
        td.textContent = cells[column];  // a name someone typed stays text
        td.dataset.column = column;
      }
    }
  }
}

// ---------------------------------------------------------------- mounting

const VIEWS = {
  loss: LossView, gates: GatesView, influence: InfluenceView, inside: InsideView, race: RaceView,
  room: RoomView, study: StudyView,
};

// Two mounts with the same identity are the same view: a remount updates it in place.
function identity(data) {
  return JSON.stringify([data.view, data.run_id ?? data.sweep_id ?? data.study ?? null, data.layer ?? null,
    data.evaluator ?? null, data.lang ?? null, data.active ?? null, isFed(data)]);
}

function preload(data) {
  // Fetch Plotly while the person picks settings, and draw one throwaway chart off
  // screen (Plotly's first chart in a page is its slowest), so that Train draws at once.
  const urls = [data.plotly_url, data.plotly_fallback_url].filter(Boolean).map((url) => apiUrl(url, data.page));
  loadPlotly(urls).then((Plotly) => {
    if (window.__rnnlabPlotlyWarming) return;
    window.__rnnlabPlotlyWarming = true;
    const scratch = element("div", "", document.body);
    scratch.style.cssText = "position:absolute;left:-10000px;top:0;width:600px;height:340px";
    Plotly.newPlot(scratch, [{ x: [1, 2], y: [1, 0.5], mode: "lines" }], { height: 340, yaxis: { type: "log" } })
      .then(() => { Plotly.purge(scratch); scratch.remove(); window.__rnnlabPlotlyWarm = true; });
  }).catch(() => {});
}

export default function (component) {
  const { data, parentElement } = component;
  if (data.view === "preload") {
    preload(data);
    return undefined;
  }
  let root = parentElement.querySelector(".rnnlab-live");
  if (!root) root = element("div", "rnnlab-live", parentElement);
  const previous = root.__rnnlabView;
  if (previous && identity(previous.data) === identity(data)) {
    previous.component = component;
    if (previous.fed) previous.update(data);
    else previous.resume();
    return () => previous.pause();
  }
  if (previous) previous.pause();
  const View = VIEWS[data.view] || LossView;
  const view = new View(root, data, component);
  root.__rnnlabView = view;
  view.start();
  return () => view.pause();
}
