"""Batched Redis writes of a pool worker, in RQ's data model: successes, releases, heartbeats.

Each call is one round trip (a Lua script in ``worker/scripts`` or one pipeline) for a whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from redis import Redis
from rq.utils import utcformat

from worker.reliable_queue import ClaimedJob, run_script


@dataclass(frozen=True)
class Success:
    """One job that returned, to be recorded."""

    claimed: ClaimedJob
    return_value: str  # base64 serialized, "" for None
    started: float
    ended: float
    result_ttl: int
    has_dependencies: bool


def _iso(epoch: float) -> str:
    from datetime import datetime

    return utcformat(datetime.fromtimestamp(epoch, tz=UTC))


def record_successes(connection: Redis, worker_name: str, worker_key: str, executions_key: str,
                     successes: Sequence[Success], now: float) -> tuple[list[str], list[str]]:
    """Record every success at once (``finish_batch.lua``): (ids not recorded, ids with dependents)."""
    args: list[object] = [worker_name, len(successes), sum(s.ended - s.started for s in successes), now]
    for s in successes:
        args += [s.claimed.job_id, s.claimed.execution_id, s.claimed.queue, _iso(s.started), _iso(s.ended),
                 s.started, s.ended, s.result_ttl, s.return_value, "1" if s.has_dependencies else "0"]
    lost, with_dependents = run_script(connection, "finish_batch.lua", [worker_key, executions_key], args)
    text = [(v.decode() if isinstance(v, bytes) else str(v)) for v in lost]
    deps = [(v.decode() if isinstance(v, bytes) else str(v)) for v in with_dependents]
    return text, deps


def release(connection: Redis, executions_key: str, jobs: Sequence[ClaimedJob]) -> int:
    """Give never-started claimed jobs back to the front of their queues, in order (``release_batch.lua``)."""
    if not jobs:
        return 0
    args: list[object] = [len(jobs)]
    for job in jobs:
        args += [job.job_id, job.execution_id, job.queue]
    return int(run_script(connection, "release_batch.lua", [executions_key], args))


def heartbeat_executions(pipe: object, jobs: Sequence[ClaimedJob], ttl: int, now: float) -> None:
    """Queue on ``pipe`` the heartbeat of every claimed job (started-registry score, execution hash)."""
    for job in jobs:
        member = job.composite_key
        pipe.zadd(f"rq:wip:{job.queue}", {member: now + ttl}, xx=True)  # type: ignore[attr-defined]
        pipe.hset(f"rq:execution:{member}", "last_heartbeat", now)  # type: ignore[attr-defined]
        pipe.expire(f"rq:execution:{member}", ttl)  # type: ignore[attr-defined]
