// jobfleet dashboard: workflows (list, graph, tasks, submission form). Vanilla JS, no CDN, no build step.
// Deep links: #/workflows/<id> and #/tasks/<task id> work on a fresh load. Values go through textContent.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const TASKS_PAGE = 20;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const FUNC_RE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;
  const QUEUE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
  const STATES = ["queued", "running", "succeeded", "failed", "canceled"];
  const view = { route: null, tasksOffset: 0, timer: null, busy: false };
  const q = (sel, root = document) => root.querySelector(sel);

  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const token = () => localStorage.getItem("jobfleet.token") || "";

  async function call(path, options = {}) {
    for (let attempt = 0; ; attempt++) {
      const headers = { Accept: "application/json", ...(options.headers || {}) };
      // With a dashboard token, reads need it too (JOBFLEET_DASHBOARD_OPEN_READS=1 opens them).
      if (token()) headers.Authorization = `Bearer ${token()}`;
      if (options.body) headers["Content-Type"] = "application/json";
      const response = await fetch(path, { ...options, headers });
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      // Reads: the main page (app.js) asks for the token once; the next refresh uses it. Writes ask here.
      if (response.status === 401 && attempt === 0 && options.method === "POST") {
        const value = prompt("Dashboard token (JOBFLEET_DASHBOARD_TOKEN):", token());
        if (value === null) throw new Error("a dashboard token is needed for this action");
        localStorage.setItem("jobfleet.token", value.trim());
        continue;
      }
      if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
      return body;
    }
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return isNaN(date) ? iso : date.toLocaleString([], { hour12: false });
  }

  function progress(counts, total) {
    const bar = h("div", { class: "wf-progress", title: STATES.map((s) => `${s} ${counts[s]}`).join(", ") });
    for (const s of ["succeeded", "failed", "canceled", "running"]) {
      if (!counts[s] || !total) continue;
      bar.append(h("span", { class: `wf-seg wf-${s}`, style: `width:${(100 * counts[s]) / total}%` }));
    }
    return bar;
  }

  function countsText(counts) {
    return STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · ") || "—";
  }

  // ----- list and form -------------------------------------------------------------------------------

  function buildSection() {
    const section = q("#workflows");
    section.replaceChildren(
      h("h2", {}, "Workflows ",
        h("button", { type: "button", id: "wf-new", onclick: () => toggleForm() }, "New workflow")),
      h("form", { id: "wf-form", hidden: true, novalidate: true, onsubmit: submitForm },
        h("label", {}, "function", h("input", { name: "func", required: true, placeholder: "package.module.function",
          size: 36 })),
        h("label", {}, "args (JSON list)", h("textarea", { name: "args", rows: 2, cols: 36, placeholder: "[1, \"two\"]" })),
        h("label", {}, "queue", h("input", { name: "queue", value: "default", size: 10 })),
        h("label", {}, "array size", h("input", { name: "size", type: "number", min: 1, max: 10000,
          placeholder: "optional", size: 8 })),
        h("label", {}, "tenant", h("input", { name: "tenant", placeholder: "optional", size: 12 })),
        h("label", {}, "idempotency key", h("input", { name: "key", placeholder: "optional", size: 18 })),
        h("div", { class: "wf-form-actions" },
          h("button", { type: "submit", id: "wf-submit" }, "Submit"),
          h("span", { id: "wf-form-error", class: "wf-error", role: "alert" }))),
      h("table", { id: "wf-list" },
        h("thead", {}, h("tr", {}, ...["workflow", "status", "progress", "tasks", "created"].map((t) => h("th", {}, t)))),
        h("tbody")),
      h("div", { id: "wf-detail", hidden: true }));
  }

  function toggleForm(show) {
    const form = q("#wf-form");
    form.hidden = show === undefined ? !form.hidden : !show;
  }

  function formError(message) {
    q("#wf-form-error").textContent = message || "";
    return !message;
  }

  function readForm(form) {
    const data = new FormData(form);
    const func = String(data.get("func") || "").trim();
    if (!FUNC_RE.test(func)) return { error: "function must be a dotted path like package.module.function" };
    let args = [];
    const rawArgs = String(data.get("args") || "").trim();
    if (rawArgs) {
      try { args = JSON.parse(rawArgs); } catch (e) { return { error: `args is not valid JSON: ${e.message}` }; }
      if (!Array.isArray(args)) return { error: "args must be a JSON list, e.g. [1, \"two\"]" };
    }
    const queue = String(data.get("queue") || "").trim() || "default";
    if (!QUEUE_RE.test(queue)) return { error: "queue may hold letters, digits and _.:- only" };
    const task = { id: "task", func, args };
    const rawSize = String(data.get("size") || "").trim();
    if (rawSize) {
      const size = Number(rawSize);
      if (!Number.isInteger(size) || size < 1 || size > 10000) return { error: "array size must be a whole number in 1..10000" };
      task.array = { size };
    }
    const key = String(data.get("key") || "").trim();
    if (key.length > 200) return { error: "idempotency key is at most 200 characters" };
    const tenant = String(data.get("tenant") || "").trim();
    if (tenant && !/^[A-Za-z0-9_.:-]{1,64}$/.test(tenant)) {
      return { error: "tenant may only hold letters, digits and _ . : - (1-64 characters)" };
    }
    const body = { name: func.split(".").pop(), queue, tasks: [task] };
    if (tenant) body.tenant = tenant;
    return { body, key };
  }

  async function submitForm(event) {
    event.preventDefault();
    const form = event.target;
    const { error, body, key } = readForm(form);
    if (!formError(error)) return;
    const button = q("#wf-submit");
    button.disabled = true;
    try {
      const headers = key ? { "Idempotency-Key": key } : {};
      const created = await call("/api/v1/jobs", { method: "POST", body: JSON.stringify(body), headers });
      toggleForm(false);
      location.hash = `#/workflows/${created.id}`;
    } catch (e) {
      formError(e.message);
    } finally {
      button.disabled = false;
    }
  }

  async function renderList() {
    const page = await call("/api/v1/jobs?limit=20");
    const rows = page.jobs.map((wf) => h("tr", { "data-workflow": wf.id, "data-status": wf.status },
      h("td", {}, h("a", { href: `#/workflows/${wf.id}` }, wf.name || wf.id), " ", h("code", { class: "muted" }, wf.id.slice(0, 8))),
      h("td", { class: `wf-status wf-text-${wf.status}` }, wf.status),
      h("td", {}, progress(wf.counts, wf.total)),
      h("td", { class: "muted" }, countsText(wf.counts)),
      h("td", { class: "muted" }, when(wf.created_at))));
    const body = q("#wf-list tbody");
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { class: "empty", colspan: 5 }, "no workflows yet"))]));
  }

  // ----- one workflow: graph, tasks, actions ---------------------------------------------------------

  function drawGraph(nodes) {
    const W = 170, H = 58, GX = 60, GY = 22, PAD = 12;
    const columns = new Map();
    for (const n of nodes) {
      if (!columns.has(n.layer)) columns.set(n.layer, []);
      columns.get(n.layer).push(n);
    }
    const pos = new Map();
    let rows = 1;
    for (const [layer, list] of columns) {
      list.forEach((n, i) => pos.set(n.id, { x: PAD + layer * (W + GX), y: PAD + i * (H + GY) }));
      rows = Math.max(rows, list.length);
    }
    const width = PAD * 2 + Math.max(1, columns.size) * (W + GX) - GX;
    const height = PAD * 2 + rows * (H + GY) - GY;
    const root = svg("svg", { id: "wf-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "workflow graph" });
    for (const n of nodes) {
      for (const dep of n.depends_on) {
        const a = pos.get(dep), b = pos.get(n.id);
        if (!a || !b) continue;
        root.append(svg("path", { class: "wf-edge", d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}` }));
      }
    }
    for (const n of nodes) {
      const p = pos.get(n.id);
      const g = svg("g", { class: `wf-node wf-${n.status}`, "data-node": n.id, "data-status": n.status,
        transform: `translate(${p.x},${p.y})` });
      g.append(svg("rect", { width: W, height: H, rx: 8 }));
      const label = n.size > 1 || n.depends ? `${n.id} [${n.size}${n.depends ? " " + n.depends : ""}]` : n.id;
      g.append(svg("text", { x: 10, y: 20, class: "wf-node-title" }, label.length > 24 ? label.slice(0, 23) + "…" : label));
      const c = n.counts;
      g.append(svg("text", { x: 10, y: 38, class: "wf-node-counts" }, `✓${c.succeeded} ✗${c.failed} ▶${c.running} …${c.queued}`));
      g.append(svg("text", { x: 10, y: 52, class: "wf-node-counts" }, `${n.status}${c.canceled ? ` · ${c.canceled} canceled` : ""}`));
      g.append(svg("title", {}, `${n.id}: ${countsText(c)}`));
      root.append(g);
    }
    return root;
  }

  async function act(wid, action) {
    try {
      const result = await call(`/api/v1/jobs/${wid}/${action}`, { method: "POST" });
      const note = action === "retry" ? `re-queued ${result.requeued} task(s)` : `canceled (${result.stopped.length} stopped)`;
      q("#wf-action-note").textContent = note;
    } catch (e) {
      q("#wf-action-note").textContent = e.message;
    }
    await refresh();
  }

  async function renderWorkflow(wid) {
    const [wf, tasks] = await Promise.all([
      call(`/api/v1/jobs/${wid}`),
      call(`/api/v1/jobs/${wid}/tasks?offset=${view.tasksOffset}&limit=${TASKS_PAGE}`),
    ]);
    const detail = q("#wf-detail");
    const ended = ["succeeded", "failed", "canceled"].includes(wf.status);
    const note = q("#wf-action-note") ? q("#wf-action-note").textContent : "";
    const pager = h("div", { class: "pager" },
      h("button", { type: "button", disabled: view.tasksOffset === 0,
        onclick: () => { view.tasksOffset = Math.max(0, view.tasksOffset - TASKS_PAGE); refresh(); } }, "‹ prev"),
      h("span", { class: "muted" }, `${Math.min(tasks.total, view.tasksOffset + 1)}–${Math.min(tasks.total, view.tasksOffset + TASKS_PAGE)} of ${tasks.total}`),
      h("button", { type: "button", disabled: view.tasksOffset + TASKS_PAGE >= tasks.total,
        onclick: () => { view.tasksOffset += TASKS_PAGE; refresh(); } }, "next ›"));
    detail.replaceChildren(
      h("div", { class: "wf-head" },
        h("h3", {}, `Workflow ${wf.name} `, h("code", {}, wf.id)),
        h("span", { id: "wf-status", class: `wf-text-${wf.status}`, "data-status": wf.status }, wf.status),
        h("span", { class: "spacer" }),
        h("button", { type: "button", id: "wf-retry", onclick: () => act(wid, "retry") }, "Retry"),
        h("button", { type: "button", id: "wf-cancel", disabled: ended, onclick: () => act(wid, "cancel") }, "Cancel"),
        h("a", { href: "#", class: "wf-close" }, "close")),
      h("div", { class: "wf-meta muted" }, `${countsText(wf.counts)} · created ${when(wf.created_at)}`,
        wf.ended_at ? ` · ended ${when(wf.ended_at)}` : "", wf.error ? ` · ${wf.error}` : "",
        wf.tenant ? ` · tenant ${wf.tenant}` : ""),
      h("div", { id: "wf-action-note", class: "muted" }, note),
      progress(wf.counts, wf.total),
      h("div", { class: "wf-graph-box" }, drawGraph(wf.nodes)),
      h("table", { id: "wf-tasks" },
        h("thead", {}, h("tr", {}, ...["task", "node", "index", "status"].map((t) => h("th", {}, t)))),
        h("tbody", {}, ...tasks.tasks.map((t) => h("tr", { "data-task": t.id, "data-status": t.status },
          h("td", {}, h("a", { href: `#/tasks/${t.id}` }, h("code", {}, t.id))),
          h("td", {}, t.node), h("td", {}, t.array_index === null ? "—" : t.array_index),
          h("td", { class: `wf-text-${t.status}` }, t.status))))),
      pager);
    detail.hidden = false;
  }

  async function renderTask(taskId) {
    const t = await call(`/api/v1/tasks/${taskId}`);
    const job = t.job || {};
    const fields = [["task", t.id], ["workflow", t.workflow_id], ["node", t.node],
      ["array index", t.array_index === null ? "—" : t.array_index], ["status", t.status],
      ["RQ status", job.status || "expired"], ["queue", job.queue], ["worker", job.worker_name],
      ["started", job.started_at], ["ended", job.ended_at], ["retries left", job.retries_left], ["result", job.result]];
    const detail = q("#wf-detail");
    detail.replaceChildren(
      h("div", { class: "wf-head" },
        h("h3", {}, "Task ", h("code", { id: "wf-task-id" }, t.id)),
        h("span", { id: "wf-task-status", class: `wf-text-${t.status}` }, t.status),
        h("span", { class: "spacer" }),
        h("a", { href: `#/workflows/${t.workflow_id}` }, "← its workflow")),
      h("dl", {}, ...fields.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined ? "—" : v)])),
      job.exception ? h("pre", { class: "wf-exception" }, job.exception) : null);
    detail.hidden = false;
  }

  function parseRoute() {
    const m = location.hash.match(/^#\/(workflows|tasks)\/([0-9a-f]{32}(?:-\d+-\d+)?)$/);
    return m ? { kind: m[1], id: m[2] } : null;
  }

  async function refresh() {
    if (view.busy) return;
    view.busy = true;
    try {
      await renderList();
      const route = parseRoute();
      if (!route) q("#wf-detail").hidden = true;
      else if (route.kind === "workflows") await renderWorkflow(route.id);
      else await renderTask(route.id);
      q("#workflows").classList.remove("wf-stale");
    } catch (e) {
      const detail = q("#wf-detail");
      if (parseRoute()) { detail.replaceChildren(h("p", { class: "wf-error" }, e.message)); detail.hidden = false; }
      q("#workflows").classList.add("wf-stale");
    } finally {
      view.busy = false;
    }
  }

  function onRoute() {
    view.tasksOffset = 0;
    const route = parseRoute();
    if (route) q("#workflows").scrollIntoView({ block: "start" });
    refresh();
  }

  buildSection();
  window.addEventListener("hashchange", onRoute);
  onRoute();
  view.timer = setInterval(() => {
    const auto = document.getElementById("autorefresh");
    if (!auto || auto.checked) refresh();
  }, REFRESH_MS);
})();
