"""``ReliableQueue``: RQ's ``Queue`` whose ``dequeue_any`` never leaves a job only in a worker's memory.

RQ moves a job atomically into its queue's intermediate list (``rq:queue:<name>:intermediate``) only when a
worker listens on ONE queue; with several it uses BLPOP, so a kill -9 between the pop and the started-registry
write loses the job. Here every dequeue is an atomic move into the intermediate list of the job's queue:

* one Lua script LMOVEs from the first non-empty queue, in priority order (one round trip);
* when all are empty, the worker waits for a change to any of its queues, pushed by Redis client-side
  tracking in broadcast mode (``CLIENT TRACKING ON BCAST PREFIX rq:queue:<name>`` on a RESP3 connection,
  Redis >= 6, no server configuration needed), for at most ``poll_interval`` seconds, then runs the script
  again: a job on any queue wakes an idle worker at once, whichever client enqueued it;
* where RESP3 or tracking is refused (old server, ACL), BLMOVE blocks on the FIRST (highest-priority) queue for
  ``poll_interval`` seconds instead, so a lower-priority job waits up to one poll.

``JobfleetWorker`` then takes the job out of the intermediate list in the same transaction that adds it to the
StartedJobRegistry; ``worker.recovery`` puts jobs stranded in an intermediate list back on their queue.

Pool mode claims in batches instead: ``claim_batch`` runs ``scripts/claim_batch.lua``, which pops up to K jobs
and registers each as started in the same atomic step (so no intermediate list is needed: a claimed job is
always in a StartedJobRegistry, where recovery finds it). Its interface — queue names in priority order, a
limit, the worker name; ``ClaimedJob`` records back — is all a different pick order (per tenant, say) has to
keep; the script is the one place that decides which jobs leave which queue.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.utils import now as utcnow
from rq.utils import utcformat

# KEYS: queue1, intermediate1, queue2, intermediate2, ... (priority order). Returns {queue_key, job_id} or false.
_MOVE_FIRST = """
for i = 1, #KEYS, 2 do
  local job_id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
  if job_id then
    return {KEYS[i], job_id}
  end
end
return false
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueWaker:
    """Wakes an idle dequeue when any of ``queue_keys`` changes (client-side tracking, broadcast mode).

    One dedicated RESP3 connection with the client's own parameters (TLS, AUTH, timeouts) turns tracking
    on for the queue keys; the server then pushes an invalidation to it whenever one of them is written.
    Raises ``ResponseError`` when the server refuses RESP3 or tracking, ``RedisError`` when unreachable.
    """

    def __init__(self, connection: Redis, queue_keys: list[str]) -> None:
        pool = connection.connection_pool
        kwargs = dict(pool.connection_kwargs, health_check_interval=0, protocol=3)
        self.pid = os.getpid()
        self.conn: AbstractConnection = pool.connection_class(**kwargs)
        try:
            # BCAST prefixes may not overlap: a queue key that extends another is covered by the shorter one
            prefixes = [k for k in queue_keys if not any(k != o and k.startswith(o) for o in queue_keys)]
            args: list[Any] = ["CLIENT", "TRACKING", "ON", "BCAST"]
            for key in dict.fromkeys(prefixes):
                args += ["PREFIX", key]
            self.conn.send_command(*args)
            self.conn.read_response()
        except BaseException:
            self.close()
            raise

    def wait(self, seconds: float) -> bool:
        """Block up to ``seconds`` for a change to a listened queue; True if one came (pending ones consumed)."""
        if not self.conn.can_read(timeout=seconds):
            return False
        while self.conn.can_read(timeout=0):
            self.conn.read_response(push_request=True)
        return True

    def close(self) -> None:
        """Drop the connection (tracking ends with it)."""
        with contextlib.suppress(RedisError, OSError):
            self.conn.disconnect()


# one waker per connection pool and queue list; pools that refused tracking map to None (use BLMOVE)
_wakers: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], QueueWaker | None]] = weakref.WeakKeyDictionary()


def _waker(connection: Redis, queue_keys: list[str]) -> QueueWaker | None:
    per_pool = _wakers.setdefault(connection.connection_pool, {})
    key = tuple(queue_keys)
    if key in per_pool:
        known = per_pool[key]
        if known is None or known.pid == os.getpid():  # one inherited over fork is not ours to use
            return known
    try:
        waker: QueueWaker | None = QueueWaker(connection, queue_keys)
    except ResponseError:
        waker = None
    per_pool[key] = waker
    return waker


def _drop_waker(connection: Redis, queue_keys: list[str]) -> None:
    waker = _wakers.get(connection.connection_pool, {}).pop(tuple(queue_keys), None)
    if waker is not None:
        waker.close()


class ReliableQueue(Queue):
    """A ``Queue`` whose multi-queue dequeue moves each job atomically into its intermediate list."""

    poll_interval: float = 0.25  # seconds a blocking dequeue waits on the first queue between scans

    @classmethod
    def move_first(cls, connection: Redis, queue_keys: list[str]) -> tuple[str, str] | None:
        """LMOVE one job from the first non-empty queue into its intermediate list; ``(queue_key, job_id)``."""
        keys: list[str] = []
        for key in queue_keys:
            keys += [key, IntermediateQueue.get_intermediate_queue_key(key)]
        result = connection.eval(_MOVE_FIRST, len(keys), *keys)
        if not result:
            return None
        return _text(result[0]), _text(result[1])

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | float | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        """The job at the front of the first non-empty queue, moved into that queue's intermediate list.

        ``timeout`` None: do not block (None when all are empty). Otherwise wait up to ``timeout`` seconds
        (woken by a change to any queue, rescanning at least every ``poll_interval``) and raise
        ``DequeueTimeout`` when nothing came.
        """
        queue_keys = [queue.key for queue in queues]
        if not queue_keys:
            raise ValueError("dequeue_any needs at least one queue")
        if timeout is not None and timeout <= 0:
            raise ValueError("RQ does not support indefinite timeouts. Please pick a timeout value > 0")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            moved = cls.move_first(connection, queue_keys)
            if moved is None and deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DequeueTimeout(timeout, queue_keys)
                wait: Any = min(cls.poll_interval, remaining)  # fractional seconds: fine on Redis >= 6
                waker = _waker(connection, queue_keys)
                if waker is not None:
                    try:
                        waker.wait(wait)
                    except (RedisError, OSError):
                        _drop_waker(connection, queue_keys)  # rebuilt on the next wait once Redis is back
                    continue
                first = queue_keys[0]
                job_id = connection.blmove(first, IntermediateQueue.get_intermediate_queue_key(first), wait)
                moved = (first, _text(job_id)) if job_id is not None else None
                if moved is None:
                    continue
            if moved is None:
                return None
            queue_key, job_id = moved
            fetched = cls._fetch_dequeued_job(
                connection, queue_key, job_id, job_class=job_class, serializer=serializer,
                death_penalty_class=death_penalty_class,
            )
            if fetched is None:  # the job hash is gone: nothing to run, do not leave its id behind
                connection.lrem(IntermediateQueue.get_intermediate_queue_key(queue_key), 1, job_id)
                continue
            return fetched


# ----- batched claim (pool mode) -------------------------------------------------------------------------------

_SCRIPTS = Path(__file__).resolve().parent / "scripts"


@dataclass(frozen=True)
class ClaimDefaults:
    """Values written into a claimed job's hash when the job has none of its own."""

    timeout: int
    retries_left: int | None = None
    retry_intervals: str = "[]"


@dataclass
class ClaimedJob:
    """One job claimed by ``claim_batch``: already in its queue's StartedJobRegistry under ``execution_id``.

    ``blob`` is the job's hash after the claim, encoded by the script (``decode_fields`` reads it); the other
    fields are the few values a worker needs without decoding it.
    """

    queue: str
    job_id: str
    execution_id: str
    timeout: int
    result_ttl: int
    attempt: int
    has_dependencies: bool
    full_path: bool
    blob: bytes

    @property
    def composite_key(self) -> str:
        """The started-registry member (and execution hash suffix): ``<job id>:<execution id>``."""
        return f"{self.job_id}:{self.execution_id}"

    @property
    def fields(self) -> dict[bytes, bytes]:
        """The job hash as claimed (field -> value)."""
        return decode_fields(self.blob)


def decode_fields(blob: bytes) -> dict[bytes, bytes]:
    """Decode the claim script's ``<length>:<bytes>`` sequence of alternating fields and values (later wins)."""
    items = []
    pos = 0
    end = len(blob)
    find = blob.find
    while pos < end:
        colon = find(b":", pos)
        start = colon + 1
        stop = start + int(blob[pos:colon])
        items.append(blob[start:stop])
        pos = stop
    return dict(zip(items[::2], items[1::2], strict=True))


@functools.cache
def load_script(name: str) -> str:
    """Source of one of the Lua scripts in ``worker/scripts``."""
    return (_SCRIPTS / name).read_text()


_registered: dict[str, Script] = {}


def run_script(connection: Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA one of ``worker/scripts/*.lua`` (loaded on first use, re-loaded after a NOSCRIPT)."""
    script = _registered.get(name)
    if script is None:
        script = _registered[name] = connection.register_script(load_script(name))
    return script(keys=keys, args=args, client=connection)


def claim_batch(
    connection: Redis, queue_names: list[str], worker_name: str, limit: int, heartbeat_ttl: int,
    defaults: ClaimDefaults, default_result_ttl: int, caps: list[int | None] | None = None,
) -> list[ClaimedJob]:
    """Claim up to ``limit`` jobs from ``queue_names`` (priority order) in ONE round trip.

    ``caps`` (aligned with ``queue_names``; None = no cap) bounds the jobs of a queue running at once: its
    started registry plus its intermediate list (tenant caps, see ``worker.fair_queue``).

    Each claimed job is, atomically, out of its queue and registered as started by ``worker_name`` (status,
    execution hash, StartedJobRegistry member scored ``now + heartbeat_ttl``, worker execution set): see
    ``worker/scripts/claim_batch.lua``. Jobs whose hash is gone are dropped. Never blocks.
    """
    if limit < 1 or not queue_names:
        return []
    stamp = utcnow()
    keys = [f"{Queue.redis_queue_namespace_prefix}{name}" for name in queue_names]
    keys += [f"rq:wip:{name}" for name in queue_names]
    keys.append(f"rq:worker:{worker_name}:executions")
    args: list[Any] = [
        limit, worker_name, utcformat(stamp), stamp.timestamp(), stamp.timestamp() + heartbeat_ttl, heartbeat_ttl,
        uuid.uuid4().hex[:20], defaults.timeout,
        "" if defaults.retries_left is None else defaults.retries_left, defaults.retry_intervals,
    ]
    args.append(default_result_ttl)
    if caps is not None and any(cap is not None for cap in caps):
        args += ["" if cap is None else cap for cap in caps]
    reply = run_script(connection, "claim_batch.lua", keys, args)
    claimed = []
    for i in range(0, len(reply), 2):
        queue_index, job_id, execution_id, timeout, result_ttl, attempt, deps, full = reply[i].split(b"|")
        claimed.append(ClaimedJob(
            queue_names[int(queue_index) - 1], job_id.decode(), execution_id.decode(), int(timeout),
            int(result_ttl), int(attempt), deps == b"1", full == b"1", reply[i + 1],
        ))
    return claimed
