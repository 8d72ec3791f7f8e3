"""Tenants: who a job belongs to, and where a tenant's jobs are queued.

A job without a tenant belongs to the default tenant and goes to the plain RQ queue (``rq:queue:<queue>``),
exactly as RQ would put it. A job of tenant ``t`` goes to the RQ queue ``<queue>~t`` — an ordinary RQ
queue, so ``rq info``, rq-dashboard and a plain ``rq worker 'default~acme'`` see and run it — and the
tenant is recorded in the set ``jobfleet:tenants:<queue>`` so fair workers listening on ``<queue>`` find it,
and added (if absent) to the queue's ready set of backlogged tenants, which ``worker.fair_queue`` reads.
Weights and caps live in two Redis hashes, so they change at run time without restarting workers.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_TENANT = "default"
TENANT_SEPARATOR = "~"
TENANT_INDEX_PREFIX = "jobfleet:tenants:"
TENANT_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_TENANT_NAME = re.compile(TENANT_NAME_PATTERN)


def check_tenant(tenant: Any) -> str:
    """The tenant name, or ValueError saying what is wrong with it (None means the default tenant)."""
    if tenant is None:
        return DEFAULT_TENANT
    if not isinstance(tenant, str) or not _TENANT_NAME.match(tenant):
        raise ValueError(
            f"tenant {tenant!r} must be 1-64 characters of letters, digits and _ . : - "
            f"(got {type(tenant).__name__})"
        )
    return tenant


def tenant_queue_name(queue: str, tenant: str) -> str:
    """The RQ queue that holds ``tenant``'s jobs of ``queue`` (the queue itself for the default tenant)."""
    return queue if tenant == DEFAULT_TENANT else f"{queue}{TENANT_SEPARATOR}{tenant}"


def tenant_index_key(queue: str) -> str:
    """The Redis set of tenants that have (or had) jobs in ``queue``."""
    return TENANT_INDEX_PREFIX + queue


def register_tenant(pipe: Any, queue: str, tenant: str) -> None:
    """Record on ``pipe`` that ``tenant`` has jobs in ``queue`` (nothing for the default tenant)."""
    if tenant != DEFAULT_TENANT:
        pipe.sadd(tenant_index_key(queue), tenant)
        pipe.zadd(fair_key(queue, "ready"), {tenant: NEW_TENANT_SCORE}, nx=True)


# ----- fair-share state (read and written by worker.fair_queue; keys documented there) ------------------------

FAIR_PREFIX = "jobfleet:fair:"
WEIGHTS_KEY = FAIR_PREFIX + "weights"  # hash tenant -> weight (absent: 1)
CAPS_KEY = FAIR_PREFIX + "caps"  # hash tenant -> max running jobs per queue (absent: no cap)
# a tenant just registered by a submit: the next fair dequeue gives it its real score (sorts first meanwhile)
NEW_TENANT_SCORE = float("-inf")


def fair_key(queue: str, part: str) -> str:
    """Key of one part of ``queue``'s fair-share state: ``ready`` (ZSET), ``usage``/``served``/``meta`` (hashes)."""
    return f"{FAIR_PREFIX}{queue}:{part}"


def split_tenant_queue(name: str) -> tuple[str, str]:
    """``(queue, tenant)`` of an RQ queue name: ``default~acme`` -> ``("default", "acme")``."""
    queue, sep, tenant = name.partition(TENANT_SEPARATOR)
    return (queue, tenant) if sep and tenant else (name, DEFAULT_TENANT)


def tenant_queue_names(connection: Any, queue: str) -> list[str]:
    """The RQ queues of ``queue``'s registered (non-default) tenants, sorted."""
    members = connection.smembers(tenant_index_key(queue))
    names = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
    return [tenant_queue_name(queue, t) for t in names]


def check_weight(weight: Any) -> float:
    """A tenant weight (a finite number > 0), or ValueError saying what is wrong."""
    try:
        value = float(weight)
    except (TypeError, ValueError):
        raise ValueError(f"weight {weight!r} must be a number > 0") from None
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"weight {weight!r} must be a finite number > 0")
    return value


def check_cap(cap: Any) -> int | None:
    """A tenant concurrency cap (a whole number >= 1, or None for no cap), or ValueError."""
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, int | str):
        raise ValueError(f"cap {cap!r} must be a whole number >= 1 (or none)")
    try:
        value = int(cap)
    except ValueError:
        raise ValueError(f"cap {cap!r} must be a whole number >= 1 (or none)") from None
    if value < 1:
        raise ValueError(f"cap {cap!r} must be >= 1 (use none to remove the cap)")
    return value
