"""The Redis adapter of the workflow engine: run the Lua scripts, read status, pages and tasks."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.commands.core import Script
from rq.utils import now, utcformat

from jobfleet.workflows import scripts
from jobfleet.workflows.model import STATUSES

PREFIX = "jobfleet:wf:"
INDEX = PREFIX + "index"
STATS = PREFIX + "stats"
TASK_ID_RE = re.compile(r"^([0-9a-f]{32})-([0-9]{1,4})-([0-9]{1,5})$")
STATE_NAMES = {None: "queued", "r": "running", "s": "succeeded", "f": "failed", "c": "canceled"}
SUMMARY_FIELDS = ("id", "name", "tenant", "queue", "status", "created_at", "started_at", "ended_at", "total",
                  "queued", "running", "succeeded", "failed", "canceled", "error", "nodes")
COUNT_FIELDS = ("queued", "running", "succeeded", "failed", "canceled")
_scripts: dict[str, Script] = {}


def wf_key(wid: str) -> str:
    """Hash of workflow ``wid``."""
    return PREFIX + wid


def node_key(wid: str, n: int | str) -> str:
    """Hash of node ``n`` of workflow ``wid``."""
    return f"{PREFIX}{wid}:n:{n}"


def index_key(status: str | None = None) -> str:
    """Sorted set (score = creation time) of every workflow, or of those in ``status``."""
    return INDEX if status is None else f"{INDEX}:{status}"


def task_id(wid: str, n: int, i: int) -> str:
    """RQ job id of child ``i`` of node ``n``."""
    return f"{wid}-{n}-{i}"


def parse_task_id(value: str) -> tuple[str, int, int] | None:
    """(workflow id, node index, child index) of a task id, or None when it is not one."""
    match = TASK_ID_RE.match(value)
    return (match.group(1), int(match.group(2)), int(match.group(3))) if match else None


def clock() -> list[str]:
    """The common script arguments after the workflow id: RQ-format timestamp and epoch seconds."""
    return [utcformat(now()), repr(time.time())]


def run_script(conn: Any, name: str, args: Sequence[Any]) -> Any:
    """Run script ``name`` of ``scripts`` on ``conn`` (a client or pipeline): EVALSHA, loaded when missing."""
    found = _scripts.get(name)
    if found is None:
        found = _scripts[name] = Script(conn, getattr(scripts, name))
    return found(args=list(args), client=conn)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def start_task(conn: Redis, wid: str, n: int, i: int) -> str:
    """Mark a task running; 'run', or 'skip' when it must not run (ended, canceled, skipped)."""
    return _text(run_script(conn, "START_TASK", [wid, *clock(), n, i])) or "skip"


def end_task(conn: Redis, wid: str, n: int, i: int, outcome: str) -> tuple[str, str]:
    """Record the end of an attempt ('s', 'f' or 'retry') and release what it unblocks."""
    what, status = run_script(conn, "END_TASK", [wid, *clock(), n, i, outcome])
    return _text(what) or "", _text(status) or ""


def _summary(values: Sequence[Any]) -> dict[str, Any] | None:
    row = dict(zip(SUMMARY_FIELDS, (_text(v) for v in values), strict=True))
    if row["id"] is None:
        return None
    counts = {k: int(row.pop(k) or 0) for k in COUNT_FIELDS}
    return {
        "id": row["id"], "name": row["name"] or "", "tenant": row["tenant"] or None, "queue": row["queue"],
        "status": row["status"], "counts": counts, "total": int(row["total"] or 0),
        "created_at": _float(row["created_at"]), "started_at": _float(row["started_at"]),
        "ended_at": _float(row["ended_at"]), "error": row["error"] or None, "nodes": int(row["nodes"] or 0),
    }


def _float(value: str | None) -> float | None:
    return float(value) if value else None


def read_status(conn: Redis, wid: str) -> dict[str, Any] | None:
    """Status, counts per state and timestamps of a workflow in one HMGET (O(1)); None if unknown."""
    return _summary(conn.hmget(wf_key(wid), SUMMARY_FIELDS))


def read_spec(conn: Redis, wid: str) -> dict[str, Any] | None:
    """The stored definition (dict form) of a workflow."""
    raw = conn.hget(wf_key(wid), "spec")
    return None if raw is None else json.loads(raw)


def read_nodes(conn: Redis, wid: str, count: int) -> list[dict[str, Any]]:
    """Per-node counts and flags (one pipelined round trip, O(nodes))."""
    with conn.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.hmget(node_key(wid, n), ("id", "size", "q", "r", "s", "f", "c", "skip", "bad", "done", "qkey"))
        rows = pipe.execute()
    nodes = []
    for n, row in enumerate(rows):
        node_id, size, q, r, s, f, c, skip, bad, done, qkey = (_text(v) for v in row)
        nodes.append({
            "index": n, "id": node_id, "size": int(size or 0), "skipped": skip == "1", "failed": bad == "1",
            "ended": done == "1", "queue": (qkey or "").removeprefix("rq:queue:"),
            "counts": {"queued": int(q or 0), "running": int(r or 0), "succeeded": int(s or 0),
                       "failed": int(f or 0), "canceled": int(c or 0)},
        })
    return nodes


def list_workflows(conn: Redis, status: str | None, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """A page of workflows, newest first: one ZREVRANGE and one pipelined HMGET per row (O(page))."""
    key = index_key(status)
    with conn.pipeline(transaction=False) as pipe:
        pipe.zrevrange(key, offset, offset + limit - 1)
        pipe.zcard(key)
        ids, total = pipe.execute()
    with conn.pipeline(transaction=False) as pipe:
        for wid in ids:
            pipe.hmget(wf_key(_text(wid) or ""), SUMMARY_FIELDS)
        rows = pipe.execute()
    summaries = [_summary(r) for r in rows]
    gone = [wid for wid, s in zip(ids, summaries, strict=True) if s is None]
    if gone:  # records past JOBFLEET_WORKFLOW_TTL: drop their index entries (lazily, O(page))
        with conn.pipeline(transaction=False) as pipe:
            for status_key in [index_key(), *(index_key(s) for s in STATUSES)]:
                pipe.zrem(status_key, *gone)
            pipe.execute()
    return [s for s in summaries if s is not None], int(total) - len(gone)


def _node_sizes(spec: dict[str, Any]) -> list[int]:
    return [int((t.get("array") or {}).get("size", 1)) for t in spec["tasks"]]


def tasks_page(
    conn: Redis, wid: str, spec: dict[str, Any], offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Tasks ``offset..offset+limit`` in node order, with their states (one HMGET, O(page + nodes))."""
    sizes = _node_sizes(spec)
    total = sum(sizes)
    positions: list[tuple[int, int]] = []
    start, n = offset, 0
    while n < len(sizes) and start >= sizes[n]:
        start -= sizes[n]
        n += 1
    while n < len(sizes) and len(positions) < limit:
        for i in range(start, sizes[n]):
            positions.append((n, i))
            if len(positions) >= limit:
                break
        start, n = 0, n + 1
    if not positions:
        return [], total
    states = conn.hmget(f"{wf_key(wid)}:st", [f"{n}:{i}" for n, i in positions])
    tasks = []
    for (n, i), raw in zip(positions, states, strict=True):
        node = spec["tasks"][n]
        tasks.append({
            "id": task_id(wid, n, i), "workflow_id": wid, "node": node["id"],
            "array_index": i if node.get("array") else None, "status": STATE_NAMES.get(_text(raw), "queued"),
        })
    return tasks, total


def task_state(conn: Redis, wid: str, n: int, i: int) -> str:
    """The workflow's view of one task's state (one of the five statuses)."""
    return STATE_NAMES.get(_text(conn.hget(f"{wf_key(wid)}:st", f"{n}:{i}")), "queued")


def cancel(conn: Redis, wid: str) -> tuple[str, list[str]]:
    """Cancel a workflow: waiting tasks are dropped, running ones asked to stop. (status, stopped ids)."""
    result = [_text(v) or "" for v in run_script(conn, "CANCEL", [wid, *clock()])]
    stopped = result[1:]
    if stopped:
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation, NoSuchJobError

        for job_id in stopped:
            with contextlib.suppress(InvalidJobOperation, NoSuchJobError):
                send_stop_job_command(conn, job_id)
    return result[0], stopped


def stats(conn: Redis) -> dict[str, float]:
    """Ended workflows by final status, duration sum and histogram buckets (for Prometheus)."""
    raw = conn.hgetall(STATS)
    return {(_text(k) or ""): float(_text(v) or 0) for k, v in raw.items()}


def statuses() -> tuple[str, ...]:
    """The five workflow statuses."""
    return STATUSES
