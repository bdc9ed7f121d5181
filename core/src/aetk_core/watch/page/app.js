// The aetk watch dashboard: polls /api/status and /api/alerts and draws them. No framework, no
// build step, nothing loaded from elsewhere.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

// How long ago, in words a glance reads: "40 s", "12 min", "3 h", "2 days".
function ago(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

// The last score's age, once it is old enough to matter: a microphone that died, or a folder no
// file reaches any more, leaves its last score standing and "normal" beside it.
function staleness(last, now) {
  if (!last || now - last.at < 60) return [];
  return [element("span", { class: "stale" }, `last score ${ago(now - last.at)} ago`)];
}

function label(svg, x, y, text, anchor, kind = "axis") {
  const node = document.createElementNS(SVG, "text");
  node.setAttribute("x", x);
  node.setAttribute("y", y);
  node.setAttribute("text-anchor", anchor);
  node.setAttribute("class", kind);
  node.textContent = text;
  svg.appendChild(node);
}

// The threshold each score was judged at, as the points of a dashed line that steps where a
// refit of the detector moved it; flat at the source's threshold before the first score.
function thresholdSteps(points, current, x, y, width) {
  const steps = [];
  let level = points.length && points[0][3] != null ? points[0][3] : current;
  steps.push([0, level]);
  for (const [at, , , threshold] of points) {
    if (threshold == null || threshold === level) continue;
    steps.push([x(at), level], [x(at), threshold]);
    level = threshold;
  }
  steps.push([width, level]);
  return steps.map(([px, t]) => `${px.toFixed(1)},${y(t).toFixed(1)}`).join(" ");
}

// The scores of the last hour (or since the first score of any source: a fleet's machines share
// one time axis, so that what happened at once lines up) as a line, the threshold dashed, scores
// above it as red dots, the score at the chart's top written in its corner.
function chart(source, now, since) {
  const width = 1000, height = 160, pad = 8, bottom = 22;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const points = source.history;
  const judged = points.map((p) => p[3]).filter((t) => t != null);
  const top = Math.max(source.threshold * 1.5, ...judged.map((t) => t * 1.5), ...points.map((p) => p[1])) || 1;
  const start = Math.max(now - 3600, since);
  const span = Math.max(now - start, 1);
  const x = (at) => pad + ((at - start) / span) * (width - 2 * pad);
  const y = (score) => height - bottom - (Math.max(0, score) / top) * (height - bottom - pad);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "scores");
  line.setAttribute("points", points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#3465a4");
  line.setAttribute("stroke-width", "2");
  svg.appendChild(line);
  const limit = document.createElementNS(SVG, "polyline");
  limit.setAttribute("class", "threshold");
  limit.setAttribute("points", thresholdSteps(points, source.threshold, x, y, width));
  limit.setAttribute("fill", "none");
  limit.setAttribute("stroke", "#c62828");
  limit.setAttribute("stroke-dasharray", "8 6");
  svg.appendChild(limit);
  for (const [at, score, anomalous] of points) {
    if (!anomalous) continue;
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(at).toFixed(1));
    dot.setAttribute("cy", y(score).toFixed(1));
    dot.setAttribute("r", "4");
    dot.setAttribute("fill", "#c62828");
    svg.appendChild(dot);
  }
  label(svg, pad, height - 5, clock(start), "start", "axis since");
  label(svg, width - pad, height - 5, `now ${clock(now)}`, "end");
  label(svg, width - pad, y(source.threshold) - 5, `threshold ${source.threshold.toPrecision(4)}`, "end");
  // The score at the top of the chart: how far above the threshold the line can go.
  label(svg, pad, pad + 12, `score ${top.toPrecision(3)}`, "start", "axis scale");
  return svg;
}

// Recording warnings (a dropout, a gain change, ...): a fault of the recording chain rather than
// of the machine, said beside the score it qualifies; null when there is none.
function recording(warnings) {
  if (!warnings || !warnings.length) return null;
  const text = "recording: " + warnings.map((w) => `${w.name}: ${w.message}`).join("; ");
  return element("div", { class: "recording" }, text);
}

// An open alert; or the latest score above the threshold without one yet (fewer than --confirm
// in a row, or within --cooldown of the last alert), which "normal" beside it would belie.
function state(open, aboveInARow) {
  if (open) return element("span", { class: "state anomaly" }, "ANOMALY");
  if (aboveInARow > 0) return element("span", { class: "state pending" }, "above threshold");
  return element("span", { class: "state normal" }, "normal");
}

// How far the latest run of scores has gone towards starting an alert (above the threshold,
// fewer than --confirm in a row) or towards ending the open one (below it, fewer than --clear).
function runNote(open, source, status) {
  const [run, needed, ends] = open
    ? [source.below_in_a_row, status.clear, "below the threshold: the alert ends at"]
    : [source.above_in_a_row, status.confirm, "in a row: an alert starts at"];
  if (!(run > 0 && run < needed)) return [];
  return [element("span", { class: "muted run" }, `${run} of ${needed} ${ends} ${needed}`)];
}

// What went wrong with the watch itself in the last hour (a file it could not score, alerts that
// did not reach the webhook or the broker), newest first: the machine may be fine, but an alert
// may not reach anyone. The section shows only while there is something to say.
function drawProblems(problems) {
  document.getElementById("problems-section").hidden = !problems.length;
  document.getElementById("problems").replaceChildren(...problems.map((problem) => {
    const item = element("li", { class: "problem", "data-kind": problem.kind });
    item.append(element("time", {}, clock(problem.at)), problem.message);
    return item;
  }));
}

function drawSources(status) {
  const box = document.getElementById("sources");
  if (!status.sources.length) return;
  const firsts = status.sources.filter((source) => source.history.length).map((source) => source.history[0][0]);
  const since = firsts.length ? Math.min(...firsts) : status.now - 60;
  box.replaceChildren(...status.sources.map((source) => {
    const open = source.open_alert;
    const card = element("div", { class: "source" + (open ? " alarm" : ""), "data-source": source.source });
    const head = element("div", { class: "source-head" });
    head.append(
      element("span", { class: "source-name" }, source.source),
      state(open, source.above_in_a_row),
      element("span", {}, source.last ? `score ${source.last.score.toPrecision(4)}` : ""),
      element("span", { class: "muted" }, `threshold ${source.threshold.toPrecision(4)}`),
    );
    head.append(...runNote(open, source, status), ...staleness(source.last, status.now));
    const warned = recording(source.last && source.last.warnings);
    // A threshold from too few normal recordings holds no false-alarm rate: said where it shows.
    const noted = source.threshold_note
      ? [element("div", { class: "note" }, `the threshold is ${source.threshold_note}`)]
      : [];
    card.append(head, ...noted, ...(warned ? [warned] : []), chart(source, status.now, since));
    return card;
  }));
}

async function acknowledge(alert, button) {
  button.disabled = true;
  const response = await fetch(`/api/alerts/${alert.id}/ack`, { method: "POST" });
  if (response.ok) refresh();
  else button.disabled = false;
}

const drawn = new Map();  // alert id -> its list item, kept so that audio playing is not restarted

function alertItem(alert) {
  const item = element("li", { class: "alert", "data-alert": String(alert.id) });
  const head = element("div", { class: "alert-head" });
  const when = alert.started.replace("T", " ").slice(0, 19);
  head.append(
    element("strong", {}, `Alert ${alert.id}`),
    element("span", {}, when),
    // A fleet's alert names its machine first: the people on the floor go to the machine.
    element("span", { class: "machine" }, alert.machine || ""),
    element("span", { class: "source-name" }, alert.file || alert.source),
    element("span", { class: "score" }, alert.score === null ? "" : `score ${alert.score.toPrecision(4)}`),
    // Which view of a several-view scorer raised it: the clip's average, or a moment, and when.
    element("span", { class: "view" }, alert.raised_by ? `raised by: ${alert.raised_by}` : ""),
    element("span", { class: "status muted" }),
  );
  const button = element("button", { class: "ack", type: "button" }, "Acknowledge");
  button.addEventListener("click", () => acknowledge(alert, button));
  head.append(button);
  item.append(head);
  const warned = recording(alert.warnings);
  if (warned) item.append(warned);
  if (alert.audio) item.append(element("audio", { controls: "", preload: "none", src: alert.audio }));
  if (alert.spectrogram) {
    const picture = element("img", { class: "spectrogram", alt: `spectrogram of alert ${alert.id}`, src: alert.spectrogram });
    // A picture that cannot be drawn (its recording gone since, or a detector that does not
    // localize) is said in words rather than shown as a broken image.
    picture.addEventListener("error", () => {
      picture.replaceWith(element("p", { class: "no-picture muted" }, "no spectrogram: the recording can no longer be read or explained"));
    });
    item.append(picture);
  }
  return item;
}

function drawAlerts(list) {
  const box = document.getElementById("alerts");
  if (!list.alerts.length) return;
  const items = list.alerts.map((alert) => {
    const item = drawn.get(alert.id) || alertItem(alert);
    drawn.set(alert.id, item);
    const status = alert.acknowledged ? `acknowledged ${alert.acknowledged.replace("T", " ").slice(0, 19)}`
      : alert.ended ? "ended, not acknowledged" : "open";
    item.querySelector(".status").textContent = status;
    item.classList.toggle("acknowledged", Boolean(alert.acknowledged));
    item.querySelector("button.ack").disabled = Boolean(alert.acknowledged);
    return item;
  });
  box.replaceChildren(...items);
}

async function refresh() {
  try {
    const [status, alerts] = await Promise.all([
      fetch("/api/status").then((r) => r.json()),
      fetch("/api/alerts").then((r) => r.json()),
    ]);
    drawProblems(status.problems);
    drawSources(status);
    drawAlerts(alerts);
    document.getElementById("updated").textContent = `updated ${clock(status.now)}`;
    // Said in the tab's title too, for a page left open behind other work.
    const open = status.sources.filter((source) => source.open_alert).length;
    document.title = open ? `ANOMALY (${open}) · aetk watch` : "aetk watch";
  } catch (error) {
    document.getElementById("updated").textContent = "the watch is not answering";
    document.title = "not answering · aetk watch";
  }
}

refresh();
setInterval(refresh, POLL_MS);
