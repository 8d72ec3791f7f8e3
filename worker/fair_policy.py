"""Fair-share policy as pure functions: the rule ``worker.fair_queue``'s Lua script applies, and the share
arithmetic the metrics, the dashboard and the benchmark report.

A tenant's *usage* is the run-seconds its jobs consumed, each decayed by ``2 ** (-age / half_life)``; its
*score* is usage divided by its weight. The next job comes from the eligible tenant with the lowest score
(ties: the lower name, as in a Redis sorted set). Eligible: it has a queued job, it is below its cap, and —
while the queue's unreserved slots are all busy — it has no running job (compute reservation).

Scores are stored time-inflated: a charge made at time ``t`` is stored as ``run_s * 2 ** ((t - t0) / h)``.
Every stored value then shrinks by the same factor as time passes, so their ORDER never changes and the
pick needs no rewrite of the sorted set; ``t0`` is moved forward now and then (rebase) to keep the
numbers finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

REBASE_EXPONENT = 32.0  # rebase once stored values are inflated by 2**32


@dataclass(frozen=True)
class TenantState:
    """What the pick knows about one tenant of a queue."""

    name: str
    queued: int
    running: int = 0
    usage: float = 0.0  # run-seconds in any common (inflated or decayed) base
    weight: float = 1.0
    cap: int | None = None

    @property
    def score(self) -> float:
        """Usage per unit of weight: the lower, the further below its entitled share."""
        return fair_score(self.usage, self.weight)


def fair_score(usage: float, weight: float) -> float:
    """Usage divided by weight (a missing or bad weight counts as 1)."""
    return usage / (weight if weight > 0 else 1.0)


def inflation(now: float, t0: float, half_life: float) -> float:
    """Factor applied to a charge made at ``now`` in the base ``t0`` (1 when usage never decays)."""
    return 2.0 ** ((now - t0) / half_life) if half_life > 0 else 1.0


def decayed(stored: float, now: float, t0: float, half_life: float) -> float:
    """Run-seconds worth of a stored (inflated) usage as seen at ``now``."""
    return stored / inflation(now, t0, half_life)


def needs_rebase(now: float, t0: float, half_life: float) -> bool:
    """True once stored values are inflated enough that the base should move to ``now``."""
    return half_life > 0 and (now - t0) / half_life > REBASE_EXPONENT


def reserved_slots(slots: int, fraction: float) -> int:
    """Slots held back for tenants without a running job: ``fraction`` of ``slots``, rounded to nearest."""
    return math.floor(slots * fraction + 0.5) if fraction > 0 else 0


def reservation_applies(slots: int, busy_others: int, fraction: float) -> bool:
    """True when taking one more slot would eat into the reserved ones (busy_others excludes the caller)."""
    return fraction > 0 and busy_others + 1 > slots - reserved_slots(slots, fraction)


def eligible(tenant: TenantState, restricted: bool) -> bool:
    """A tenant may be served: it has a queued job, is below its cap, and (when restricted) runs nothing."""
    if tenant.queued <= 0:
        return False
    if tenant.cap is not None and tenant.running >= tenant.cap:
        return False
    return not (restricted and tenant.running > 0)


def choose_tenant(tenants: Iterable[TenantState], restricted: bool = False) -> str | None:
    """Name of the eligible tenant with the lowest score (ties: lowest name), or None."""
    best = min(((t.score, t.name) for t in tenants if eligible(t, restricted)), default=None)
    return best[1] if best else None


# ----- shares ---------------------------------------------------------------------------------------------


def normalised(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` scaled to sum to 1 (all zeros when they sum to nothing)."""
    total = sum(max(0.0, v) for v in values.values())
    return {k: (max(0.0, v) / total if total > 0 else 0.0) for k, v in values.items()}


def entitled_shares(weights: Mapping[str, float], active: Iterable[str]) -> dict[str, float]:
    """Each tenant's entitled share: its weight over the weights of the ACTIVE tenants (others get 0)."""
    live = set(active)
    return normalised({t: (w if t in live else 0.0) for t, w in weights.items()})


def max_share_deviation(observed: Mapping[str, float], entitled: Mapping[str, float]) -> float:
    """Largest ``|observed - entitled| / entitled`` over tenants with an entitlement."""
    gaps = [abs(observed.get(t, 0.0) - e) / e for t, e in entitled.items() if e > 0]
    return max(gaps, default=0.0)


def jain_index(observed: Mapping[str, float], entitled: Mapping[str, float]) -> float:
    """Jain's fairness index of the observed/entitled ratios: 1 = exactly fair, 1/n = one tenant got all."""
    ratios: Sequence[float] = [observed.get(t, 0.0) / e for t, e in entitled.items() if e > 0]
    if not ratios:
        return 1.0
    square_sum = sum(r * r for r in ratios)
    return (sum(ratios) ** 2) / (len(ratios) * square_sum) if square_sum > 0 else 0.0
