"""Tenants: who a job belongs to, and where a tenant's jobs are queued.

A job without a tenant belongs to the default tenant and goes to the plain RQ queue (``rq:queue:<queue>``),
exactly as RQ would put it. A job of tenant ``t`` goes to the RQ queue ``<queue>~t`` — an ordinary RQ
queue, so ``rq info``, rq-dashboard and a plain ``rq worker 'default~acme'`` see and run it — and the
tenant is recorded in the set ``jobfleet:tenants:<queue>`` so fair workers listening on ``<queue>`` find it.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_TENANT = "default"
TENANT_SEPARATOR = "~"
TENANT_INDEX_PREFIX = "jobfleet:tenants:"
_TENANT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
