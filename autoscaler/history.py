"""The arrival history behind the seasonal forecast, kept in Redis so a restarted daemon does not relearn it.

One hash ``jobfleet:autoscaler:arrivals`` holds ``<queue>|first`` (unix s the history starts) and
``<queue>|<bin>`` (arrivals counted in that minute bin) fields. The leader writes the current bin of every
queue each tick (one pipelined HSET, idempotent: the value is its own count so far) and trims bins older
than the forecast's horizon once an hour; a daemon loads it at start. The hash expires when no daemon has
written for ``ttl_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis

from autoscaler.window import SeasonalForecast

HISTORY_KEY = "jobfleet:autoscaler:arrivals"


def _split(field: bytes | str) -> tuple[str, str]:
    """``(queue, "first" or bin)`` of a hash field ``<queue>|<tail>``."""
    name, _, tail = (field.decode() if isinstance(field, bytes) else str(field)).rpartition("|")
    return name, tail


class HistoryStore:
    """Loads and saves :class:`SeasonalForecast` bins of the observed queues."""

    def __init__(self, connection: Redis, key: str = HISTORY_KEY, ttl_s: float = 9 * 86400.0,
                 trim_every_s: float = 3600.0) -> None:
        self.connection = connection
        self.key = key
        self.ttl_s = ttl_s
        self.trim_every_s = trim_every_s
        self._trimmed_at = -float("inf")

    def load(self, forecasts: Mapping[str, SeasonalForecast], now: float) -> int:
        """Restore every queue's history from Redis; returns how many bins were loaded."""
        raw = self.connection.hgetall(self.key)
        firsts: dict[str, float] = {}
        bins: dict[str, dict[int, float]] = {}
        for field, value in raw.items():
            name, tail = _split(field)
            try:
                number = float(value)
                if tail == "first":
                    firsts[name] = number
                else:
                    bins.setdefault(name, {})[int(tail)] = number
            except ValueError:
                continue  # a field this version does not write
        loaded = 0
        for name, forecast in forecasts.items():
            if name in firsts:
                forecast.restore(firsts[name], bins.get(name, {}), now)
                loaded += len(bins.get(name, {}))
        return loaded

    def save(self, forecasts: Mapping[str, SeasonalForecast], now: float) -> None:
        """Write each queue's current bin (and history start); trim old bins once per ``trim_every_s``."""
        mapping: dict[Any, float] = {}  # redis-py types its keys as a union (an invariant dict key)
        for name, forecast in forecasts.items():
            first, b, count = forecast.snapshot(now)
            if first is None:
                continue
            mapping[f"{name}|first"] = first
            mapping[f"{name}|{b}"] = count
        if not mapping:
            return
        pipe = self.connection.pipeline(transaction=False)
        pipe.hset(self.key, mapping=mapping)
        pipe.expire(self.key, int(self.ttl_s))
        pipe.execute()
        if now - self._trimmed_at >= self.trim_every_s:
            self._trimmed_at = now
            self.trim(forecasts, now)

    def trim(self, forecasts: Mapping[str, SeasonalForecast], now: float) -> None:
        """Delete bins older than each forecast keeps (``periods + 1`` periods)."""
        old = []
        for field in self.connection.hkeys(self.key):
            name, tail = _split(field)
            forecast = forecasts.get(name)
            if forecast is None or not tail.lstrip("-").isdigit():
                continue
            if int(tail) < int((now - (forecast.periods + 1) * forecast.period_s) // forecast.bin_s):
                old.append(field)
        if old:
            self.connection.hdel(self.key, *old)
