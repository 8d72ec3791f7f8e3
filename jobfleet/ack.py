"""Acknowledged submit: wait until Redis replicas hold what was just written (``WAIT``), opt-in.

Redis replicates asynchronously: a job accepted by the primary and not yet copied to a replica is lost
if the primary dies and the replica is promoted (ElastiCache automatic failover). A caller that cannot
afford that asks for ``ack_replicas`` replicas to confirm: :func:`wait_for_replicas` does one write and
``WAIT`` on the same connection; Redis's replication stream is ordered, so that write's acknowledgement
covers every write completed before it, whichever pooled connection made them (the submit's own).

Cost: one extra round trip plus the replication delay (``bench/failover.py`` prints it). A timeout is not
a failure to enqueue: the job is on the primary, only its copy is unconfirmed. :class:`NotReplicatedError`
carries the job id; re-submitting with the same idempotency key is safe.

Wiring (``jobfleet.submit``): after the enqueue, ``acknowledge(conn, settings, job.id)`` - it does nothing
when ``JOBFLEET_SUBMIT_ACK_REPLICAS`` is 0.
"""

from __future__ import annotations

import time

from redis import Redis

from jobfleet.settings import Settings

ACK_KEY = "jobfleet:ack:last"


class NotReplicatedError(RuntimeError):
    """Fewer replicas than asked confirmed the submit within the timeout (the job is on the primary)."""

    def __init__(self, job_id: str | None, wanted: int, acked: int, timeout_ms: int) -> None:
        self.job_id, self.wanted, self.acked, self.timeout_ms = job_id, wanted, acked, timeout_ms
        what = f"job {job_id}" if job_id else "the write"
        super().__init__(f"{what} is on the primary but only {acked} of {wanted} replica(s) confirmed it "
                         f"within {timeout_ms} ms; re-submit with the same idempotency key to be sure")


def wait_for_replicas(connection: Redis, replicas: int, timeout_ms: int, job_id: str | None = None) -> int:
    """Block until ``replicas`` replicas hold every write completed so far (or ``timeout_ms``); the count.

    Raises :class:`NotReplicatedError` when fewer confirmed. ``replicas`` <= 0 returns 0 at once.
    """
    if replicas <= 0:
        return 0
    pipe = connection.pipeline(transaction=False)  # one connection for the marker write and its WAIT
    pipe.set(ACK_KEY, repr(time.time()), ex=60)
    pipe.execute_command("WAIT", replicas, timeout_ms)
    _, acked = pipe.execute()
    if int(acked) < replicas:
        raise NotReplicatedError(job_id, replicas, int(acked), timeout_ms)
    return int(acked)


def acknowledge(connection: Redis, settings: Settings, job_id: str | None = None,
                replicas: int | None = None) -> int:
    """:func:`wait_for_replicas` with ``JOBFLEET_SUBMIT_ACK_REPLICAS`` / ``..._TIMEOUT_MS`` (or ``replicas``)."""
    wanted = settings.submit_ack_replicas if replicas is None else replicas
    return wait_for_replicas(connection, wanted, settings.submit_ack_timeout_ms, job_id)
