"""The shell-command task type: run a program with the AWS Batch-like environment, capture its output."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from jobfleet.errors import PermanentError

OUTPUT_LIMIT = 64_000


class ShellTaskFailed(RuntimeError):
    """The program exited non-zero with a code worth a retry."""

    def __init__(self, exit_code: int, output: str) -> None:
        super().__init__(f"command exited with code {exit_code}; output: {output[-2000:]}")
        self.exit_code = exit_code
        self.output = output


class ShellTaskFailedPermanently(PermanentError):
    """The program exited non-zero with a code that the retry rules do not retry."""

    def __init__(self, exit_code: int, output: str) -> None:
        super().__init__(f"command exited with code {exit_code} (not retried); output: {output[-2000:]}")
        self.exit_code = exit_code
        self.output = output


def task_env(job_id: str, index: int | None, input: Any, workflow_id: str) -> dict[str, str]:
    """The variables a task's program gets on top of the worker's environment."""
    env = {"JOBFLEET_JOB_ID": job_id, "JOBFLEET_WORKFLOW_ID": workflow_id, "JOBFLEET_JOB_INPUT": json.dumps(input)}
    if index is not None:
        env["JOBFLEET_ARRAY_INDEX"] = str(index)
    return env


def run(command: list[str], *, job_id: str, index: int | None, input: Any, retry_exit_codes: list[int] | None,
        workflow_id: str) -> dict[str, Any]:
    """Run ``command``; ``{"exit_code": 0, "output": ...}`` or raise (retryable or permanent by exit code)."""
    try:
        done = subprocess.run(command, env={**os.environ, **task_env(job_id, index, input, workflow_id)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    except OSError as exc:
        raise ShellTaskFailedPermanently(127, f"cannot run {command[0]!r}: {exc}") from None
    output = done.stdout.decode(errors="replace")[-OUTPUT_LIMIT:]
    if done.returncode == 0:
        return {"exit_code": 0, "output": output}
    if retry_exit_codes is not None and done.returncode not in retry_exit_codes:
        raise ShellTaskFailedPermanently(done.returncode, output)
    raise ShellTaskFailed(done.returncode, output)
