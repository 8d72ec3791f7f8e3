"""Per-queue target p95 waits (``JOBFLEET_TARGET_WAIT``): ``30``, ``high=5,default=30,low=300`` or ``high=5,60``.

A bare number is the target of every queue not named; ``name=seconds`` sets one queue. ``0`` means "start
every job on arrival" (the autoscaler keeps an idle slot ready, at the least cost that achieves it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TARGET_S = 86400.0


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number of seconds, got {text!r}")
    if not 0 <= value <= MAX_TARGET_S:
        raise ValueError(f"{where}: must be between 0 and {MAX_TARGET_S:g} seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class TargetWaits:
    """Target p95 wait per queue, with a fallback for queues not named (None: every queue must be named)."""

    per_queue: tuple[tuple[str, float], ...] = ()
    fallback: float | None = 30.0

    @classmethod
    def parse(cls, raw: str) -> TargetWaits:
        """Parse ``30`` / ``high=5,default=30`` / ``high=5,60``; ValueError says which part is wrong."""
        parts = [p.strip() for p in raw.split(",")]
        if not raw.strip() or any(not p for p in parts):
            raise ValueError("expected a number of seconds or a comma-separated list like high=5,default=30,low=300")
        per_queue: dict[str, float] = {}
        fallback: float | None = None
        for part in parts:
            name, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                if fallback is not None:
                    raise ValueError(f"more than one bare number ({fallback:g} and {part}): give one fallback target")
                fallback = _seconds(part, "fallback target")
                continue
            if name == "*":
                if fallback is not None:
                    raise ValueError("more than one fallback target ('*=' or a bare number)")
                fallback = _seconds(value, "'*'")
                continue
            if not _NAME.match(name):
                raise ValueError(f"queue name {name!r} may only hold letters, digits and _ . : - (1-64 chars)")
            if name in per_queue:
                raise ValueError(f"queue {name!r} is given twice")
            per_queue[name] = _seconds(value, f"queue {name!r}")
        return cls(tuple(per_queue.items()), fallback)

    def for_queue(self, name: str) -> float:
        """The target of ``name`` (KeyError when it is not named and there is no fallback)."""
        for queue, target in self.per_queue:
            if queue == name:
                return target
        if self.fallback is None:
            raise KeyError(f"no target wait for queue {name!r} (and no fallback)")
        return self.fallback

    def missing(self, queues: Iterable[str]) -> list[str]:
        """Queues among ``queues`` that have no target."""
        if self.fallback is not None:
            return []
        named = {q for q, _ in self.per_queue}
        return [q for q in queues if q not in named]

    def loosest(self) -> float:
        """The largest target (a single threshold for alerts on the oldest job's age)."""
        return max([t for _, t in self.per_queue] + ([self.fallback] if self.fallback is not None else []))

    def __str__(self) -> str:
        items = [f"{q}={t:g}" for q, t in self.per_queue]
        if self.fallback is not None:
            items.append(f"{self.fallback:g}")
        return ",".join(items)
