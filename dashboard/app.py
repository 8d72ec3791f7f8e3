"""The dashboard's FastAPI application: JSON API under ``/api``, the single-page UI at ``/``."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis import Redis
from redis.exceptions import RedisError

from dashboard import actions, decisions, queries
from dashboard.api_tenants import tenants_router
from dashboard.errors import ApiError, install_error_handlers
from dashboard.models import (
    BulkRequeue,
    Decision,
    ErrorBody,
    Health,
    JobAction,
    JobDetail,
    JobPage,
    QueueStats,
    WorkerInfo,
)
from jobfleet.connection import redis_connection
from jobfleet.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_PAGE = 500
MAX_DECISIONS = 1000
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422, 503)
}


def create_app(settings: Settings, connection: Redis | None = None) -> FastAPI:
    """Build the app for ``settings`` (``connection`` defaults to ``redis_connection(settings)``)."""
    redis = connection if connection is not None else redis_connection(settings)
    app = FastAPI(
        title="jobfleet dashboard",
        version="1.0",
        description="Queues, jobs, workers and autoscaler decisions of a jobfleet (RQ) deployment. "
        "Write actions (POST) need `Authorization: Bearer <JOBFLEET_DASHBOARD_TOKEN>` when a token is set.",
        responses=_ERRORS,
    )
    install_error_handlers(app)
    app.state.redis = redis

    def authorize(request: Request) -> None:
        """Write actions: same-origin only, and the bearer token when one is configured."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise ApiError(403, f"cross-origin request from {origin} refused")
        if settings.dashboard_token is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "this action needs the header 'Authorization: Bearer <dashboard token>'")
        if not hmac.compare_digest(token.strip().encode(), settings.dashboard_token.encode()):
            raise ApiError(401, "wrong dashboard token")

    write = [Depends(authorize)]
    queue_names = settings.queues

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def healthz() -> JSONResponse:
        """200 when Redis answers, 503 otherwise."""
        try:
            redis.ping()
        except RedisError as exc:
            return JSONResponse({"status": "degraded", "redis": f"unavailable: {type(exc).__name__}"}, 503)
        return JSONResponse({"status": "ok", "redis": "ok"})

    @app.get("/api/queues", response_model=list[QueueStats], tags=["queues"])
    def list_queues() -> list[dict[str, Any]]:
        """Every queue with its job counts by state and the age of its oldest queued job."""
        return queries.queue_stats(redis, queue_names)

    @app.get("/api/queues/{queue}/jobs", response_model=JobPage, tags=["queues"])
    def queue_jobs(
        queue: str,
        state: Annotated[str, Query(description=f"one of {', '.join(queries.STATES)}")] = "queued",
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """A page of the queue's jobs in ``state`` (failed/finished/canceled newest first)."""
        if state not in queries.STATES:
            raise ApiError(400, f"unknown state {state!r}: expected one of {', '.join(queries.STATES)}")
        queries.require_queue(redis, queue_names, queue)
        return queries.jobs_page(redis, queue, state, offset, limit)

    @app.post("/api/queues/{queue}/requeue-failed", response_model=BulkRequeue, dependencies=write, tags=["actions"])
    def requeue_failed(queue: str) -> dict[str, Any]:
        """Move every failed job of the queue back onto it."""
        queries.require_queue(redis, queue_names, queue)
        return actions.requeue_all_failed(redis, queue)

    @app.get("/api/jobs/{job_id}", response_model=JobDetail, tags=["jobs"])
    def job(job_id: str) -> dict[str, Any]:
        """Status, function, arguments, meta (incl. ``progress``), result or traceback, timestamps, retries."""
        return queries.job_detail(redis, job_id)

    @app.post("/api/jobs/{job_id}/requeue", response_model=JobAction, dependencies=write, tags=["actions"])
    def requeue(job_id: str) -> dict[str, Any]:
        """Move a failed job back onto its queue (409 when the job is not failed)."""
        return actions.requeue_job(redis, job_id)

    @app.post("/api/jobs/{job_id}/cancel", response_model=JobAction, dependencies=write, tags=["actions"])
    def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a waiting job, or ask the worker running it to stop it (409 when already done)."""
        return actions.cancel_job(redis, job_id)

    @app.get("/api/workers", response_model=list[WorkerInfo], tags=["workers"])
    def list_workers() -> list[dict[str, Any]]:
        """Live workers with state, current job, queues, instance id and last heartbeat."""
        return queries.workers(redis)

    @app.get("/api/scaling/decisions", response_model=list[Decision], tags=["autoscaler"])
    def scaling_decisions(limit: Annotated[int, Query(ge=1, le=MAX_DECISIONS)] = 50) -> list[dict[str, Any]]:
        """The newest autoscaler decisions, newest first."""
        return decisions.recent_decisions(redis, limit)

    app.include_router(tenants_router(settings, redis, write))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
