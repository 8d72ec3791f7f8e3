"""REST endpoints for tenants: per-tenant fair-share state, and run-time weights and caps.

    GET  /api/tenants[?queue=Q]             one row per tenant and queue (queued, running, served, shares)
    POST /api/tenants/{tenant}/weight       {"weight": 2}      (write: needs the dashboard token)
    POST /api/tenants/{tenant}/cap          {"cap": 3 | null}  (write: needs the dashboard token)
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, field_validator
from redis import Redis

from dashboard.errors import ApiError
from jobfleet.settings import Settings
from jobfleet.tenant_admin import set_cap, set_weight, tenant_rows
from jobfleet.tenants import TENANT_NAME_PATTERN, check_tenant


class TenantRowModel(BaseModel):
    """One tenant of one queue."""

    queue: str
    tenant: str
    rq_queue: str
    queued: int
    running: int
    served_s: float
    usage_s: float
    weight: float
    cap: int | None
    share: float
    entitled: float


class WeightBody(BaseModel):
    """New weight of a tenant (a number > 0)."""

    weight: float = Field(gt=0, allow_inf_nan=False, strict=True)


class CapBody(BaseModel):
    """New cap of a tenant (a whole number >= 1, or null for none)."""

    cap: int | None = Field(default=None, ge=1, strict=True)

    @field_validator("cap", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """JSON has one number type: 3.0 is the whole number 3 (any other float stays invalid)."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class TenantSetting(BaseModel):
    """The setting now in force."""

    tenant: str
    weight: float | None = None
    cap: int | None = None


def _tenant(name: str) -> str:
    try:
        return check_tenant(name)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


TenantName = Annotated[str, Path(pattern=TENANT_NAME_PATTERN, description="tenant name: 1-64 of A-Z a-z 0-9 _ . : -")]


def tenants_router(settings: Settings, redis: Redis) -> APIRouter:
    """The tenants endpoints (``SecurityMiddleware`` guards them: token, origin check for writes)."""
    router = APIRouter(tags=["tenants"])

    @router.get("/api/tenants", response_model=list[TenantRowModel])
    def list_tenants(queue: Annotated[list[str] | None, Query()] = None) -> list[dict[str, Any]]:
        """Per tenant of each queue: queued, running, run-seconds served, weight, cap, current vs entitled share."""
        names = queue or list(settings.queues)
        unknown = [q for q in names if q not in settings.queues]
        if unknown:
            raise ApiError(404, f"unknown queue {unknown[0]!r}: expected one of {', '.join(settings.queues)}")
        return [asdict(row) for row in tenant_rows(redis, names, settings.fair_half_life)]

    @router.post("/api/tenants/{tenant}/weight", response_model=TenantSetting)
    def put_weight(tenant: TenantName, body: WeightBody) -> dict[str, Any]:
        """Set the tenant's weight; workers use it from their next dequeue."""
        name = _tenant(tenant)
        try:
            weight = set_weight(redis, name, body.weight)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return {"tenant": name, "weight": weight}

    @router.post("/api/tenants/{tenant}/cap", response_model=TenantSetting)
    def put_cap(tenant: TenantName, body: CapBody) -> dict[str, Any]:
        """Cap the tenant's running jobs per queue (null removes the cap)."""
        name = _tenant(tenant)
        try:
            cap = set_cap(redis, name, body.cap)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        return {"tenant": name, "cap": cap}

    return router
