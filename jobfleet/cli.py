"""The ``jobfleet`` command: one entry point that dispatches to every component.

    jobfleet run | worker | autoscaler | dashboard | submit | dlq ... | sweep | settings | perf

This is the only module of ``jobfleet/`` that reaches up into the components, and it does so lazily,
inside each subcommand, so an app that only submits never imports (or installs) the worker, the
dashboard or the autoscaler.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

USAGE = """usage: jobfleet COMMAND [ARGS ...]

commands:
  run          run the local fleet: embedded Redis, autoscaled workers, dashboard, metrics, demo load
  worker       run one worker process (python -m worker)
  autoscaler   run the autoscaler daemon (python -m autoscaler)
  dashboard    serve the dashboard and REST API (python -m dashboard)
  submit       submit a job: jobfleet submit pkg.module.func [ARG ...] [--queue Q] [--key K]
               or a workflow file: jobfleet submit workflow.yaml [--key K] [--wait]
  dlq          list or re-queue dead-lettered jobs: jobfleet dlq list|requeue|requeue-all
  sweep        recover jobs whose worker died: jobfleet sweep [--loop]
  settings     print the configuration table (--check validates the environment)
  tenants      tenants' fair share: jobfleet tenants list | set-weight T W | set-cap T N|none
  perf         a tagged, costed performance run: jobfleet perf --messages N --run-id TAG [--shape S]

Run `jobfleet COMMAND --help` for a command's options.
"""


def _run(argv: Sequence[str]) -> int:
    from jobfleet.local.fleet import main

    return main(list(argv), prog="jobfleet run")


def _worker(argv: Sequence[str]) -> int:
    from worker.__main__ import main

    return main(["run", *argv], prog="jobfleet worker")


def _worker_command(name: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        from worker.__main__ import main

        return main([name, *argv], prog=f"jobfleet {name}")

    return run


def _autoscaler(argv: Sequence[str]) -> int:
    from autoscaler.__main__ import main

    return main(list(argv), prog="jobfleet autoscaler")


def _dashboard(argv: Sequence[str]) -> int:
    from dashboard.__main__ import main

    return main(list(argv), prog="jobfleet dashboard")


def _submit(argv: Sequence[str]) -> int:
    from jobfleet.workflows.cli import is_workflow_file
    from jobfleet.workflows.cli import main as submit_file

    if argv and is_workflow_file(argv[0]):
        return submit_file(argv)
    return _worker_command("submit")(argv)


def _tenants(argv: Sequence[str]) -> int:
    from jobfleet.tenant_admin import main

    return main(list(argv), prog="jobfleet tenants")


def _perf(argv: Sequence[str]) -> int:
    from bench.perf import main

    return main(list(argv), prog="jobfleet perf")


def _settings(argv: Sequence[str]) -> int:
    from jobfleet.settings import main

    return main(list(argv), prog="jobfleet settings")


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "run": _run,
    "worker": _worker,
    "autoscaler": _autoscaler,
    "dashboard": _dashboard,
    "submit": _submit,
    "dlq": _worker_command("dlq"),
    "sweep": _worker_command("sweep"),
    "settings": _settings,
    "tenants": _tenants,
    "perf": _perf,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand; unknown commands exit with 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    # Like `rq worker --path .`: the app's job modules import from the directory the command runs in.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    handler = COMMANDS.get(command)
    if handler is None:
        print(f"jobfleet: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return handler(rest)
    except ModuleNotFoundError as exc:
        print(f"jobfleet {command}: a component is not installed ({exc.name}); install the extra it needs, "
              f"for example `pip install 'jobfleet[worker]'`", file=sys.stderr)
        return 2
