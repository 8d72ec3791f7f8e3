"""Read-only view of the live workers, as the autoscaler and dashboard need it (one pipeline per call)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq.utils import utcparse
from rq.worker_registration import REDIS_WORKER_KEYS

WORKER_PREFIX = "rq:worker:"


@dataclass(frozen=True)
class WorkerInfo:
    """One registered worker process."""

    name: str
    instance_id: str | None
    state: str
    state_since: float | None
    current_job_id: str | None
    queues: tuple[str, ...]
    last_heartbeat: datetime | None
    pid: int | None

    @property
    def busy(self) -> bool:
        """True while the worker runs a job."""
        return self.state == "busy"


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def worker_instances(connection: Redis) -> list[WorkerInfo]:
    """Every live worker (registered, hash present, not dead), sorted by name."""
    keys = sorted(_text(k) or "" for k in connection.smembers(REDIS_WORKER_KEYS))
    if not keys:
        return []
    pipe = connection.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
        pipe.smembers(f"{key}:executions")
    replies = pipe.execute()
    workers = []
    for i, key in enumerate(keys):
        raw, executions = replies[2 * i], replies[2 * i + 1]
        data = {_text(k): _text(v) for k, v in raw.items()}
        if not data or data.get("death"):
            continue
        current = sorted(_text(e) or "" for e in executions)
        heartbeat = data.get("last_heartbeat")
        state_since = data.get("state_since")
        pid = data.get("pid")
        workers.append(
            WorkerInfo(
                name=key[len(WORKER_PREFIX):],
                instance_id=data.get("instance_id"),
                state=data.get("state") or "?",
                state_since=float(state_since) if state_since else None,
                current_job_id=current[0].rsplit(":", 1)[0] if current else None,
                queues=tuple(q for q in (data.get("queues") or "").split(",") if q),
                last_heartbeat=utcparse(heartbeat) if heartbeat else None,
                pid=int(pid) if pid else None,
            )
        )
    return workers
