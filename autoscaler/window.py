"""Small rolling windows the daemon (and the simulator) keep between decisions: rates and idle floor."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RECENT_RATE_S = 60.0  # the short sub-window whose arrival rate caps the long one (a finished burst drops out fast)


@dataclass
class RateWindow:
    """Arrival and completion rates of one queue from cumulative counters sampled over ``seconds``.

    ``seen`` counts every job that ever entered the queue (queued + started + finished + failed),
    ``done`` every job that ended; both are clamped to be monotonic (registries expire entries).
    ``running`` (jobs running now) is integrated over time into busy slot-seconds, so the mean service
    time over the window is Little's law: busy slot-seconds / completions (:meth:`service_s`).
    """

    seconds: float = 300.0
    min_completions: int = 5
    _samples: deque[tuple[float, float, float, float]] = field(default_factory=deque)
    _seen: float = 0.0
    _done: float = 0.0
    _busy: float = 0.0
    _last_raw: tuple[float, float, float, float] | None = None  # t, seen, done, running

    def add(self, now: float, seen: float, done: float, running: float = 0.0) -> None:
        """Record the raw counters observed at ``now``."""
        if self._last_raw is not None:
            t0, seen0, done0, running0 = self._last_raw
            self._seen += max(0.0, seen - seen0)
            self._done += max(0.0, done - done0)
            self._busy += (running0 + running) / 2 * max(0.0, now - t0)
        self._last_raw = (now, seen, done, running)
        self._samples.append((now, self._seen, self._done, self._busy))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.seconds:
            self._samples.popleft()

    def rates(self) -> tuple[float, float]:
        """(arrivals/s, completions/s) over the window; zeros until two samples exist."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        t0, s0, d0, _ = self._samples[0]
        t1, s1, d1, _ = self._samples[-1]
        span = max(t1 - t0, 1e-6)
        return (s1 - s0) / span, (d1 - d0) / span

    def recent(self, seconds: float) -> tuple[float, float]:
        """(arrivals/s, seconds covered) over about the last ``seconds`` of the window; (0, 0) until two samples."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        t1, s1, _, _ = self._samples[-1]
        t0, s0, _, _ = next(x for x in self._samples if x[0] >= t1 - seconds or x is self._samples[-2])
        span = max(t1 - t0, 1e-6)
        return (s1 - s0) / span, span

    def span_s(self) -> float:
        """Seconds the window covers so far."""
        return self._samples[-1][0] - self._samples[0][0] if len(self._samples) >= 2 else 0.0

    def service_s(self) -> float | None:
        """Mean service time over the window (busy slot-seconds / completions); None with too few completions."""
        if len(self._samples) < 2:
            return None
        done = self._samples[-1][2] - self._samples[0][2]
        if done < self.min_completions:
            return None
        return max(1e-3, (self._samples[-1][3] - self._samples[0][3]) / done)


@dataclass
class IdleFloor:
    """Fewest idle slots seen over the last ``seconds`` (None until the window is full)."""

    seconds: float
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _first: float | None = None

    def add(self, now: float, idle_slots: int) -> None:
        """Record the idle slots observed at ``now``."""
        if self._first is None:
            self._first = now
        self._samples.append((now, idle_slots))
        while self._samples and self._samples[0][0] < now - self.seconds:
            self._samples.popleft()

    def floor(self, now: float) -> int | None:
        """The minimum over the window, or None if we have not watched for a whole window yet."""
        if self._first is None or now - self._first < self.seconds or not self._samples:
            return None
        return min(v for _, v in self._samples)

    def consume(self, slots: int) -> None:
        """Take ``slots`` drained slots off the history so the same surplus is not drained twice."""
        self._samples = deque((t, max(0, v - slots)) for t, v in self._samples)
