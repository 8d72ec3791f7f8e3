"""The backend interface: where capacity comes from (one small Protocol, one file per implementation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from autoscaler.policy import InstanceState
from jobfleet.worker_registry import WorkerInfo


class Backend(Protocol):
    """List the fleet, grow it, drain chosen idle instances, release resources on exit."""

    def fleet(self) -> list[InstanceState]:
        """Every instance (booting and ready, not draining) with its busy/idle worker slots."""
        ...

    def desired(self) -> int:
        """The provider's current desired size."""
        ...

    def set_desired(self, desired: int) -> None:
        """Grow the fleet to ``desired`` (shrinking happens only through :meth:`drain`)."""
        ...

    def drain(self, instance_ids: Sequence[str]) -> list[str]:
        """Warm-stop the workers of these idle instances and remove them; returns the ones acted on."""
        ...

    def close(self) -> None:
        """Release resources when the daemon exits (the local backend stops its workers warm)."""
        ...


class WarmPoolBackend(Protocol):
    """A backend whose provider keeps a pool of stopped, pre-installed instances (the AWS ASG warm pool)."""

    def warm_pool_ready(self) -> int:
        """Stopped pool instances ready for a warm start."""
        ...

    def set_warm_pool(self, size: int) -> None:
        """Keep ``size`` instances prepared beyond the ones in service (PutWarmPool)."""
        ...


@dataclass(frozen=True)
class Machine:
    """An instance as the provider knows it (before looking at its workers)."""

    id: str
    launched_at: float
    running: bool = True  # False: pending/booting at the provider


def instances_from_workers(
    machines: Iterable[Machine], workers: Sequence[WorkerInfo], slots: int, now: float
) -> list[InstanceState]:
    """Join machines with their registered workers: ready once a worker is up, busy/idle from RQ state."""
    by_instance: dict[str, list[WorkerInfo]] = {}
    for w in workers:
        if w.instance_id:
            by_instance.setdefault(w.instance_id, []).append(w)
    out = []
    for m in machines:
        mine = by_instance.get(m.id, [])
        out.append(instance_state(m.id, m.launched_at, max(slots, len(mine)), m.running and bool(mine), mine, now))
    return out


def instance_state(
    instance_id: str, launched_at: float, slots: int, ready: bool, workers: Sequence[WorkerInfo], now: float
) -> InstanceState:
    """One instance from its workers: busy slots, and idle since the last worker went idle (ready, none busy)."""
    busy = sum(1 for w in workers if w.busy)
    idle_since = None
    if ready and busy == 0:
        stamps = [w.state_since for w in workers if w.state_since is not None]
        idle_since = max(stamps) if stamps else now
    return InstanceState(
        id=instance_id, slots=slots, busy=busy, launched_at=launched_at, ready=ready, idle_since=idle_since
    )
