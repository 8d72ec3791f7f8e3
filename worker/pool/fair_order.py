"""Fair share in pool mode: the order in which a batched claim tries a worker's queues and their tenants.

A pool worker claims several jobs in one script (``claim_batch``), which takes them from the queues it is given
in the order given. With tenants, that order is: for each of the worker's queues (priority order), its tenant
queues (``q~t``) sorted by the tenant's fair-share score (decayed usage / weight, the same scores
``worker.fair_queue`` keeps; a tenant just registered by a submit sorts first), the default tenant's queue
placed by its own score. Run seconds are accounted per job with ``FairQueue.job_ended``, as in fork mode.

Caps apply as in fork mode: each tenant queue is claimed from at most ``cap - running`` jobs at a time
(``claim_batch`` counts the started registry in the same script). This is fair share per claim batch (a batch
may take several jobs of the fairest tenant), not per job, and the compute reservation is not applied: the
fork execution mode has the exact per-job script. The queues' priority order comes from the caller (strict,
or weighted and drawn per claim, then aging: ``worker.priority.aged_first``); the tenant order is cached per
queue. With no
tenants the order is the worker's queues, and nothing is read or accounted beyond one cached lookup.
"""

from __future__ import annotations

import time

from redis import Redis

from jobfleet.tenants import (
    CAPS_KEY,
    DEFAULT_TENANT,
    WEIGHTS_KEY,
    fair_key,
    split_tenant_queue,
    tenant_index_key,
    tenant_queue_name,
)

REFRESH_S = 0.25
"""How long one computed order is used (claims in between reuse it)."""
TOP = 32
"""Tenants per queue taken from the ready set (fairest first) into one order."""
INDEX_SAMPLE = 8
"""Tenant-index members added per refresh (finds tenants re-queued by RQ without a submit)."""


def merge_order(queue: str, ready: list[tuple[str, float]], default_score: float | None,
                default_waiting: bool, extra: list[str]) -> list[str]:
    """The RQ queue names of ``queue``'s tenants, fairest first (pure).

    ``ready``: (tenant, score) from the ready set; ``default_score``: the default tenant's score (None when
    unknown: it goes last); ``default_waiting``: whether ``queue`` itself holds jobs; ``extra``: other
    tenants known to the index, tried after the scored ones.
    """
    scored = [(score, tenant) for tenant, score in ready if tenant != DEFAULT_TENANT]
    if default_waiting:
        scored.append((default_score if default_score is not None else float("inf"), DEFAULT_TENANT))
    scored.sort(key=lambda pair: pair[0])
    names = [tenant_queue_name(queue, tenant) for _, tenant in scored]
    for tenant in extra:
        name = tenant_queue_name(queue, tenant)
        if name not in names:
            names.append(name)
    if queue not in names:
        names.append(queue)  # the default tenant's queue is always tried
    return names


class FairClaimOrder:
    """Computes (and caches briefly) the claim order of a pool worker's queues, fairest tenant first."""

    def __init__(self, connection: Redis, refresh_s: float = REFRESH_S) -> None:
        self.connection = connection
        self.refresh_s = refresh_s
        self._per_queue: dict[str, list[str]] = {}
        self._caps: dict[str, int] = {}
        self._until = 0.0
        self.tenants_present = False

    def names(self, base: list[str]) -> list[str]:
        """The queue names to claim from, for the worker's queues ``base`` in priority order."""
        now = time.monotonic()
        if now >= self._until or set(base) != set(self._per_queue):
            self._refresh(base, now)
        return [name for queue in base for name in self._per_queue[queue]]

    def per_queue(self, queue: str) -> list[str]:
        """The claim order of one of the worker's queues (its tenant queues, fairest first) from the last
        :meth:`names`."""
        return self._per_queue.get(queue, [queue])

    def caps(self, names: list[str]) -> list[int | None]:
        """The cap of each name's tenant (None: none), as ``claim_batch`` takes them."""
        return [self._caps.get(split_tenant_queue(name)[1]) for name in names]

    def _refresh(self, base: list[str], now: float) -> None:
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in base:
                pipe.zrange(fair_key(queue, "ready"), 0, TOP - 1, withscores=True)
                pipe.hget(fair_key(queue, "usage"), DEFAULT_TENANT)
                pipe.llen(f"rq:queue:{queue}")
                pipe.srandmember(tenant_index_key(queue), INDEX_SAMPLE)
            pipe.hget(WEIGHTS_KEY, DEFAULT_TENANT)
            pipe.hgetall(CAPS_KEY)
            replies = pipe.execute()
        weight = float(replies[-2] or 1.0) or 1.0
        caps: dict[str, int] = {}
        for tenant, cap in (replies[-1] or {}).items():
            try:
                caps[_text(tenant)] = int(cap)
            except ValueError:
                continue
        present = False
        per_queue: dict[str, list[str]] = {}
        for i, queue in enumerate(base):
            ready_raw, usage, waiting, sample = replies[4 * i: 4 * i + 4]
            ready = [(_text(t), float(s)) for t, s in ready_raw]
            extra = [_text(t) for t in sample or []]
            present = present or bool(ready) or bool(extra)
            default_score = float(usage) / weight if usage is not None else None
            per_queue[queue] = merge_order(queue, ready, default_score, bool(waiting), extra)
        self.tenants_present = present
        self._per_queue, self._caps, self._until = per_queue, caps, now + self.refresh_s


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
