"""Job progress: a job reports how far it is; anyone holding the job can read it."""

from __future__ import annotations

import math
import time
from typing import Any

from rq import get_current_job
from rq.job import Job

PROGRESS_KEY = "progress"


def report_progress(percent: float, message: str = "", job: Job | None = None) -> None:
    """Record ``percent`` (0..100) and ``message`` in the running job's meta (saved at once)."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
        raise ValueError(f"progress percent must be a number from 0 to 100, got {percent!r}")
    if not 0 <= percent <= 100:
        raise ValueError(f"progress percent must be from 0 to 100, got {percent}")
    if not isinstance(message, str):
        raise ValueError(f"progress message must be a string, got {type(message).__name__}")
    target = job or get_current_job()
    if target is None:
        raise RuntimeError("report_progress() must be called from inside a running job")
    target.meta[PROGRESS_KEY] = {"percent": float(percent), "message": message, "at": time.time()}
    target.save_meta()


def get_progress(job: Job) -> dict[str, Any] | None:
    """The last reported progress of ``job`` (refreshed from Redis): percent, message, at; None if none yet."""
    meta = job.get_meta(refresh=True)
    value = meta.get(PROGRESS_KEY)
    return dict(value) if isinstance(value, dict) else None
