"""RQ's timestamps (``enqueued_at``, ``started_at``, ``ended_at``: ISO-8601 UTC such as
``2026-11-23T09:00:00.123456Z``) as unix seconds, for every component that reads them from job hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_rq_time(raw: Any) -> float | None:
    """Unix seconds of an RQ timestamp field (bytes or str), or None when absent or unparsable."""
    if not raw:
        return None
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()
