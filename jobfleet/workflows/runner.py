"""What every workflow task runs: mark it running, expose its array index, call the function or program.

The RQ job of a task calls ``run_task`` (a plain function, so any RQ worker can run it); the callbacks in
:mod:`jobfleet.workflows.callbacks` record how it ended.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from rq import get_current_job
from rq.utils import import_attribute

from jobfleet.workflows import shell, store

_ARRAY_INDEX: ContextVar[int | None] = ContextVar("jobfleet_array_index", default=None)


def current_array_index() -> int | None:
    """Index of the array child running in this process (None outside an array task)."""
    return _ARRAY_INDEX.get()


def run_task(kind: str, target: str, args: list[Any], kwargs: dict[str, Any], input: Any = None,
             exit_codes: list[int] | None = None, is_array: bool = False) -> Any:
    """Run one workflow task (the RQ job function of every task)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_task runs inside an RQ worker only")
    parsed = store.parse_task_id(job.id)
    if parsed is None:
        raise RuntimeError(f"job {job.id} is not a workflow task")
    wid, n, i = parsed
    if store.start_task(job.connection, wid, n, i) == "skip":
        return {"skipped": True}
    token = _ARRAY_INDEX.set(i if is_array else None)
    try:
        if kind == "shell":
            return shell.run(json.loads(target), job_id=job.id, index=i if is_array else None, input=input,
                             retry_exit_codes=exit_codes, workflow_id=wid)
        func = import_attribute(target)
        return func(i, *args, **kwargs) if is_array else func(*args, **kwargs)
    finally:
        _ARRAY_INDEX.reset(token)
