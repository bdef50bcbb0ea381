// rnnlab's live views: a loss chart and gate heatmaps that poll the server's JSON routes
// (ui/routes.py) and extend their Plotly charts in place, so watching a run costs the
// server no Streamlit rerun per tick. Mounted by ui/live.py; `data` is set there.
//
// All views: {page: the page's url_path, its routes are relative to the app's root}.
// data.view == "preload": {plotly_url}: only loads Plotly, ahead of the first run.
// data.view == "loss":  {run_id, points_url, plotly_url, active, steps, baseline,
//                        baseline_label, metric_baseline, points:{step,loss}, evaluations,
//                        solved_at, poll_ms, lang, labels}
// data.view == "gates": {run_id, gates_url, plotly_url, active, layer, names, titles,
//                        poll_ms, lang, labels}
// Every word a view shows comes translated in data.labels (ui/live.py), with {name}
// placeholders that fill() replaces; numbers are formatted for data.lang.
//
// The chart element carries data-rnnlab-last-step (the last training step it has drawn)
// in the page's own DOM. If the routes cannot be reached (a proxy that forwards only
// Streamlit's paths), the view sets its "fallback" state and the page polls instead.

const MAX_POINTS = 3000;
const BOUNDED = new Set(["i", "f", "o", "r", "z"]);
const COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#E45756"];
const FAILURES_BEFORE_FALLBACK = 3;

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

function loadPlotly(url) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__rnnlabPlotly) {
    window.__rnnlabPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error("no Plotly")));
      script.onerror = () => {
        window.__rnnlabPlotly = null;
        reject(new Error("cannot load " + url));
      };
      document.head.appendChild(script);
    });
  }
  return window.__rnnlabPlotly;
}

// A translated label with its {name} placeholders filled in.
function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function number(value, digits = 4) {
  return value === null || value === undefined ? "—" : Number(value).toPrecision(digits).replace(/\.?0+(e|$)/, "$1");
}

function eta(seconds, labels) {
  if (seconds === null || seconds === undefined) return "…";
  return seconds < 120
    ? fill(labels.seconds, { seconds: Math.round(seconds) })
    : fill(labels.minutes, { minutes: (seconds / 60).toFixed(1) });
}

// A request that has not answered within this long is given up (and counts as a failure).
const REQUEST_TIMEOUT_MS = 5000;

async function getWithTimeout(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    return await fetch(url, { cache: "no-store", signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

// What both views share: Plotly, a poll loop with a failure count, the fallback, and
// pausing when Streamlit unmounts or re-renders them.
class PolledView {
  constructor(root, data, component) {
    this.root = root;
    this.data = data;
    this.component = component;
    this.labels = data.labels;
    this.failures = 0;
    this.stopped = false;  // for good: the run ended, or the page polls instead
    this.paused = false;
    root.innerHTML = "";
  }

  // A whole number with the page language's digit grouping.
  count(value) {
    return Number(value).toLocaleString(this.data.lang || undefined);
  }

  async loadPlotly() {
    try {
      this.Plotly = await loadPlotly(apiUrl(this.data.plotly_url, this.data.page));
      return true;
    } catch (error) {
      this.fallBack(String(error));
      return false;
    }
  }

  // A request failed: after FAILURES_BEFORE_FALLBACK in a row, let the page poll instead.
  failed(error) {
    this.failures += 1;
    if (this.failures >= FAILURES_BEFORE_FALLBACK) this.fallBack(String(error));
  }

  fallBack(reason) {
    this.stopped = true;
    this.component.setStateValue("fallback", reason || true);
  }

  polling() {
    return !this.stopped && !this.paused && this.root.isConnected;
  }

  schedule(wait) {
    if (this.polling()) this.timer = setTimeout(() => this.poll(), wait);
  }

  pause() {
    // Streamlit calls this when it unmounts the view, and may call it when it re-renders
    // the view with new data; a view still on the page afterwards carries on.
    this.paused = true;
    clearTimeout(this.timer);
    setTimeout(() => { if (this.root.isConnected && this.root.__rnnlabView === this) this.resume(); }, 500);
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    if (!this.stopped && this.Plotly && this.data.active) this.poll();
  }
}

// ---------------------------------------------------------------- loss chart

class LossView extends PolledView {
  constructor(root, data, component) {
    super(root, data, component);
    this.steps = [...data.points.step];
    this.losses = [...data.points.loss];
    this.evaluations = [...data.evaluations];
    this.lastStep = this.steps.length ? this.steps[this.steps.length - 1] : 0;
    this.status = element("div", "rnnlab-status", root);
    this.bar = element("div", "rnnlab-bar", this.status);
    this.barFill = element("div", "rnnlab-bar-fill", this.bar);
    this.statusText = element("div", "rnnlab-status-text", this.status);
    this.metrics = element("div", "rnnlab-metrics", root);
    this.chart = element("div", "rnnlab-chart", root);
    this.chart.dataset.rnnlabRun = data.run_id;
    this.chart.dataset.rnnlabLastStep = String(this.lastStep);
    this.caption = element("div", "rnnlab-caption", root);
    this.status.style.display = data.active ? "" : "none";
    if (data.progress) this.showProgress(data.progress);
  }

  async start() {
    // Ask for the first points while Plotly loads, and draw once with whatever came.
    const first = this.data.active ? this.fetchLive().catch(() => null) : null;
    if (!(await this.loadPlotly())) return;
    const live = first ? await first : null;
    if (live) this.absorb(live);
    this.draw();
    if (live) this.settle(live);
    if (this.data.active) this.schedule(this.data.poll_ms);
  }

  async fetchLive() {
    const url = `${apiUrl(this.data.points_url, this.data.page)}?since=${this.lastStep}`;
    const response = await getWithTimeout(url);
    if (!response.ok || !(response.headers.get("content-type") || "").includes("json")) {
      throw new Error(`HTTP ${response.status}`);
    }
    return response.json();
  }

  traces() {
    const evaluations = this.evaluations.filter((e) => e[1] !== null);
    return [
      { x: this.steps, y: this.losses, name: this.labels.train_loss_trace, mode: "lines",
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
        text: `${d.baseline_label}: ${number(d.baseline, 3)}`, showarrow: false,
        xanchor: "right", yanchor: "bottom" });
    }
    const solved = this.solvedAt ?? d.solved_at;
    if (solved !== null && solved !== undefined) {
      shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: solved, x1: solved,
        line: { color: COLOURS[2], width: 2 } });
      annotations.push({ yref: "paper", y: 1, x: solved, text: fill(this.labels.solved_at, { step: solved }),
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
    this.Plotly.react(this.chart, this.traces(), this.layout(), { displaylogo: false, responsive: true });
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

  async poll() {
    if (!this.polling()) return;
    const started = performance.now();
    try {
      const live = await this.fetchLive();
      this.failures = 0;
      this.receive(live);
    } catch (error) {
      this.failed(error);
    }
    this.schedule(Math.max(50, this.data.poll_ms - (performance.now() - started)));
  }

  // Take in one answer of the route: new points and evaluations (no drawing).
  absorb(live) {
    const points = live.points;
    for (let i = 0; i < points.step.length; i++) {
      this.steps.push(points.step[i]);
      this.losses.push(points.loss[i]);
    }
    if (points.step.length) this.lastStep = points.step[points.step.length - 1];
    this.evaluations.push(...live.evaluations);
    if (live.solved_at !== null) this.solvedAt = live.solved_at;
  }

  receive(live) {
    const points = live.points;
    const wasLog = this.logY;
    const redraw = live.evaluations.length > 0 || this.steps.length === 0
      || points.loss.some((v) => v !== null && v <= 0) && wasLog
      || this.steps.length + points.step.length > MAX_POINTS;
    this.absorb(live);
    if (redraw) {
      this.draw();
    } else if (points.step.length) {
      this.Plotly.extendTraces(this.chart, { x: [points.step], y: [points.loss] }, [0]);
      this.chart.dataset.rnnlabLastStep = String(this.lastStep);
      this.caption.textContent = this.recorded();
    }
    this.settle(live);
  }

  // Show the progress; once the run has ended, stop and let the page show the result.
  settle(live) {
    this.showProgress(live);
    if (live.status !== "running" && live.status !== "queued") {
      this.stopped = true;
      this.component.setTriggerValue("ended", live.status);
    }
  }

  showProgress(live) {
    const d = this.data, labels = this.labels;
    if (live.status === "queued") {
      this.barFill.style.width = "0%";
      this.statusText.textContent = fill(labels.queued, { position: live.queue_position || 1 });
    } else {
      const fraction = Math.min(1, live.step / Math.max(1, live.steps));
      this.barFill.style.width = `${(100 * fraction).toFixed(1)}%`;
      const rate = live.steps_per_s ? fill(labels.rate, { rate: Math.round(live.steps_per_s) }) : labels.starting;
      this.statusText.textContent = fill(labels.progress, {
        step: this.count(live.step), steps: this.count(live.steps), rate, eta: eta(live.eta_s, labels),
      });
    }
    const percent = live.held_out_loss !== null && d.baseline ? 100 * live.held_out_loss / d.baseline : null;
    const share = percent === null ? ""
      : fill(labels.of_baseline, { percent: percent < 10 ? percent.toPrecision(2) : Math.round(percent) });
    const cells = [
      [labels.train_loss, number(live.loss), ""],
      [labels.held_out_loss, number(live.held_out_loss), share],
      [labels.metric, number(live.metric),
        d.metric_baseline !== null && d.metric_baseline !== undefined
          ? fill(labels.chance, { value: number(d.metric_baseline, 3) }) : ""],
      [labels.solved, live.solved ? labels.yes : labels.not_yet, ""],
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

// ---------------------------------------------------------------- gate heatmaps

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

class GatesView extends PolledView {
  constructor(root, data, component) {
    super(root, data, component);
    this.after = -1;
    this.title = element("div", "rnnlab-gates-title", root);
    this.chart = element("div", "rnnlab-gates-chart", root);
    this.predictions = element("div", "rnnlab-predictions", root);
    this.title.textContent = this.labels.waiting;
  }

  async start() {
    if ((await this.loadPlotly()) && this.data.active) this.poll();
  }

  async poll() {
    if (!this.polling()) return;
    try {
      const response = await getWithTimeout(`${apiUrl(this.data.gates_url, this.data.page)}?layer=${this.data.layer}&after=${this.after}`);
      if (response.status === 200) this.draw(await response.json());
      else if (response.status === 404) this.stopped = true;  // finished: the page redraws
      else if (response.status !== 204) throw new Error(`HTTP ${response.status}`);
      this.failures = 0;
    } catch (error) {
      this.failed(error);
    }
    this.schedule(this.data.poll_ms);
  }

  draw(view) {
    this.after = view.step;
    const layer = view.gates;
    const names = this.data.names.filter((n) => layer && n in layer);
    if (!names.length) return;
    const columns = Math.min(names.length, 3), rows = Math.ceil(names.length / columns);
    const traces = [], annotations = [], layout = {
      height: 270 * rows, margin: { l: 10, r: 10, t: 40, b: 10 }, showlegend: false,
      grid: { rows, columns, pattern: "independent", xgap: 0.08, ygap: rows > 1 ? 0.3 : 0.15 },
      paper_bgcolor: "rgba(0,0,0,0)", uirevision: this.data.run_id,
    };
    names.forEach((name, index) => {
      const axis = index === 0 ? "" : String(index + 1);
      const bounded = BOUNDED.has(name);
      const z = decodeGate(layer[name], view.units.length, view.steps.length);
      traces.push({
        type: "heatmap", z, x: view.steps, y: view.units, xaxis: "x" + axis, yaxis: "y" + axis,
        colorscale: bounded ? "Viridis" : "RdBu", zmin: bounded ? 0 : layer[name].lo,
        zmax: bounded ? 1 : layer[name].hi, showscale: index === 0,
        colorbar: { len: 0.5, thickness: 10 },
        hovertemplate: `t=%{x} ${this.labels.unit}=%{y}: %{z:.3f}<extra>${name}</extra>`,
      });
      layout["xaxis" + axis] = { title: { text: this.labels.time_step, standoff: 2 }, automargin: true };
      layout["yaxis" + axis] = { title: { text: this.labels.unit, standoff: 2 }, automargin: true };
      annotations.push({ text: this.data.titles[name] || name, showarrow: false,
        xref: "x" + axis + " domain", yref: "y" + axis + " domain", x: 0.5, y: 1.0,
        xanchor: "center", yanchor: "bottom", font: { size: 13 } });
    });
    layout.annotations = annotations;
    this.Plotly.react(this.chart, traces, layout, { displaylogo: false, responsive: true });
    this.chart.dataset.rnnlabSnapshotStep = String(view.step);
    this.title.textContent = fill(this.labels.inside, { layer: this.data.layer + 1, step: this.count(view.step) });
    this.drawPredictions(view.predictions || {});
  }

  drawPredictions(predictions) {
    if (predictions.kind !== "next_symbol") {
      this.drawValuePredictions(predictions);
      return;
    }
    this.predictions.innerHTML = "";
    const visible = (s) => ({ "\n": "⏎", " ": "␣" })[s] ?? s;
    const labels = this.labels;
    element("div", "rnnlab-gates-title", this.predictions).textContent = labels.predictions;
    const table = element("table", "rnnlab-table", this.predictions);
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

  // Adding: predicted against true sums; sine: the predicted and the true series.
  drawValuePredictions(predictions) {
    if (!("predicted" in predictions && "target" in predictions)) return;
    const labels = this.labels;
    if (!this.valueChart) {
      this.predictions.innerHTML = "";
      element("div", "rnnlab-gates-title", this.predictions).textContent = labels.value_predictions;
      this.valueChart = element("div", "rnnlab-values-chart", this.predictions);
    }
    const layout = { height: 300, margin: { l: 60, r: 10, t: 30, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 }, paper_bgcolor: "rgba(0,0,0,0)",
      uirevision: this.data.run_id };
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
    this.Plotly.react(this.valueChart, traces, layout, { displaylogo: false, responsive: true });
  }

}

// ---------------------------------------------------------------- the room's runs

// data.view == "room": {room_url, plotly_url, poll_ms, lang, labels: {columns, statuses,
// queued_at, anonymous, empty, step_axis, loss_axis, not_solved}}. Every run on the
// server: a leaderboard (solved first, by the step they solved at; then by loss) and
// their curves overlaid, one colour per run, one line style per cell. Each row carries
// data-rnnlab-room-run and data-step; the chart carries data-rnnlab-room-runs.
const ROOM_PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2",
  "#FF9DA6", "#9D755D", "#EECA3B", "#BAB0AC"];
const ROOM_DASH = { rnn: "dot", lstm: "solid", gru: "dash" };
const ROOM_COLUMNS = ["rank", "name", "status", "cell", "activation", "hidden_size", "num_layers",
  "seq_len", "lr", "task", "step", "loss", "solved_at"];

class RoomView extends PolledView {
  constructor(root, data, component) {
    super(root, data, component);
    this.runs = new Map();  // run id -> {row, steps, losses, colour}
    this.colours = 0;
    this.empty = element("div", "rnnlab-caption", root);
    this.empty.textContent = data.labels.empty;
    this.table = element("table", "rnnlab-table rnnlab-room-table", root);
    const head = element("tr", "", element("thead", "", this.table));
    for (const column of ROOM_COLUMNS) element("th", "", head).textContent = data.labels.columns[column];
    this.body = element("tbody", "", this.table);
    this.chart = element("div", "rnnlab-chart rnnlab-room-chart", root);
    this.chart.dataset.rnnlabRoomRuns = "0";
  }

  async start() {
    if (await this.loadPlotly()) this.poll();
  }

  async poll() {
    if (!this.polling()) return;
    const started = performance.now();
    try {
      const since = [...this.runs].map(([id, run]) => `${id}:${run.seen}`).join(",");
      const response = await getWithTimeout(`${apiUrl(this.data.room_url, this.data.page)}?since=${since}`);
      if (!response.ok || !(response.headers.get("content-type") || "").includes("json")) {
        throw new Error(`HTTP ${response.status}`);
      }
      this.receive(await response.json());
      this.failures = 0;
    } catch (error) {
      this.failed(error);
    }
    this.schedule(Math.max(100, this.data.poll_ms - (performance.now() - started)));
  }

  // New rows and points: extend the curves in place unless runs came or went.
  receive(answer) {
    const runs = new Map();
    const extension = { x: [], y: [], indices: [] };
    let changed = answer.runs.length !== this.runs.size;
    for (const row of answer.runs) {
      let run = this.runs.get(row.run_id);
      if (!run) {
        run = { steps: [], losses: [], colour: ROOM_PALETTE[this.colours++ % ROOM_PALETTE.length] };
        changed = true;
      }
      run.row = row;
      run.seen = row.seen;
      run.steps.push(...row.points.step);
      run.losses.push(...row.points.loss);
      if (row.points.step.length && !changed) {
        extension.x.push(row.points.step);
        extension.y.push(row.points.loss);
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
    this.drawTable();
  }

  name(row) {
    return row.name || this.data.labels.anonymous;
  }

  draw() {
    const labels = this.data.labels;
    const traces = this.order.map((id) => {
      const run = this.runs.get(id);
      return { x: run.steps, y: run.losses, mode: "lines", name: `${this.name(run.row)} · ${run.row.cell}`,
        line: { color: run.colour, width: 1.5, dash: ROOM_DASH[run.row.cell] || "solid" } };
    });
    this.Plotly.react(this.chart, traces, {
      height: 420, margin: { l: 60, r: 10, t: 30, b: 45 },
      legend: { orientation: "h", yanchor: "bottom", y: 1.02, x: 0 },
      xaxis: { title: { text: labels.step_axis } },
      yaxis: { title: { text: labels.loss_axis }, type: this.logY ? "log" : "linear" },
      uirevision: "room", paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#F3F6FA",
    }, { displaylogo: false, responsive: true });
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
    const labels = this.data.labels;
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
        lr: number(row.lr, 2), task: row.task,
        step: `${this.count(row.step)} / ${this.count(row.steps)}`,
        loss: number(row.loss), solved_at: row.solved_at === null ? labels.not_solved : this.count(row.solved_at),
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

export default function (component) {
  const { data, parentElement } = component;
  if (data.view === "preload") {
    // Fetch Plotly while the person picks settings, and draw one throwaway chart off
    // screen (Plotly's first chart in a page is its slowest), so that Train draws at once.
    loadPlotly(apiUrl(data.plotly_url, data.page)).then((Plotly) => {
      if (window.__rnnlabPlotlyWarming) return;
      window.__rnnlabPlotlyWarming = true;
      const scratch = element("div", "", document.body);
      scratch.style.cssText = "position:absolute;left:-10000px;top:0;width:600px;height:340px";
      Plotly.newPlot(scratch, [{ x: [1, 2], y: [1, 0.5], mode: "lines" }], { height: 340, yaxis: { type: "log" } })
        .then(() => { Plotly.purge(scratch); scratch.remove(); window.__rnnlabPlotlyWarm = true; });
    }).catch(() => {});
    return undefined;
  }
  let root = parentElement.querySelector(".rnnlab-live");
  if (!root) root = element("div", "rnnlab-live", parentElement);
  const previous = root.__rnnlabView;
  const same = previous && previous.data.run_id === data.run_id && previous.data.view === data.view
    && previous.data.active === data.active && previous.data.layer === data.layer
    && previous.data.lang === data.lang;
  if (same) {
    previous.resume();
    return () => previous.pause();
  }
  if (previous) previous.pause();
  const View = { gates: GatesView, room: RoomView }[data.view] || LossView;
  const view = new View(root, data, component);
  root.__rnnlabView = view;
  view.start();
  return () => view.pause();
}
