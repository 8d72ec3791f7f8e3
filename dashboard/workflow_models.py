"""Request and response shapes of REST API v1 (workflows): they make the OpenAPI schema exact."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobfleet.workflows.model import (
    MAX_ARRAY,
    MAX_NAME,
    MAX_NODES,
    NODE_ID_PATTERN,
    TASK_ID_PATTERN,
    WORKFLOW_ID_PATTERN,
)

QUEUE_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
FUNC_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
STATUS_PATTERN = r"^(queued|running|succeeded|failed|canceled)$"
Status = Literal["queued", "running", "succeeded", "failed", "canceled"]


class ArrayIn(BaseModel):
    """An array node: ``size`` children, each told its index."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(ge=1, le=MAX_ARRAY)
    depends: Literal["N_TO_N", "SEQUENTIAL"] | None = Field(
        None, description="N_TO_N: child i waits for child i of each array it depends on; SEQUENTIAL: child i "
        "waits for child i-1")
    max_failures: int = Field(0, ge=0, le=MAX_ARRAY, description="failed children tolerated before the node fails")


class RetryIn(BaseModel):
    """Retries of each task of a node."""

    model_config = ConfigDict(extra="forbid")
    max: int = Field(0, ge=0, le=100)
    intervals: list[float] | None = Field(None, description="seconds before each retry (last one repeats)")
    exit_codes: list[int] | None = Field(None, description="shell tasks: exit codes worth a retry (default any)")


class TaskIn(BaseModel):
    """One node of the graph: a Python function (``func``) or a program (``command``), once or as an array."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=NODE_ID_PATTERN)
    func: str | None = Field(None, pattern=FUNC_PATTERN, max_length=300, examples=["app.jobs.resize"])
    command: list[str] | None = Field(None, min_length=1, description="program and arguments (shell task type)")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    input: Any = Field(None, description="shell tasks: JSON given as JOBFLEET_JOB_INPUT")
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    timeout: int | None = Field(None, gt=0, description="seconds, per task (per child of an array)")
    retry: RetryIn | int | None = None
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_NODES)
    on_failure: Literal["fail", "skip", "continue"] = "fail"
    array: ArrayIn | None = None


class WorkflowIn(BaseModel):
    """``POST /api/v1/jobs`` body: a job made of tasks (a workflow)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    tenant: str | None = Field(None, pattern=NODE_ID_PATTERN)
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    tasks: list[TaskIn] = Field(min_length=1, max_length=MAX_NODES)
    on_success: str | None = Field(None, pattern=FUNC_PATTERN)
    on_failure: str | None = Field(None, pattern=FUNC_PATTERN)
    on_end: str | None = Field(None, pattern=FUNC_PATTERN)


class Counts(BaseModel):
    """Tasks per state (read in O(1))."""

    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class NodeOut(BaseModel):
    """A node of the graph with its per-state counts (arrays are one node)."""

    id: str = Field(pattern=NODE_ID_PATTERN)
    index: int
    size: int
    status: Status
    counts: Counts
    depends_on: list[str]
    depends: str | None = None
    layer: int = Field(description="column when drawn: 0 = no dependencies")
    queue: str


class WorkflowOut(BaseModel):
    """A workflow's status (``status`` is one of queued, running, succeeded, failed, canceled)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=WORKFLOW_ID_PATTERN)
    name: str
    tenant: str | None = None
    queue: str | None = None
    status: Status
    counts: Counts
    total: int
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None


class WorkflowDetail(WorkflowOut):
    """One workflow with its graph."""

    nodes: list[NodeOut]


class WorkflowPage(BaseModel):
    """A page of workflows, newest first."""

    jobs: list[WorkflowOut]
    total: int
    offset: int
    limit: int


class TaskOut(BaseModel):
    """One task (one RQ job) of a workflow."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(pattern=TASK_ID_PATTERN)
    workflow_id: str = Field(pattern=WORKFLOW_ID_PATTERN)
    node: str
    array_index: int | None
    status: Status


class TaskDetail(TaskOut):
    """One task with its RQ job's details (None once the job's data has expired)."""

    job: dict[str, Any] | None


class TaskPage(BaseModel):
    """A page of a workflow's tasks, in node order."""

    tasks: list[TaskOut]
    total: int


class RetryOut(BaseModel):
    """What a retry re-queued."""

    id: str
    status: Status
    requeued: int


class CancelOut(BaseModel):
    """What a cancel stopped."""

    id: str
    status: Status
    stopped: list[str]


class Readiness(BaseModel):
    """Readiness: Redis answers and at least one worker heartbeat is fresh."""

    status: Literal["ready", "not ready"]
    redis: str
    fresh_workers: int
    reason: str | None = None
