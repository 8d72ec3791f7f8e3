"""How many stopped instances the ASG warm pool should hold: a pure function of the recent burst history.

The ``k``-th pooled instance is used only by bursts that launch at least ``k`` instances. Each time it is,
it saves its slots the difference between a cold boot and a warm start, for every job it would have run
in that gap (at least one per slot): ``slots · max(1, gap / S) · gap`` job-seconds of waiting. It costs
``stopped_cost_ratio`` instance-hours per hour (its EBS volume). With ``f_k`` the bursts per hour of at
least ``k`` instances and ``W`` the instance-hours one job-hour of waiting is worth, the pool holds the
largest ``k`` with ``f_k · slots · max(1, gap/S) · gap/3600 · W >= stopped_cost_ratio`` (capped at
``max_size``). Until ``learn_s`` of history has been seen, the pool keeps ``initial``.

The size is the ASG's prepared capacity (``MaxGroupPreparedCapacity``: instances in service plus stopped
ones), so the pool empties into a burst without being refilled behind it and fills again from the
instances scaled in after it (``ReuseOnScaleIn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmPoolConfig:
    """Knobs of the warm-pool sizing (see the module docstring)."""

    max_size: int = 10
    initial: int = 0
    stopped_cost_ratio: float = 0.105  # 20 GB gp3 at $0.08/GB-month over a t3.small at $0.0208/h
    wait_cost: float = 10.0  # instance-hours one job-hour of waiting is worth
    learn_s: float = 3600.0
    min_burst: int = 2  # scale-outs smaller than this are not bursts

    def __post_init__(self) -> None:
        problems = [f"{name}={getattr(self, name)} must be >= 0" for name in
                    ("max_size", "initial", "stopped_cost_ratio", "wait_cost", "learn_s") if getattr(self, name) < 0]
        if self.min_burst < 1:
            problems.append(f"min_burst={self.min_burst} must be >= 1")
        if problems:
            raise ValueError("bad warm pool config: " + "; ".join(problems))


def warm_pool_size(
    bursts: Sequence[int], history_s: float, cfg: WarmPoolConfig, *, slots: int, service_s: float,
    cold_boot_s: float, warm_boot_s: float,
) -> int:
    """The pool size for the burst sizes (instances) seen over ``history_s`` seconds of history."""
    if history_s < cfg.learn_s:
        return min(cfg.initial, cfg.max_size)
    gap = max(0.0, cold_boot_s - warm_boot_s)
    if gap <= 0 or not bursts:
        return 0
    saved_h = slots * max(1.0, gap / max(service_s, 1e-3)) * gap / 3600.0
    sizes = sorted((b for b in bursts if b >= cfg.min_burst), reverse=True)
    best = 0
    for k in range(1, min(cfg.max_size, sizes[0] if sizes else 0) + 1):
        per_hour = sum(1 for b in sizes if b >= k) / max(1.0, history_s / 3600.0)  # at most once an hour so far
        if per_hour * saved_h * cfg.wait_cost >= cfg.stopped_cost_ratio:
            best = k
        else:
            break
    return best
