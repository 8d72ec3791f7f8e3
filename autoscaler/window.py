"""Small rolling windows the daemon (and the simulator) keep between decisions: rates and idle floor."""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SERVICE_SAMPLE = 100  # recent service times per queue whose spread sizes the wait tail
MIN_SERVICE_SAMPLE = 10
RATE_WINDOW_S = 900.0  # the rolling window of arrival and completion rates (Poisson noise 1/sqrt(arrivals in it))
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

    @property
    def seen_total(self) -> float:
        """Arrivals counted since the first sample (monotonic)."""
        return self._seen

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
        k = min(bisect.bisect_left(self._samples, (t1 - seconds,)), len(self._samples) - 2)
        t0, s0, _, _ = self._samples[k]
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


@dataclass
class SeasonalForecast:
    """Arrivals per ``bin_s`` bin over the last ``periods`` periods; forecasts load that recurs every period.

    :meth:`forecast` looks at the moment an instance launched now would be ready (``now + horizon``) one,
    two, ... periods ago, takes the mean rate over ``smooth_s`` around it less one Poisson standard deviation
    (noise in a past day is not load), and returns the *smallest* of those
    rates over the past periods: only load that came back at this time of day in every one of at least
    ``min_periods`` past periods is forecast, so a trace without a period forecasts nothing (None) and a
    one-off burst yesterday is not forecast today.
    """

    period_s: float = 86400.0
    bin_s: float = 60.0
    periods: int = 7
    min_periods: int = 2
    smooth_s: float = 300.0
    _bins: dict[int, float] = field(default_factory=dict)
    _first: float | None = None
    _last_seen: float | None = None

    def add(self, now: float, seen: float) -> None:
        """Record the cumulative arrivals counter ``seen`` at ``now``."""
        if self._first is None:
            self._first = now
        if self._last_seen is not None:
            b = int(now // self.bin_s)
            self._bins[b] = self._bins.get(b, 0.0) + max(0.0, seen - self._last_seen)
            oldest = int((now - (self.periods + 1) * self.period_s) // self.bin_s)
            if len(self._bins) > (self.periods + 1) * self.period_s / self.bin_s + 10:
                for key in [k for k in self._bins if k < oldest]:
                    del self._bins[key]
        self._last_seen = seen

    def snapshot(self, now: float) -> tuple[float | None, int, float]:
        """(history start, current bin, its count so far): what :class:`autoscaler.history` persists."""
        b = int(now // self.bin_s)
        return self._first, b, self._bins.get(b, 0.0)

    def restore(self, first: float, bins: dict[int, float], now: float) -> None:
        """Resume from a persisted history (bins older than ``periods + 1`` periods are dropped; a history with
        none left is ignored)."""
        oldest = int((now - (self.periods + 1) * self.period_s) // self.bin_s)
        kept = {b: n for b, n in bins.items() if b >= oldest}
        if not kept:
            return
        self._first = first if self._first is None else min(first, self._first)
        for b, n in kept.items():
            self._bins[b] = max(self._bins.get(b, 0.0), n)

    def forecast(self, now: float, horizon_s: float) -> float | None:
        """Jobs/s expected around ``now + horizon_s`` (None: not enough periodic history).

        For each past period: the mean rate over ``smooth_s`` centred on the same moment of that period; the
        forecast is the smallest of them (load that came back every time).
        """
        if self._first is None:
            return None
        span = int((now - self._first) // self.period_s)
        if span < self.min_periods:
            return None
        rates = []
        for d in range(1, min(span, self.periods) + 1):
            centre = now - d * self.period_s + horizon_s
            start = int((centre - self.smooth_s / 2) // self.bin_s)
            stop = int((centre + self.smooth_s / 2) // self.bin_s)
            counts = sum(self._bins.get(k, 0.0) for k in range(start, stop))
            # one Poisson standard deviation below the count: noise in past days is not forecast as load
            rates.append(max(0.0, counts - math.sqrt(counts)) / (max(1, stop - start) * self.bin_s))
        return min(rates)


@dataclass
class BurstHistory:
    """Instances added by scale-outs over the last ``seconds``: how big bursts were and how often they came."""

    seconds: float = 6 * 3600.0
    _adds: deque[tuple[float, int]] = field(default_factory=deque)
    _first: float | None = None

    def add(self, now: float, added: int) -> None:
        """Record ``added`` instances launched at ``now`` (call with 0 to just advance time)."""
        if self._first is None:
            self._first = now
        if added > 0:
            self._adds.append((now, added))
        while self._adds and self._adds[0][0] < now - self.seconds:
            self._adds.popleft()

    def bursts(self, now: float, within_s: float) -> list[int]:
        """Sizes of the bursts in the window: instances added with less than ``within_s`` between launches."""
        sizes: list[int] = []
        last = -float("inf")
        for t, n in self._adds:
            if t - last <= within_s and sizes:
                sizes[-1] += n
            else:
                sizes.append(n)
            last = t
        return sizes

    def span_s(self, now: float) -> float:
        """Seconds of history the window covers so far."""
        return 0.0 if self._first is None else min(self.seconds, now - self._first)


def burst_lead(boot_time_s: float, interval_s: float) -> float:
    """How long before a recurring burst is due its capacity is launched: a slow boot (1.5 x the expected
    one, at least 30 s more) plus one tick."""
    return boot_time_s + max(30.0, boot_time_s / 2) + interval_s


@dataclass
class Burst:
    """One arrival burst: when it started and the largest fleet size decided while it lasted."""

    start: float
    peak: int
    last_seen: float


@dataclass
class BurstRecurrence:
    """Arrival bursts and the period they recur with (batches every 20 minutes, an hourly cron, ...).

    A burst is a tick at which the arrivals of the last ``within_s`` are at least ``min_jobs`` and
    ``factor`` times what the rate of the ``baseline_s`` before them predicts; ticks within ``within_s``
    of each other belong to one burst, whose ``peak`` is the largest fleet size decided until ``within_s``
    after its last such tick. When the last three bursts came with two gaps that agree within
    ``tolerance`` (and are at most ``max_period_s``: longer periods are the seasonal forecast's), the next
    one is expected one mean gap after the last: :meth:`expected` asks for the smallest of their peaks
    from ``lead_s`` before that moment until ``tolerance`` of a period after it. A burst that does not
    come ends the expectation until two new gaps agree, so a one-off pattern costs at most one lead.
    """

    within_s: float = 90.0
    baseline_s: float = 600.0
    factor: float = 3.0
    min_jobs: int = 20
    tolerance: float = 0.1
    max_period_s: float = 4 * 3600.0
    _seen: deque[tuple[float, float]] = field(default_factory=deque)
    _bursts: deque[Burst] = field(default_factory=lambda: deque(maxlen=3))

    def _seen_at(self, t: float) -> tuple[float, float]:
        k = max(0, bisect.bisect_right(self._seen, (t, float("inf"))) - 1)
        return self._seen[k]

    def add(self, now: float, seen: float, desired: int) -> None:
        """Record the cumulative arrivals ``seen`` and the fleet size ``desired`` decided at ``now``."""
        self._seen.append((now, seen))
        while len(self._seen) > 2 and self._seen[1][0] <= now - self.baseline_s - self.within_s:
            self._seen.popleft()
        t0, s0 = self._seen[0]
        tb, sb = self._seen_at(now - self.within_s)
        span = tb - t0
        if span >= self.within_s:
            recent = seen - sb
            expected = (sb - s0) / span * (now - tb)
            if recent >= max(self.min_jobs, self.factor * expected):
                last = self._bursts[-1] if self._bursts else None
                if last is not None and now - last.last_seen <= self.within_s:
                    last.last_seen = now
                else:
                    self._bursts.append(Burst(now, desired, now))
        if self._bursts and now - self._bursts[-1].last_seen <= self.within_s:
            self._bursts[-1].peak = max(self._bursts[-1].peak, desired)

    @property
    def bursts(self) -> tuple[Burst, ...]:
        """The last three bursts, oldest first."""
        return tuple(self._bursts)

    def period(self, now: float) -> float | None:
        """The recurrence period while the next burst is still due (None: no period, or it failed to come)."""
        if len(self._bursts) < 3:
            return None
        a, b, c = (x.start for x in self._bursts)
        g1, g2 = b - a, c - b
        if abs(g1 - g2) > self.tolerance * max(g1, g2) or max(g1, g2) > self.max_period_s:
            return None
        gap = (g1 + g2) / 2
        return gap if now <= c + gap * (1 + self.tolerance) else None

    def expected(self, now: float, lead_s: float) -> int:
        """Instances to hold now for the next expected burst (0: none expected within ``lead_s``)."""
        gap = self.period(now)
        if gap is None:
            return 0
        due = self._bursts[-1].start + gap
        return min(x.peak for x in self._bursts) if now >= due - lead_s else 0

    def held_peak(self, now: float, hold_s: float) -> int:
        """The largest peak of the bursts that started within the last ``hold_s`` (0: none)."""
        return max((x.peak for x in self._bursts if now - x.start <= hold_s), default=0)

    def observed(self, now: float, hold_s: float, lead_s: float) -> dict[str, Any]:
        """The :class:`autoscaler.policy.Observation` fields this history gives (``recent_peak``,
        ``burst_expected``, ``burst_period_s``): what the daemon and the simulator both pass."""
        return {"recent_peak": self.held_peak(now, hold_s), "burst_expected": self.expected(now, lead_s),
                "burst_period_s": self.period(now)}


def service_cv2(durations: Sequence[float], min_samples: int = MIN_SERVICE_SAMPLE) -> float | None:
    """Squared coefficient of variation (variance / mean²) of service times; None with too few samples."""
    values = [d for d in durations if d >= 0]
    if len(values) < min_samples:
        return None
    mean = sum(values) / len(values)
    if mean <= 0:
        return None
    var = sum((d - mean) ** 2 for d in values) / (len(values) - 1)
    return var / mean**2
