"""Default retry policy: exponential backoff with jitter, and which exceptions are permanent."""

from __future__ import annotations

import builtins
import importlib
import random

from rq import Retry

from worker.errors import PermanentError
from worker.settings import Settings


def backoff_intervals(settings: Settings, rng: random.Random | None = None) -> list[float]:
    """Backoff before each retry k = 1..retry_max: base * 2^(k-1), capped, drawn from [(1-j)*d, d]."""
    draw = rng or random.Random()
    intervals = []
    for k in range(1, settings.retry_max + 1):
        ceiling = min(settings.retry_cap, settings.retry_base * 2 ** (k - 1))
        low = (1.0 - settings.retry_jitter) * ceiling
        intervals.append(round(draw.uniform(low, ceiling), 3))
    return intervals


def default_retry(settings: Settings, rng: random.Random | None = None) -> Retry | None:
    """RQ ``Retry`` for jobs enqueued without one, or None when ``retry_max`` is 0."""
    if settings.retry_max < 1:
        return None
    # RQ's type hints say int, but it stores and uses any non-negative number (JSON in the job hash).
    return Retry(max=settings.retry_max, interval=backoff_intervals(settings, rng))  # type: ignore[arg-type]


def resolve_exception_types(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """Exception classes for dotted or builtin names; a clear ValueError for a name that is not one."""
    found: list[type[BaseException]] = [PermanentError]
    for name in names:
        if "." in name:
            module_name, _, attr = name.rpartition(".")
            try:
                candidate = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError):
                raise ValueError(f"JOBFLEET_PERMANENT_ERRORS: cannot import {name!r}") from None
        else:
            candidate = getattr(builtins, name, None)
        if not (isinstance(candidate, type) and issubclass(candidate, BaseException)):
            raise ValueError(f"JOBFLEET_PERMANENT_ERRORS: {name!r} is not an exception class")
        found.append(candidate)
    return tuple(dict.fromkeys(found))


def is_permanent(exc_type: type[BaseException] | None, permanent: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc_type`` is (a subclass of) one of the permanent exception types."""
    return exc_type is not None and issubclass(exc_type, permanent)
