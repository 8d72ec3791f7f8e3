// jobfleet dashboard: vanilla JS, no build step. Every value from the API goes through textContent.
"use strict";

const REFRESH_MS = 2000;
const FAILED_PER_QUEUE = 20;
const PAGE = 25;
const STATES = ["queued", "started", "scheduled", "deferred", "finished", "failed", "canceled"];
const state = { browse: null, jobId: null, timer: null, busy: false };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fillBody(table, rows, columns, emptyText) {
  const body = table.tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: columns }, emptyText))]));
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function since(iso) {
  return iso ? age((Date.now() - Date.parse(iso)) / 1000) + " ago" : "—";
}

function clock(value) {
  if (value === null || value === undefined) return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleTimeString([], { hour12: false });
}

function banner(message, kind = "error") {
  const node = $("#banner");
  node.textContent = message;
  node.className = kind === "error" ? "banner" : "banner info";
  node.hidden = !message;
}

function token() { return localStorage.getItem("jobfleet.token") || ""; }

function askToken() {
  const value = prompt("Dashboard token for write actions (JOBFLEET_DASHBOARD_TOKEN):", token());
  if (value !== null) localStorage.setItem("jobfleet.token", value.trim());
  return value !== null;
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.method === "POST" && token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function act(path, doneMessage) {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const result = await api(path, { method: "POST" });
      banner(doneMessage(result), "info");
      await refresh();
      return result;
    } catch (error) {
      if (error.status === 401 && attempt === 0 && askToken()) continue;
      banner(error.message);
      return null;
    }
  }
  return null;
}

const requeueJob = (id) => act(`/api/jobs/${encodeURIComponent(id)}/requeue`, (r) => `Requeued job ${r.id} onto ${r.queue}.`);
const cancelJob = (id) => act(`/api/jobs/${encodeURIComponent(id)}/cancel`, (r) => `Job ${r.id}: ${r.action || r.status}.`);
const requeueAll = (queue) => act(`/api/queues/${encodeURIComponent(queue)}/requeue-failed`,
  (r) => `Requeued ${r.requeued} failed job(s) of ${r.queue}` + (r.skipped.length ? ` (${r.skipped.length} expired, skipped).` : "."));

function jobLink(id) {
  return el("a", { href: `#job/${id}`, class: "mono", onclick: (e) => { e.preventDefault(); openJob(id); } }, id);
}

function renderQueues(queues) {
  const rows = queues.map((q) => el("tr", { "data-queue": q.name },
    el("td", {}, el("strong", {}, q.name)),
    ...STATES.map((s) => el("td", { class: "num" + (s === "failed" && q.failed ? " count-failed" : q[s] ? "" : " zero"), "data-state": s },
      el("a", { href: `#${q.name}/${s}`, onclick: (e) => { e.preventDefault(); openBrowse(q.name, s, 0); } }, q[s]))),
    el("td", { class: "num" }, age(q.oldest_queued_age))));
  fillBody($("#queues"), rows, 9, "no queues yet");
}

async function renderFailed(queues) {
  const withFailures = queues.filter((q) => q.failed > 0);
  const pages = await Promise.all(withFailures.map((q) =>
    api(`/api/queues/${encodeURIComponent(q.name)}/jobs?state=failed&limit=${FAILED_PER_QUEUE}`)));
  $("#failed-actions").replaceChildren(...withFailures.map((q) =>
    el("button", { type: "button", onclick: () => requeueAll(q.name) }, `Requeue all ${q.failed} failed in ${q.name}`)));
  const rows = [];
  for (const page of pages) {
    for (const job of page.jobs) {
      rows.push(el("tr", { "data-job": job.id },
        el("td", {}, page.queue), el("td", {}, jobLink(job.id)), el("td", { class: "mono" }, job.func || "—"),
        el("td", { class: "exc", title: job.exception || "" }, job.exception || "—"), el("td", {}, clock(job.ended_at)),
        el("td", {}, el("button", { type: "button", class: "requeue", onclick: () => requeueJob(job.id) }, "Requeue"))));
    }
  }
  fillBody($("#failed"), rows, 6, "no failed jobs");
}

function renderWorkers(workers) {
  const rows = workers.map((w) => {
    const beat = w.last_heartbeat ? (Date.now() - Date.parse(w.last_heartbeat)) / 1000 : null;
    return el("tr", {},
      el("td", { class: "mono" }, w.name),
      el("td", { class: `state-${w.state}` }, w.state,
        w.state_since ? el("span", { class: "muted" }, ` · ${age(Date.now() / 1000 - w.state_since)}`) : null),
      el("td", {}, w.current_job ? jobLink(w.current_job) : "—"),
      el("td", {}, w.queues.join(", ")),
      el("td", { class: "mono" }, w.instance_id || w.hostname || "—"),
      el("td", { class: "num" + (beat !== null && beat > 60 ? " stale" : "") }, beat === null ? "—" : age(beat) + " ago"));
  });
  fillBody($("#workers"), rows, 6, "no live workers");
}

function renderDecisions(decisions) {
  const rows = decisions.map((d) => el("tr", {},
    el("td", {}, clock(d.ts)),
    el("td", { class: "num" }, d.desired ?? "—"), el("td", { class: "num" }, d.in_service ?? "—"),
    el("td", { class: "num" }, d.booting ?? "—"), el("td", { class: "num" }, d.busy ?? "—"),
    el("td", { class: "num" }, d.queued ?? "—"),
    el("td", { class: "reason" }, (d.dry_run === true ? "[dry run] " : "") + (d.reason || ""),
      Array.isArray(d.drained) && d.drained.length ? el("div", { class: "muted" }, "drained: " + d.drained.join(", ")) : null)));
  fillBody($("#decisions"), rows, 7, "no decisions recorded (is the autoscaler running?)");
}

function openBrowse(queue, jobState, offset) {
  state.browse = { queue, state: jobState, offset };
  $("#browse").hidden = false;
  refreshBrowse().catch((error) => banner(error.message));
  $("#browse").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function refreshBrowse() {
  if (!state.browse) return;
  const { queue, state: jobState, offset } = state.browse;
  const page = await api(`/api/queues/${encodeURIComponent(queue)}/jobs?state=${jobState}&offset=${offset}&limit=${PAGE}`);
  $("#browse-title").textContent = `${queue} · ${jobState} (${page.total})`;
  const cancelable = ["queued", "scheduled", "deferred", "started"].includes(jobState);
  const rows = page.jobs.map((job) => el("tr", { "data-job": job.id },
    el("td", {}, jobLink(job.id)), el("td", { class: "mono" }, job.func || "—"), el("td", {}, job.status),
    el("td", {}, clock(job.enqueued_at)), el("td", {}, clock(job.ended_at)),
    el("td", { class: job.exception ? "exc" : "" }, job.exception || progressText(job.progress) || ""),
    el("td", {},
      jobState === "failed" ? el("button", { type: "button", onclick: () => requeueJob(job.id) }, "Requeue") : null,
      cancelable ? el("button", { type: "button", onclick: () => cancelJob(job.id) }, jobState === "started" ? "Stop" : "Cancel") : null)));
  fillBody($("#browse-jobs"), rows, 7, "no jobs in this state");
  const last = Math.min(offset + PAGE, page.total);
  $("#page-info").textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "";
  $("#prev").disabled = offset === 0;
  $("#next").disabled = last >= page.total;
}

// meta["progress"] as written by jobfleet.progress.report_progress: {percent: 0..100, message, at}.
function progressPercent(progress) {
  const clamp = (x) => Math.max(0, Math.min(100, x));
  if (typeof progress === "number") return clamp(progress);
  if (progress && typeof progress === "object") {
    if (typeof progress.percent === "number") return clamp(progress.percent);
    if (typeof progress.done === "number" && progress.total > 0) return clamp((100 * progress.done) / progress.total);
  }
  return null;
}

function progressText(progress) {
  if (progress === null || progress === undefined) return "";
  const pct = progressPercent(progress);
  if (pct === null) return JSON.stringify(progress);
  const message = typeof progress === "object" && progress.message ? ` · ${progress.message}` : "";
  return `${Math.round(pct)} %${message}`;
}

async function openJob(id) {
  state.jobId = id;
  const dialog = $("#job-dialog");
  if (!dialog.open) dialog.showModal();
  await refreshJob();
}

async function refreshJob() {
  if (!state.jobId) return;
  let job;
  try {
    job = await api(`/api/jobs/${encodeURIComponent(state.jobId)}`);
  } catch (error) {
    $("#job-fields").replaceChildren(el("dt", {}, "error"), el("dd", {}, error.message));
    return;
  }
  $("#job-id").textContent = job.id;
  const fields = [
    ["status", job.status], ["queue", job.queue], ["function", job.func], ["args", job.args], ["kwargs", job.kwargs],
    ["enqueued", job.enqueued_at], ["started", job.started_at], ["ended", job.ended_at],
    ["worker", job.worker_name], ["retries left", job.retries_left], ["timeout", job.timeout],
    ["result", job.result], ["meta", Object.keys(job.meta).length ? JSON.stringify(job.meta, null, 2) : null],
    ["executions", job.executions.map((x) => `${x.type} ${x.created_at}`).join("\n") || null],
  ];
  $("#job-fields").replaceChildren(...fields.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const pct = progressPercent(job.progress);
  $("#job-progress").hidden = pct === null;
  if (pct !== null) { $("#job-progress progress").value = pct; $("#job-progress span").textContent = progressText(job.progress); }
  $("#job-exception").textContent = job.exception || "";
  $("#job-exception").hidden = $("#job-exception-title").hidden = !job.exception;
  $("#job-requeue").hidden = job.status !== "failed";
  $("#job-cancel").hidden = !["queued", "scheduled", "deferred", "started"].includes(job.status);
  $("#job-cancel").textContent = job.status === "started" ? "Stop" : "Cancel";
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const [queues, workers, decisions] = await Promise.all([
      api("/api/queues"), api("/api/workers"), api("/api/scaling/decisions?limit=15")]);
    renderQueues(queues);
    renderWorkers(workers);
    renderDecisions(decisions);
    await Promise.all([renderFailed(queues), refreshBrowse(), refreshJob()]);
    $("#status").textContent = `updated ${clock(Date.now() / 1000)}`;
    if ($("#banner").className === "banner") banner("");
  } catch (error) {
    $("#status").textContent = "update failed";
    banner(`Could not refresh: ${error.message}`);
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = $("#autorefresh").checked ? setInterval(refresh, REFRESH_MS) : null;
}

$("#autorefresh").addEventListener("change", schedule);
$("#token-button").addEventListener("click", askToken);
$("#browse-close").addEventListener("click", () => { state.browse = null; $("#browse").hidden = true; });
$("#prev").addEventListener("click", () => { state.browse.offset = Math.max(0, state.browse.offset - PAGE); refreshBrowse(); });
$("#next").addEventListener("click", () => { state.browse.offset += PAGE; refreshBrowse(); });
$("#job-close").addEventListener("click", () => $("#job-dialog").close());
$("#job-dialog").addEventListener("close", () => { state.jobId = null; });
$("#job-requeue").addEventListener("click", () => requeueJob(state.jobId));
$("#job-cancel").addEventListener("click", () => cancelJob(state.jobId));
refresh();
schedule();
