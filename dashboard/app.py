"""The dashboard's FastAPI application: JSON API under ``/api``, the single-page UI at ``/``."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import swagger_ui_bundle
from fastapi import FastAPI, Path, Query
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis import Redis
from redis.exceptions import RedisError

from dashboard import actions, api_v1, bulk, decisions, queries
from dashboard.api_tenants import tenants_router
from dashboard.errors import ApiError, install_error_handlers
from dashboard.models import (
    BulkTask,
    Decision,
    ErrorBody,
    Health,
    JobAction,
    JobDetail,
    JobPage,
    QueueStats,
    WorkerInfo,
)
from dashboard.security import SecurityMiddleware, policy_from_settings
from jobfleet.connection import redis_connection
from jobfleet.settings import Settings

STATIC_DIR = FilePath(__file__).resolve().parent / "static"
MAX_PAGE = 500
MAX_DECISIONS = 1000
#: Path parameters as the schema documents them (so clients and fuzzers know what is valid).
QueueName = Annotated[str, Path(min_length=1, max_length=queries.MAX_QUEUE_NAME, pattern=r"^[^\x00-\x1f\x7f]+$",
                                description="any name RQ accepts (URL-encoded: spaces, slashes, non-ASCII)")]
JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
TaskId = Annotated[str, Path(min_length=1, max_length=64)]
JobState = Literal["queued", "started", "scheduled", "deferred", "finished", "failed", "canceled"]
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
        "When `JOBFLEET_DASHBOARD_TOKEN` is set, every `/api` request needs `Authorization: Bearer <token>` "
        "(reads are open only with `JOBFLEET_DASHBOARD_OPEN_READS=1`). Write requests from another origin "
        "are refused.",
        responses=_ERRORS,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(SecurityMiddleware, policy=policy_from_settings(settings))
    app.state.redis = redis
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

    @app.get("/api/queues/{queue:path}/jobs", response_model=JobPage, tags=["queues"])
    def queue_jobs(
        queue: QueueName,
        state: JobState = "queued",
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """A page of the queue's jobs in ``state`` (failed/finished/canceled newest first)."""
        if state not in queries.STATES:
            raise ApiError(400, f"unknown state {state!r}: expected one of {', '.join(queries.STATES)}")
        queries.require_queue(redis, queue_names, queue)
        return queries.jobs_page(redis, queue, state, offset, limit)

    @app.post("/api/queues/{queue:path}/requeue-failed", response_model=BulkTask, status_code=202,
              tags=["actions"])
    def requeue_failed(queue: QueueName) -> dict[str, Any]:
        """Start moving every failed job of the queue back onto it, in the background (poll ``/api/tasks/{id}``)."""
        queries.require_queue(redis, queue_names, queue)
        return bulk.start(redis, "requeue-failed", queue)

    @app.post("/api/queues/{queue:path}/empty", response_model=BulkTask, status_code=202, tags=["actions"])
    def empty_queue(
        queue: QueueName, confirm: Annotated[str, Query(max_length=600, description="the queue's name, again")] = ""
    ) -> dict[str, Any]:
        """Start deleting every queued job of the queue, in the background; ``confirm`` must repeat its name."""
        queries.require_queue(redis, queue_names, queue)
        if confirm != queue:
            raise ApiError(409, f"emptying deletes every queued job: repeat the queue name as ?confirm={queue}")
        return bulk.start(redis, "empty", queue)

    @app.get("/api/tasks/{task_id}", response_model=BulkTask, tags=["actions"])
    def task(task_id: TaskId) -> dict[str, Any]:
        """Progress of a bulk action."""
        return bulk.task_state(redis, task_id)

    @app.get("/api/jobs/{job_id}", response_model=JobDetail, tags=["jobs"])
    def job(job_id: JobId) -> dict[str, Any]:
        """Status, function, arguments, meta (incl. ``progress``), result or traceback, timestamps, retries."""
        return queries.job_detail(redis, job_id)

    @app.post("/api/jobs/{job_id}/requeue", response_model=JobAction, tags=["actions"])
    def requeue(job_id: JobId) -> dict[str, Any]:
        """Move a failed job back onto its queue (409 when the job is not failed)."""
        return actions.requeue_job(redis, job_id)

    @app.delete("/api/jobs/{job_id}", response_model=JobAction, tags=["actions"])
    def delete(job_id: JobId) -> dict[str, Any]:
        """Delete a job that is not running: its data, results and queue/registry entries (409 while it runs)."""
        return actions.delete_job(redis, job_id)

    @app.post("/api/jobs/{job_id}/cancel", response_model=JobAction, tags=["actions"])
    def cancel(job_id: JobId) -> dict[str, Any]:
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

    # SecurityMiddleware authorizes every /api request of these routers too
    app.include_router(api_v1.router(redis, settings))
    app.include_router(tenants_router(settings, redis))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        """Swagger UI from local assets (no CDN)."""
        return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})

    app.mount("/swagger-ui", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
