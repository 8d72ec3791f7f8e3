"""``ReliableQueue``: RQ's ``Queue`` whose ``dequeue_any`` never leaves a job only in a worker's memory.

RQ moves a job atomically into its queue's intermediate list (``rq:queue:<name>:intermediate``) only when a
worker listens on ONE queue; with several it uses BLPOP, so a kill -9 between the pop and the started-registry
write loses the job. Here every dequeue is an atomic move into the intermediate list of the job's queue:

* one Lua script LMOVEs from the first non-empty queue, in priority order (one round trip);
* when all are empty, BLMOVE blocks on the FIRST (highest-priority) queue for ``poll_interval`` seconds,
  then the script runs again, so a high-priority job wakes the worker at once and a lower one within the poll.

``JobfleetWorker`` then takes the job out of the intermediate list in the same transaction that adds it to the
StartedJobRegistry; ``worker.recovery`` puts jobs stranded in an intermediate list back on their queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job

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

        ``timeout`` None: do not block (None when all are empty). Otherwise block up to ``timeout`` seconds
        (polling the lower queues every ``poll_interval``) and raise ``DequeueTimeout`` when nothing came.
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
                first = queue_keys[0]
                wait: Any = min(cls.poll_interval, remaining)  # fractional seconds: fine on Redis >= 6
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
