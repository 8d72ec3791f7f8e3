"""The default retry policy of submitted jobs: exponential backoff with jitter, from the settings."""

from __future__ import annotations

import random

from rq import Retry

from jobfleet.settings import Settings


def backoff_intervals(settings: Settings, rng: random.Random | None = None) -> list[float]:
    """Backoff before each retry k = 1..retry_max: base * 2^(k-1), capped, drawn from [(1-j)*d, d]."""
    # The module's generator: seeded once per process and re-seeded after fork by the random module.
    uniform = rng.uniform if rng is not None else random.uniform
    intervals = []
    for k in range(1, settings.retry_max + 1):
        ceiling = min(settings.retry_cap, settings.retry_base * 2 ** (k - 1))
        low = (1.0 - settings.retry_jitter) * ceiling
        intervals.append(round(uniform(low, ceiling), 3))
    return intervals


def default_retry(settings: Settings, rng: random.Random | None = None) -> Retry | None:
    """RQ ``Retry`` for jobs enqueued without one, or None when ``retry_max`` is 0."""
    if settings.retry_max < 1:
        return None
    # RQ's type hints say int, but it stores and uses any non-negative number (JSON in the job hash).
    return Retry(max=settings.retry_max, interval=backoff_intervals(settings, rng))  # type: ignore[arg-type]
