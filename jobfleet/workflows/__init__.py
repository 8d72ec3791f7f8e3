"""Workflows: graphs of RQ jobs and array jobs, with O(1) aggregate status.

    from jobfleet import Workflow, task, array, submit_workflow, get_workflow

    wf = Workflow("etl", [
        task("extract", "app.jobs.extract"),
        array("transform", "app.jobs.transform", size=100, depends_on=["extract"]),
        task("load", "app.jobs.load", depends_on=["transform"]),
    ])
    submitted = submit_workflow(wf)
    get_workflow(submitted.id)["counts"]
"""

from __future__ import annotations

from jobfleet.workflows.control import cancel_workflow, retry_workflow
from jobfleet.workflows.definition import from_dict, load_file
from jobfleet.workflows.model import ArraySpec, Node, RetrySpec, Workflow, WorkflowError, array, task
from jobfleet.workflows.runner import current_array_index
from jobfleet.workflows.submit import IdempotencyConflict, Submitted, get_workflow, submit_workflow

__all__ = [
    "ArraySpec",
    "IdempotencyConflict",
    "Node",
    "RetrySpec",
    "Submitted",
    "Workflow",
    "WorkflowError",
    "array",
    "cancel_workflow",
    "current_array_index",
    "from_dict",
    "get_workflow",
    "load_file",
    "retry_workflow",
    "submit_workflow",
    "task",
]
