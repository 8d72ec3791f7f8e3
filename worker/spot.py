"""Spot interruption watcher for a worker host (``python -m worker.spot``, a root service on AWS).

It polls IMDSv2 every few seconds for ``spot/instance-action`` (the two-minute interruption notice) and
``events/recommendations/rebalance`` (an elevated interruption risk):

* either notice: stop taking jobs -- every worker slot gets SIGTERM through systemd (``systemctl stop``),
  the worker's warm shutdown: it finishes its job and takes no new one;
* interruption notice: a slot whose job cannot finish before the deadline (started + job timeout, later
  than the notice time minus :data:`MARGIN`) gets a second SIGTERM, on which the worker stops the job and
  puts it back at the front of its queue (``JobfleetWorker.request_force_stop``), so another host runs it
  instead of it dying with this one.

Jobs that can finish in time are left to finish. The decision (:func:`parse_notice`, :func:`must_requeue`)
is pure; IMDS, Redis and signals are thin effects around it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq.job import Job

from jobfleet.connection import redis_connection
from jobfleet.logs import configure_logging, log_event
from jobfleet.settings import SettingsError, load_settings
from jobfleet.worker_registry import WorkerInfo, worker_instances

IMDS_ENDPOINT = "http://169.254.169.254"
MARGIN = 20.0
"""Seconds before the interruption by which a requeued job must be back on its queue."""
POLL_SECONDS = 5.0
SECOND_SIGNAL_DELAY = 1.5
"""Seconds between the warm-shutdown SIGTERM and the requeue SIGTERM: RQ takes a second signal within one
second for a duplicate of the first."""


@dataclass(frozen=True)
class Notice:
    """An IMDS notice: ``interruption`` (with the time the instance goes away) or ``rebalance``."""

    kind: str
    deadline: float | None = None
    action: str | None = None


def parse_notice(kind: str, body: str, now: float) -> Notice:
    """A notice from the JSON IMDS returns (``{"action": "terminate", "time": "2026-...Z"}``); a time that
    does not parse counts as two minutes from ``now`` (what AWS promises)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    if kind == "rebalance":
        return Notice("rebalance")
    stamp = data.get("time") if isinstance(data, dict) else None
    try:
        deadline = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        deadline = now + 120.0
    return Notice("interruption", deadline, data.get("action") if isinstance(data, dict) else None)


def must_requeue(started_at: float | None, timeout: float | None, deadline: float, margin: float = MARGIN) -> bool:
    """Whether a running job may still be running at ``deadline - margin`` (then it is requeued now)."""
    if started_at is None or timeout is None or timeout < 0:
        return True  # unknown bound: it may run past the interruption
    return started_at + timeout > deadline - margin


class Imds:
    """A minimal IMDSv2 client (session token per request)."""

    def __init__(self, endpoint: str = IMDS_ENDPOINT, timeout: float = 2.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> str | None:
        """The body of ``/latest/<path>``, or ``None`` on 404 (no notice) or an unreachable IMDS."""
        try:
            token_request = urllib.request.Request(
                f"{self.endpoint}/latest/api/token", method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            )
            with urllib.request.urlopen(token_request, timeout=self.timeout) as response:
                token = response.read().decode()
            request = urllib.request.Request(f"{self.endpoint}/latest/{path}",
                                             headers={"X-aws-ec2-metadata-token": token})
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, TimeoutError, OSError):
            return None

    def notice(self, now: float) -> Notice | None:
        """The interruption notice if there is one, else a rebalance recommendation, else ``None``."""
        body = self.get("meta-data/spot/instance-action")
        if body is not None:
            return parse_notice("interruption", body, now)
        body = self.get("meta-data/events/recommendations/rebalance")
        return parse_notice("rebalance", body, now) if body is not None else None


def systemd_stop_workers() -> None:
    """SIGTERM every worker slot through systemd (no restart afterwards): take no new job."""
    subprocess.run(["systemctl", "stop", "--no-block", "jobfleet-worker@*.service"], check=False, timeout=30)


def _job_bounds(connection: Redis, job_id: str) -> tuple[float | None, float | None]:
    try:
        job = Job.fetch(job_id, connection=connection)
    except Exception:
        return None, None
    started = job.started_at.timestamp() if job.started_at else None
    timeout = float(job.timeout) if isinstance(job.timeout, int | float) else None
    return started, timeout


def local_workers(connection: Redis, instance_id: str) -> list[WorkerInfo]:
    """Workers registered by this instance."""
    return [w for w in worker_instances(connection) if w.instance_id == instance_id]


def handle_notice(
    connection: Redis, notice: Notice, instance_id: str, *, stop_workers: Callable[[], None] = systemd_stop_workers,
    signal_worker: Callable[[int], None] = lambda pid: os.kill(pid, signal.SIGTERM),
    second_signal_delay: float = SECOND_SIGNAL_DELAY,
) -> list[str]:
    """Stop taking jobs; on an interruption also requeue the jobs that cannot finish. Returns their ids."""
    workers = local_workers(connection, instance_id)
    log_event("spot_notice", level=30, kind=notice.kind, action=notice.action, deadline=notice.deadline,
              instance_id=instance_id, workers=len(workers))
    stop_workers()
    if notice.kind != "interruption" or notice.deadline is None:
        return []
    doomed = []
    for worker in workers:
        if not worker.current_job_id or worker.pid is None:
            continue
        started, timeout = _job_bounds(connection, worker.current_job_id)
        if must_requeue(started, timeout, notice.deadline):
            doomed.append((worker, worker.current_job_id))
    if doomed:
        time.sleep(second_signal_delay)
    for worker, job_id in doomed:
        log_event("spot_requeue", level=30, worker=worker.name, job_id=job_id, instance_id=instance_id,
                  reason="cannot finish before the spot interruption")
        with contextlib.suppress(ProcessLookupError):  # it already exited (and handled its job)
            signal_worker(worker.pid or 0)
    return [job_id for _, job_id in doomed]


def watch(
    connection: Redis, imds: Imds, instance_id: str, *, poll: float = POLL_SECONDS,
    stop_workers: Callable[[], None] = systemd_stop_workers, max_polls: int | None = None,
) -> Notice | None:
    """Poll IMDS until an interruption notice is handled (rebalance: stop taking jobs, keep watching)."""
    polls = 0
    rebalanced = False
    while max_polls is None or polls < max_polls:
        polls += 1
        notice = imds.notice(time.time())
        if notice is not None and notice.kind == "interruption":
            handle_notice(connection, notice, instance_id, stop_workers=stop_workers)
            return notice
        if notice is not None and not rebalanced:
            handle_notice(connection, notice, instance_id, stop_workers=stop_workers)
            rebalanced = True
        time.sleep(poll)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worker.spot``: watch for spot notices until an interruption was handled."""
    parser = argparse.ArgumentParser(prog="python -m worker.spot", description=__doc__.splitlines()[0])
    parser.add_argument("--imds", default=IMDS_ENDPOINT, help="IMDS endpoint (tests use a local one)")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"jobfleet spot watcher: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    imds = Imds(args.imds)
    instance_id = settings.instance_id or imds.get("meta-data/instance-id")
    if not instance_id:
        print("jobfleet spot watcher: no instance id (JOBFLEET_INSTANCE_ID or IMDS)", file=sys.stderr)
        return 2
    watch(redis_connection(settings), imds, instance_id, poll=args.poll)
    return 0


if __name__ == "__main__":
    sys.exit(main())
