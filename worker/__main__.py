"""``python -m worker``: run a worker, or the dlq / sweep / submit commands.

    python -m worker [--queues high,default,low] [--burst] [--name N]
    python -m worker dlq list [--queue Q] | dlq requeue JOB_ID | dlq requeue-all --queue Q
    python -m worker sweep [--loop] [--interval S] [--queues Q1,Q2]
    python -m worker submit PATH [ARG ...] [--queue Q] [--key K] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.utils import import_attribute

from jobfleet.connection import redis_connection
from jobfleet.errors import DeadLetterError, SubmitError
from jobfleet.logs import configure_logging, log_event
from jobfleet.settings import Settings, SettingsError, load_settings

COMMANDS = ("run", "dlq", "sweep", "submit")
DEFAULT_WORKER_CLASS = "worker.worker.JobfleetWorker"  # JOBFLEET_EXECUTION picks fork or pool for it


def _queue_list(raw: str) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of queue names")
    return names


def run_worker(settings: Settings, argv: Sequence[str], prog: str = "python -m worker") -> int:
    """Run one worker process until it is told to stop (or, with --burst, the queues are empty)."""
    parser = argparse.ArgumentParser(prog=prog, description="Run a jobfleet worker.")
    parser.add_argument("--queues", type=_queue_list, default=list(settings.queues),
                        help="queues in priority order (default JOBFLEET_QUEUES)")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--name", default=None, help="worker name (default: random)")
    args = parser.parse_args(argv)
    from observability.metrics import start_worker_metrics_server

    worker_class = import_attribute(settings.worker_class)
    if settings.execution == "pool" and settings.worker_class == DEFAULT_WORKER_CLASS:
        worker_class = import_attribute("worker.pool.PoolWorker")
    connection = redis_connection(settings)
    if settings.metrics_port > 0:
        start_worker_metrics_server(settings.metrics_port)
    worker = worker_class(args.queues, name=args.name, connection=connection, settings=settings)
    worker.work(burst=args.burst, with_scheduler=True, logging_level=None)
    return 0


def run_dlq(settings: Settings, argv: Sequence[str], prog: str = "python -m worker dlq") -> int:
    """List or re-queue dead-lettered jobs."""
    from worker import dlq

    parser = argparse.ArgumentParser(prog=prog, description="Dead-letter registry.")
    sub = parser.add_subparsers(dest="action", required=True)
    p_list = sub.add_parser("list", help="list dead-lettered jobs")
    p_list.add_argument("--queue", default=None)
    p_one = sub.add_parser("requeue", help="re-queue one job")
    p_one.add_argument("job_id")
    p_all = sub.add_parser("requeue-all", help="re-queue every job of a queue")
    p_all.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    connection = redis_connection(settings)
    if args.action == "list":
        for job in dlq.list_failed(connection, args.queue):
            print(json.dumps({"job_id": job.job_id, "queue": job.queue, "function": job.function,
                              "error": job.error, "ended_at": job.ended_at}, default=str))
    elif args.action == "requeue":
        requeued = dlq.requeue_failed(connection, args.job_id)
        print(f"requeued {requeued.id} on {requeued.origin}")
    else:
        ids = dlq.requeue_all(connection, args.queue)
        print(f"requeued {len(ids)} job(s) on {args.queue}")
    return 0


def run_sweep(settings: Settings, argv: Sequence[str], prog: str = "python -m worker sweep") -> int:
    """Recover jobs of dead workers once, or every ``--interval`` seconds with ``--loop``."""
    from worker.recovery import sweep_abandoned

    parser = argparse.ArgumentParser(prog=prog, description="Crash-recovery sweep.")
    parser.add_argument("--loop", action="store_true", help="sweep until SIGTERM/SIGINT")
    parser.add_argument("--interval", type=float, default=settings.recovery_interval)
    parser.add_argument("--queues", type=_queue_list, default=None, help="default: every known queue")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be > 0")
    connection = redis_connection(settings)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            recovered = sweep_abandoned(connection, args.queues, settings)
            log_event("sweep_done", recovered=len(recovered), job_ids=recovered or None)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if not args.loop:
                raise
            log_event("sweep_failed", level=40, error=str(exc))
        if not args.loop:
            return 0
        deadline = time.monotonic() + args.interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, args.interval))
        if stopping:
            return 0


def _cli_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def run_submit(settings: Settings, argv: Sequence[str], prog: str = "python -m worker submit") -> int:
    """Submit one job from the command line; prints its id."""
    from jobfleet.submit import submit

    parser = argparse.ArgumentParser(prog=prog, description="Submit a job.")
    parser.add_argument("path", help="dotted path of the job function")
    parser.add_argument("args", nargs="*", help="arguments (JSON values, else strings)")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--key", default=None, help="idempotency key")
    parser.add_argument("--timeout", type=int, default=None)
    args = parser.parse_args(argv)
    job = submit(args.path, *[_cli_value(a) for a in args.args], queue=args.queue, timeout=args.timeout,
                 idempotency_key=args.key, settings=settings)
    print(job.id)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Dispatch to a command; bad settings or input end with a one-line error and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in COMMANDS else argv
    try:
        settings = load_settings()
        configure_logging(settings)
        handler = {"run": run_worker, "dlq": run_dlq, "sweep": run_sweep, "submit": run_submit}[command]
        if prog is None:
            return handler(settings, rest)
        return handler(settings, rest, prog)
    except (SettingsError, SubmitError, DeadLetterError) as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
