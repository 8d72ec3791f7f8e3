"""REST API v1: workflows ("jobs made of tasks") — submit, list, follow, retry, cancel — and readiness.

Mounted by ``dashboard.app.create_app``, whose ``SecurityMiddleware`` authorizes every ``/api`` request (the
dashboard token, when one is configured, and the origin check for writes).
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import RedisError

from dashboard import queries
from dashboard.errors import ApiError
from dashboard.workflow_models import (
    CancelOut,
    Readiness,
    RetryOut,
    TaskDetail,
    TaskPage,
    WorkflowDetail,
    WorkflowIn,
    WorkflowOut,
    WorkflowPage,
)
from jobfleet.errors import SubmitError
from jobfleet.settings import Settings
from jobfleet.worker_registry import worker_instances
from jobfleet.workflows import definition, store
from jobfleet.workflows.control import cancel_workflow, retry_workflow
from jobfleet.workflows.model import TASK_ID_PATTERN, WORKFLOW_ID_PATTERN, WorkflowError
from jobfleet.workflows.state import compile_graph, layers
from jobfleet.workflows.submit import IdempotencyConflict, submit_workflow

MAX_PAGE = 500
WorkflowId = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, description="workflow id (32 hex digits)")]
TaskId = Annotated[str, Path(pattern=TASK_ID_PATTERN, description="task id: <workflow id>-<node>-<index>")]
StatusFilter = Annotated[str | None, Query(pattern=r"^(queued|running|succeeded|failed|canceled)$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _out(summary: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in summary.items() if k not in ("created_at", "started_at", "ended_at", "nodes")}
    for key in ("created_at", "started_at", "ended_at"):
        out[key] = _iso(summary[key])
    return out


def _node_status(node: dict[str, Any]) -> str:
    """One word for a node: failed (past its threshold), canceled (skipped or cut short), succeeded, running,
    queued."""
    counts = node["counts"]
    if node["failed"]:
        return "failed"
    if counts["queued"] or counts["running"]:
        if node["skipped"] and not counts["running"]:
            return "canceled"
        return "running" if counts["running"] or counts["succeeded"] or counts["failed"] else "queued"
    if node["skipped"] or counts["canceled"]:
        return "canceled"
    return "succeeded"


def router(redis: Redis, settings: Settings) -> APIRouter:
    """The v1 routes on ``redis``."""
    api = APIRouter()

    def summary_or_404(wid: str) -> dict[str, Any]:
        found = store.read_status(redis, wid)
        if found is None:
            raise ApiError(404, f"unknown workflow {wid!r}")
        return found

    @api.post("/api/v1/jobs", status_code=201, response_model=WorkflowOut, tags=["v1"],
              responses={200: {"model": WorkflowOut, "description": "replay of an Idempotency-Key"}})
    def create(body: WorkflowIn, idempotency_key: IdempotencyKey = None) -> Any:
        """Submit a workflow (all or nothing). ``Idempotency-Key``: the same key within 24 h returns the same
        workflow (even under concurrent identical requests); a different body with that key is a 422."""
        data = body.model_dump(exclude_none=True)
        try:
            workflow = definition.from_dict(data, default_queue=_default_queue(settings))
            submitted = submit_workflow(workflow, idempotency_key=idempotency_key,
                                        fingerprint=definition.fingerprint(data), connection=redis, settings=settings)
        except IdempotencyConflict as exc:
            raise ApiError(422, str(exc)) from None
        except (WorkflowError, SubmitError) as exc:
            raise ApiError(422, str(exc)) from None
        out = _out(summary_or_404(submitted.id))
        out["created"] = submitted.created
        return JSONResponse(out, status_code=201 if submitted.created else 200)

    @api.get("/api/v1/jobs", response_model=WorkflowPage, tags=["v1"])
    def list_jobs(
        status: StatusFilter = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """Workflows newest first (optionally in one status): O(page) per request at any number of them."""
        rows, total = store.list_workflows(redis, status, offset, limit)
        return {"jobs": [_out(r) for r in rows], "total": total, "offset": offset, "limit": limit}

    @api.get("/api/v1/jobs/{workflow_id}", response_model=WorkflowDetail, tags=["v1"])
    def get_job(workflow_id: WorkflowId) -> dict[str, Any]:
        """Status, counts per state (O(1)), timestamps and the graph (one node per task or array)."""
        summary = summary_or_404(workflow_id)
        spec = store.read_spec(redis, workflow_id) or {"tasks": []}
        nodes = store.read_nodes(redis, workflow_id, summary["nodes"])
        plans = compile_graph(definition.from_dict(spec)) if spec["tasks"] else []
        depth = layers(plans)
        out = _out(summary)
        out["nodes"] = [
            {"id": n["id"], "index": n["index"], "size": n["size"], "status": _node_status(n), "counts": n["counts"],
             "depends_on": list(t.get("depends_on", [])), "depends": (t.get("array") or {}).get("depends"),
             "layer": depth[n["index"]] if n["index"] < len(depth) else 0, "queue": n["queue"]}
            for n, t in zip(nodes, spec["tasks"], strict=False)
        ]
        return out

    @api.get("/api/v1/jobs/{workflow_id}/tasks", response_model=TaskPage, tags=["v1"])
    def list_tasks(
        workflow_id: WorkflowId,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """A page of the workflow's tasks in node order, with their states (O(page))."""
        spec = store.read_spec(redis, workflow_id)
        if spec is None:
            raise ApiError(404, f"unknown workflow {workflow_id!r}")
        tasks, total = store.tasks_page(redis, workflow_id, spec, offset, limit)
        return {"tasks": tasks, "total": total}

    @api.get("/api/v1/tasks/{task_id}", response_model=TaskDetail, tags=["v1"])
    def get_task(task_id: TaskId) -> dict[str, Any]:
        """One task: its workflow state and its RQ job's details (status, result or traceback, retries...)."""
        parsed = store.parse_task_id(task_id)
        spec = store.read_spec(redis, parsed[0]) if parsed else None
        if parsed is None or spec is None or parsed[1] >= len(spec["tasks"]):
            raise ApiError(404, f"unknown task {task_id!r}")
        wid, n, i = parsed
        node = spec["tasks"][n]
        if i >= int((node.get("array") or {}).get("size", 1)):
            raise ApiError(404, f"unknown task {task_id!r}")
        job = queries.job_detail(redis, task_id) if redis.exists(f"rq:job:{task_id}") else None
        return {"id": task_id, "workflow_id": wid, "node": node["id"],
                "array_index": i if node.get("array") else None, "status": store.task_state(redis, wid, n, i),
                "job": job}

    @api.post("/api/v1/jobs/{workflow_id}/retry", response_model=RetryOut, tags=["v1"])
    def retry(workflow_id: WorkflowId) -> dict[str, Any]:
        """Re-run failed, canceled and stuck tasks and everything they blocked; succeeded tasks are kept."""
        summary_or_404(workflow_id)
        try:
            return retry_workflow(redis, workflow_id)
        except SubmitError as exc:
            raise ApiError(404, str(exc)) from None

    @api.post("/api/v1/jobs/{workflow_id}/cancel", response_model=CancelOut, tags=["v1"])
    def cancel(workflow_id: WorkflowId) -> dict[str, Any]:
        """Cancel queued tasks and stop running ones (409 when the workflow has already ended)."""
        summary = summary_or_404(workflow_id)
        result = cancel_workflow(redis, workflow_id)
        if result["status"] != "canceled" or summary["status"] == "canceled":
            raise ApiError(409, f"workflow {workflow_id} has already ended ({result['status']})")
        return result

    @api.get("/readyz", response_model=Readiness, tags=["meta"], responses={503: {"model": Readiness}})
    def readyz() -> JSONResponse:
        """200 when Redis answers AND at least one worker's heartbeat is younger than JOBFLEET_WORKER_TTL."""
        try:
            redis.ping()
            workers = worker_instances(redis)
        except RedisError as exc:
            return JSONResponse({"status": "not ready", "redis": f"unavailable: {type(exc).__name__}",
                                 "fresh_workers": 0, "reason": "Redis does not answer"}, 503)
        now = time.time()
        fresh = sum(1 for w in workers
                    if w.last_heartbeat is not None
                    and now - calendar.timegm(w.last_heartbeat.utctimetuple()) < settings.worker_ttl)
        if fresh == 0:
            return JSONResponse({"status": "not ready", "redis": "ok", "fresh_workers": 0,
                                 "reason": f"no worker heartbeat in the last {settings.worker_ttl} s"}, 503)
        return JSONResponse({"status": "ready", "redis": "ok", "fresh_workers": fresh, "reason": None})

    return api


def _default_queue(settings: Settings) -> str:
    return "default" if "default" in settings.queues else settings.queues[0]
