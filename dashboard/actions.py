"""Write side of the dashboard for one job: requeue it (through ``worker.dlq``), cancel or stop it, delete it."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from dashboard.errors import ApiError
from dashboard.queries import fetch_job, status_text
from jobfleet.errors import DeadLetterError
from jobfleet.logs import log_event
from worker import dlq

_CANCELABLE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def _status(job: Job) -> str:
    return status_text(job, refresh=True)


def requeue_job(connection: Redis, job_id: str) -> dict[str, Any]:
    """Move failed job ``job_id`` back onto its queue; 409 when it is not in the failed registry."""
    job = fetch_job(connection, job_id)
    if job.id not in FailedJobRegistry(job.origin, connection=connection):
        raise ApiError(409, f"job {job_id!r} is not failed (status: {_status(job)}); only failed jobs can be requeued")
    try:
        dlq.requeue_failed(connection, job.id)
    except DeadLetterError as exc:  # it left the registry (or expired) between the check and the move
        raise ApiError(409, str(exc)) from None
    return {"id": job.id, "queue": job.origin, "status": _status(job)}


def delete_job(connection: Redis, job_id: str) -> dict[str, Any]:
    """Delete a job that is not running (its data, results and registry entries); 409 while it runs."""
    job = fetch_job(connection, job_id)
    status = _status(job)
    if status == JobStatus.STARTED.value:
        raise ApiError(409, f"job {job_id!r} is running; stop it first, then delete it")
    job.delete(remove_from_queue=True)
    log_event("job_deleted", job_id=job.id, queue=job.origin, previous_status=status, reason="dashboard delete")
    return {"id": job.id, "queue": job.origin, "status": "deleted", "action": "deleted"}


def cancel_job(connection: Redis, job_id: str) -> dict[str, Any]:
    """Cancel a waiting job (queued/scheduled/deferred) or ask its worker to stop a running one."""
    job = fetch_job(connection, job_id)
    status = job.get_status(refresh=True)
    if status in _CANCELABLE:
        try:
            job.cancel()
        except InvalidJobOperation as exc:
            raise ApiError(409, f"job {job_id!r} cannot be canceled: {exc}") from None
        log_event("job_canceled", job_id=job.id, queue=job.origin, reason="dashboard cancel")
        return {"id": job.id, "queue": job.origin, "status": _status(job), "action": "canceled"}
    if status == JobStatus.STARTED:
        try:
            send_stop_job_command(connection, job.id)
        except InvalidJobOperation:
            raise ApiError(409, f"job {job_id!r} is marked started but no worker is running it") from None
        log_event("job_stop_requested", job_id=job.id, queue=job.origin, worker=job.worker_name,
                  reason="dashboard cancel")
        return {"id": job.id, "queue": job.origin, "status": _status(job), "action": "stop requested"}
    raise ApiError(409, f"job {job_id!r} is {_status(job)}; only queued, scheduled, deferred or started jobs can be "
                        "canceled")
