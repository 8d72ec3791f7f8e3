"""Write side of the dashboard: requeue failed jobs (through ``worker.dlq``), cancel or stop a job."""

from __future__ import annotations

from typing import Any

from redis import Redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from dashboard.errors import ApiError
from dashboard.queries import fetch_job, status_text, text
from jobfleet.errors import DeadLetterError
from jobfleet.logs import log_event
from worker import dlq

_CANCELABLE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
_REPORT_SKIPPED = 1000


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


def requeue_all_failed(connection: Redis, queue: str) -> dict[str, Any]:
    """Requeue every failed job of ``queue``; also lists failed entries left behind because their data expired."""
    registry = FailedJobRegistry(queue, connection=connection)
    try:
        requeued = dlq.requeue_all(connection, queue)
    except DeadLetterError:  # a configured queue RQ has never seen: nothing has ever failed in it
        requeued = []
    left = [registry.parse_job_id(text(e)) for e in connection.zrange(registry.key, 0, _REPORT_SKIPPED - 1)]
    pipe = connection.pipeline(transaction=False)
    for job_id in left:
        pipe.exists(Job.key_for(job_id))
    skipped = [job_id for job_id, exists in zip(left, pipe.execute(), strict=True) if not exists]
    return {"queue": queue, "requeued": len(requeued), "skipped": skipped}


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
