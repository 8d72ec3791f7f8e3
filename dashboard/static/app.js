// jobfleet dashboard: vanilla JS, no build step. Every value from the API goes through textContent.
"use strict";

const REFRESH_MS = 2000;
const FAILED_PER_QUEUE = 20;
const PAGE = 25;
const STATES = ["queued", "started", "scheduled", "deferred", "finished", "failed", "canceled"];
const state = { browse: null, jobId: null, timer: null, busy: false, asking: false, declined: false };

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

// Date and time (local) for list timestamps: "2026-12-02 05:33:12".
function stamp(value) {
  if (value === null || value === undefined) return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (isNaN(date)) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

const queuePath = (queue) => `/api/queues/${encodeURIComponent(queue)}`;

function banner(message, kind = "error") {
  const node = $("#banner");
  node.textContent = message;
  node.className = kind === "error" ? "banner" : "banner info";
  node.hidden = !message;
}

function token() { return localStorage.getItem("jobfleet.token") || ""; }

function askToken() {
  const value = prompt("Dashboard token (JOBFLEET_DASHBOARD_TOKEN):", token());
  if (value !== null) localStorage.setItem("jobfleet.token", value.trim());
  return value !== null;
}

async function request(path, options) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
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

// Every request carries the token when one is stored; a 401 asks for it once (one prompt at a time) and retries.
async function api(path, options = {}) {
  const used = token();
  try {
    return await request(path, options);
  } catch (error) {
    if (error.status !== 401) throw error;
    if (token() !== used) return request(path, options);  // a concurrent prompt got a new token meanwhile
    if (state.asking || state.declined) throw error;
    state.asking = true;
    let given;
    try { given = askToken(); } finally { state.asking = false; }
    if (!given) { state.declined = true; throw error; }  // until the Token button is used again
    return request(path, options);
  }
}

async function act(path, doneMessage, method = "POST") {
  try {
    const result = await api(path, { method });
    banner(doneMessage(result), "info");
    await refresh();
    return result;
  } catch (error) {
    banner(error.message);
    return null;
  }
}

function taskText(t) {
  const what = t.kind === "empty" ? `Emptying ${t.queue}` : `Requeueing failed jobs of ${t.queue}`;
  if (t.state === "running") return `${what}: ${t.done} of ${t.total}…`;
  if (t.state === "failed") return `${what} failed after ${t.done} of ${t.total}: ${t.error}`;
  const count = t.kind === "empty" ? `deleted ${t.deleted} queued job(s)` : `requeued ${t.requeued} job(s)`;
  return `${what}: done, ${count}` + (t.skipped.length ? ` (${t.skipped.length} expired, skipped).` : ".");
}

// A bulk action runs on the server; the page polls its progress into the banner until it ends.
async function bulk(path) {
  const task = await act(path, taskText);
  if (!task) return;
  let current = task;
  while (current.state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 500));
    try { current = await api(`/api/tasks/${encodeURIComponent(task.id)}`); } catch (error) { banner(error.message); return; }
    banner(taskText(current), current.state === "failed" ? "error" : "info");
  }
  await refresh();
}

const requeueJob = (id) => act(`/api/jobs/${encodeURIComponent(id)}/requeue`, (r) => `Requeued job ${r.id} onto ${r.queue}.`);
const cancelJob = (id) => act(`/api/jobs/${encodeURIComponent(id)}/cancel`, (r) => `Job ${r.id}: ${r.action || r.status}.`);
const requeueAll = (queue) => bulk(`${queuePath(queue)}/requeue-failed`);
const emptyQueue = (queue, count) => {
  if (!confirm(`Delete all ${count} queued job(s) of ${queue}? This cannot be undone.`)) return null;
  return bulk(`${queuePath(queue)}/empty?confirm=${encodeURIComponent(queue)}`);
};
const deleteJob = (id) => {
  if (!confirm(`Delete job ${id}? Its data and result are removed for good.`)) return null;
  return act(`/api/jobs/${encodeURIComponent(id)}`, (r) => `Deleted job ${r.id}.`, "DELETE")
    .then((r) => { if (r) $("#job-dialog").close(); return r; });
};

function jobLink(id) {
  return el("a", { href: `#job/${encodeURIComponent(id)}`, class: "mono" }, id);
}

const browseHash = (queue, jobState, page = 1) => `#queue/${encodeURIComponent(queue)}/${jobState}/${page}`;

function renderQueues(queues) {
  const rows = queues.map((q) => el("tr", { "data-queue": q.name },
    el("td", {}, el("strong", {}, q.name)),
    ...STATES.map((s) => el("td", { class: "num" + (s === "failed" && q.failed ? " count-failed" : q[s] ? "" : " zero"), "data-state": s },
      el("a", { href: browseHash(q.name, s) }, q[s]))),
    el("td", { class: "num" }, age(q.oldest_queued_age)),
    el("td", {}, q.queued ? el("button", { type: "button", class: "empty-queue", onclick: () => emptyQueue(q.name, q.queued) }, "Empty") : null)));
  fillBody($("#queues"), rows, 10, "no queues yet");
}

// Collapsed by default: the pages are fetched only while the section is open; one queue's error shows in its
// own row instead of blanking the others.
async function renderFailed(queues) {
  const withFailures = queues.filter((q) => q.failed > 0);
  $("#failed-count").textContent = `(${queues.reduce((n, q) => n + q.failed, 0)})`;
  if (!$("#failed-section").open) return;
  const pages = await Promise.allSettled(withFailures.map((q) =>
    api(`${queuePath(q.name)}/jobs?state=failed&limit=${FAILED_PER_QUEUE}`)));
  $("#failed-actions").replaceChildren(...withFailures.map((q) =>
    el("button", { type: "button", onclick: () => requeueAll(q.name) }, `Requeue all ${q.failed} failed in ${q.name}`)));
  const rows = [];
  for (const [i, outcome] of pages.entries()) {
    if (outcome.status === "rejected") {
      rows.push(el("tr", {}, el("td", {}, withFailures[i].name), el("td", { colspan: 5, class: "exc" }, outcome.reason.message)));
      continue;
    }
    const page = outcome.value;
    for (const job of page.jobs) {
      rows.push(el("tr", { "data-job": job.id },
        el("td", {}, page.queue), el("td", {}, jobLink(job.id)), el("td", { class: "mono" }, job.func || "—"),
        el("td", { class: "exc", title: job.exception || "" }, job.exception || "—"), el("td", {}, stamp(job.ended_at)),
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

// Paging goes through the URL hash, so a page can be bookmarked and reloaded.
function goPage(number) {
  if (!state.browse) return;
  location.hash = browseHash(state.browse.queue, state.browse.state, Math.max(1, number));
}

async function refreshBrowse() {
  if (!state.browse) return;
  const { queue, state: jobState, offset } = state.browse;
  const page = await api(`${queuePath(queue)}/jobs?state=${jobState}&offset=${offset}&limit=${PAGE}`);
  $("#browse-title").textContent = `${queue} · ${jobState} (${page.total})`;
  $("#browse-when").textContent = jobState === "scheduled" ? "runs at" : "ended";
  const cancelable = ["queued", "scheduled", "deferred", "started"].includes(jobState);
  const rows = page.jobs.map((job) => el("tr", { "data-job": job.id },
    el("td", {}, jobLink(job.id)), el("td", { class: "mono" }, job.func || "—"), el("td", {}, job.status),
    el("td", {}, stamp(job.enqueued_at)), el("td", {}, stamp(jobState === "scheduled" ? job.scheduled_for : job.ended_at)),
    el("td", { class: job.exception ? "exc" : "" }, job.exception || progressText(job.progress) || ""),
    el("td", {},
      jobState === "failed" ? el("button", { type: "button", onclick: () => requeueJob(job.id) }, "Requeue") : null,
      cancelable ? el("button", { type: "button", onclick: () => cancelJob(job.id) }, jobState === "started" ? "Stop" : "Cancel") : null)));
  fillBody($("#browse-jobs"), rows, 7, "no jobs in this state");
  const last = Math.min(offset + PAGE, page.total);
  $("#page-info").textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "";
  $("#prev").disabled = offset === 0;
  $("#next").disabled = last >= page.total;
  const pages = Math.max(1, Math.ceil(page.total / PAGE));
  const number = $("#page-number");
  number.max = String(pages);
  if (document.activeElement !== number) number.value = String(Math.floor(offset / PAGE) + 1);
  $("#page-count").textContent = `of ${pages}`;
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
    ["enqueued", job.enqueued_at], ["scheduled for", job.scheduled_for], ["started", job.started_at], ["ended", job.ended_at],
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
  $("#job-delete").hidden = job.status === "started";
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
$("#token-button").addEventListener("click", () => { if (askToken()) { state.declined = false; refresh(); } });
// Views from the URL hash: #job/<id> opens a job, #queue/<name>/<state>/<page> a page of a queue (names encoded).
function route() {
  const parts = location.hash.slice(1).split("/").map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
  if (parts[0] === "job" && parts[1]) {
    openJob(parts[1]).catch((error) => banner(error.message));
  } else if (parts[0] === "queue" && parts[1] && STATES.includes(parts[2])) {
    const page = Math.max(1, parseInt(parts[3] || "1", 10) || 1);
    openBrowse(parts[1], parts[2], (page - 1) * PAGE);
  }
}

function clearHash(prefix) {
  if (location.hash.startsWith(prefix)) history.replaceState(null, "", location.pathname + location.search);
}

$("#browse-close").addEventListener("click", () => { state.browse = null; $("#browse").hidden = true; clearHash("#queue/"); });
$("#prev").addEventListener("click", () => goPage(Math.floor(state.browse.offset / PAGE)));
$("#next").addEventListener("click", () => goPage(Math.floor(state.browse.offset / PAGE) + 2));
$("#page-form").addEventListener("submit", (e) => { e.preventDefault(); goPage(parseInt($("#page-number").value, 10) || 1); });
$("#search").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = $("#search-id").value.trim();
  if (id) { location.hash = `#job/${encodeURIComponent(id)}`; if (state.jobId !== id) route(); }
});
$("#failed-section").addEventListener("toggle", () => { if ($("#failed-section").open) refresh(); });
$("#job-close").addEventListener("click", () => $("#job-dialog").close());
$("#job-dialog").addEventListener("close", () => { state.jobId = null; clearHash("#job/"); });
$("#job-requeue").addEventListener("click", () => requeueJob(state.jobId));
$("#job-cancel").addEventListener("click", () => cancelJob(state.jobId));
$("#job-delete").addEventListener("click", () => deleteJob(state.jobId));
window.addEventListener("hashchange", route);
route();
refresh();
schedule();
