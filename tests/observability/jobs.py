"""Jobs the observability tests enqueue (importable by worker processes via PYTHONPATH)."""

from __future__ import annotations

import time


def noop() -> str:
    """Do nothing."""
    return "ok"


def nap(seconds: float) -> float:
    """Sleep ``seconds``."""
    time.sleep(seconds)
    return seconds


def boom() -> None:
    """Always fail."""
    raise RuntimeError("boom on purpose")
