"""Response shapes of the dashboard API (they document the API in FastAPI's OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every error response: what is wrong, in words."""

    error: str


class QueueStats(BaseModel):
    """Job counts of one queue by state."""

    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    finished: int
    failed: int
    canceled: int
    oldest_queued_age: float | None = Field(None, description="Seconds since the head job of the queue was enqueued")


class JobSummary(BaseModel):
    """A job as listed in a page (``status`` is ``missing`` when its data has expired)."""

    model_config = ConfigDict(extra="allow")
    id: str
    status: str
    queue: str | None = None
    func: str | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    progress: Any = None
    exception: str | None = Field(None, description="Last line of the traceback (failed jobs only)")
    scheduled_for: str | None = Field(None, description="When a scheduled job is due to run (scheduled jobs only)")


class JobPage(BaseModel):
    """One page of a queue's jobs in a state."""

    queue: str
    state: str
    offset: int
    limit: int
    total: int
    jobs: list[JobSummary]


class Execution(BaseModel):
    """One recorded outcome of a job run."""

    type: str
    created_at: str | None


class JobDetail(JobSummary):
    """Everything about one job."""

    description: str | None = None
    args: str
    kwargs: str
    meta: dict[str, Any]
    created_at: str | None = None
    timeout: float | str | None = None
    retries_left: int | None = None
    number_of_retries: int | None = None
    retry_intervals: list[float] | None = None
    worker_name: str | None = None
    dependency_ids: list[str]
    result: str | None = Field(None, description="repr of the return value of a finished job")
    result_type: str | None = None
    executions: list[Execution]


class WorkerInfo(BaseModel):
    """A live worker."""

    name: str
    state: str
    state_since: float | None = Field(None, description="Unix time the worker entered its state")
    current_job: str | None
    queues: list[str]
    instance_id: str | None
    hostname: str | None
    pid: int | None
    last_heartbeat: str | None
    birth: str | None
    successful_jobs: int
    failed_jobs: int


class Decision(BaseModel):
    """One autoscaler decision from the stream (unparseable fields come back as text)."""

    model_config = ConfigDict(extra="allow")
    id: str
    ts: float | str
    desired: int | str | None = None
    in_service: int | str | None = None
    booting: int | str | None = None
    busy: int | str | None = None
    queued: int | str | None = None
    started: int | str | None = None
    reason: str | None = None
    drained: Any = None
    dry_run: bool | str | None = None
    inputs: Any = None


class JobAction(BaseModel):
    """Outcome of a requeue or cancel."""

    model_config = ConfigDict(extra="allow")
    id: str
    queue: str
    status: str


class BulkTask(BaseModel):
    """A bulk action (requeue a queue's failed jobs, empty a queue) running in the background."""

    id: str
    kind: str = Field(description="requeue-failed or empty")
    queue: str
    state: str = Field(description="running, done or failed")
    total: int = Field(description="Jobs the action covers (snapshot taken when it started)")
    done: int = Field(description="Jobs handled so far")
    requeued: int = 0
    deleted: int = 0
    skipped: list[str] = Field(description="Failed entries whose job data has expired (left in place)")
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class Health(BaseModel):
    """Liveness of the dashboard and its Redis."""

    status: str
    redis: str
