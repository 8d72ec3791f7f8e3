"""``jobfleet submit workflow.yaml``: submit a workflow file; prints its id (and, with --wait, its end)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from jobfleet.errors import SubmitError
from jobfleet.settings import SettingsError, load_settings
from jobfleet.workflows.definition import FILE_SUFFIXES, load_file
from jobfleet.workflows.submit import get_workflow, submit_workflow


def is_workflow_file(arg: str) -> bool:
    """True when ``arg`` names a workflow file (by its suffix)."""
    return arg.lower().endswith(FILE_SUFFIXES)


def main(argv: Sequence[str], prog: str = "jobfleet submit") -> int:
    """Submit the workflow file ``argv[0]``; 0 on success, 2 on an invalid file or settings."""
    parser = argparse.ArgumentParser(prog=prog, description="Submit a workflow defined in a YAML or JSON file.")
    parser.add_argument("file", help="workflow definition (.yaml, .yml or .json)")
    parser.add_argument("--key", help="idempotency key: the same key returns the same workflow for 24 h")
    parser.add_argument("--wait", action="store_true", help="wait until the workflow ends; exit 1 unless it succeeded")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait with --wait, seconds")
    args = parser.parse_args(list(argv))
    try:
        settings = load_settings()
        submitted = submit_workflow(load_file(args.file), idempotency_key=args.key, settings=settings)
    except (SubmitError, SettingsError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"id": submitted.id, "status": submitted.status, "created": submitted.created}))
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        status = get_workflow(submitted.id, settings=settings)
        if status["status"] in ("succeeded", "failed", "canceled") or time.monotonic() > deadline:
            print(json.dumps(status))
            return 0 if status["status"] == "succeeded" else 1
        time.sleep(0.5)
