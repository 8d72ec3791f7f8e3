"""``python -m worker``: run a worker, or the dlq / sweep / submit commands.

    python -m worker [--queues high,default,low] [--burst] [--name N]
    python -m worker dlq list [--queue Q] | dlq requeue JOB_ID | dlq requeue-all --queue Q
    python -m worker sweep [--loop] [--interval S] [--queues Q1,Q2]
    python -m worker submit PATH [ARG ...] [--queue Q] [--key K] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker
from rq.utils import import_attribute

from jobfleet.connection import (
    REDIS_ERRORS,
    REDIS_UNREACHABLE_EXIT,
    error_reason,
    probe_connection,
    redis_connection,
    unreachable_message,
    wait_for_redis,
)
from jobfleet.errors import DeadLetterError, SubmitError
from jobfleet.logs import configure_logging, log_event
from jobfleet.settings import Settings, SettingsError, load_settings, parse_queues

COMMANDS = ("run", "dlq", "sweep", "submit")
DEFAULT_WORKER_CLASS = "worker.worker.JobfleetWorker"  # JOBFLEET_EXECUTION picks fork or pool for it


def _queue_list(raw: str | None, option: str = "--queues") -> list[str] | None:
    """Validate a ``--queues`` value exactly like ``JOBFLEET_QUEUES`` (one-line SettingsError when bad)."""
    if raw is None:
        return None
    try:
        return list(parse_queues(raw))
    except ValueError as exc:
        raise SettingsError(f"{option}={raw!r}: {exc}") from None


def resolve_worker_class(settings: Settings) -> Any:
    """The worker class of ``JOBFLEET_WORKER_CLASS``, after checking ``JOBFLEET_PERMANENT_ERRORS`` imports."""
    from worker.retry_policy import resolve_exception_types

    try:
        resolve_exception_types(settings.permanent_errors)
    except ValueError as exc:
        raise SettingsError(str(exc).replace(": ", f"={','.join(settings.permanent_errors)!r}: ", 1)) from None
    try:
        worker_class = import_attribute(settings.worker_class)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SettingsError(f"JOBFLEET_WORKER_CLASS={settings.worker_class!r}: cannot import it ({exc})") from None
    if not (isinstance(worker_class, type) and issubclass(worker_class, Worker)):
        raise SettingsError(f"JOBFLEET_WORKER_CLASS={settings.worker_class!r}: not an rq.Worker subclass")
    return worker_class


def use_host_metrics_dir(port: int) -> Path | None:
    """Multiprocess metrics by default: without ``PROMETHEUS_MULTIPROC_DIR``, every worker of this host (same
    user, same port) writes to ``<tmp>/jobfleet-worker-metrics-<uid>-<port>`` and one of them serves the port.

    Only works before prometheus-client is imported (it reads the variable at import); None after that.
    """
    existing = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if existing:
        return Path(existing)
    if "prometheus_client" in sys.modules:
        return None
    directory = Path(tempfile.gettempdir()) / f"jobfleet-worker-metrics-{os.getuid()}-{port}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def _stop_event() -> threading.Event:
    """An event set by SIGTERM/SIGINT (while waiting for Redis, before the worker installs its own handlers)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def run_worker(settings: Settings, argv: Sequence[str], prog: str = "python -m worker") -> int:
    """Run one worker process until it is told to stop (or, with --burst, the queues are empty)."""
    parser = argparse.ArgumentParser(prog=prog, description="Run a jobfleet worker.")
    parser.add_argument("--queues", default=None, help="queues in priority order (default JOBFLEET_QUEUES)")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--name", default=None, help="worker name (default: random)")
    args = parser.parse_args(argv)
    queues = _queue_list(args.queues) or list(settings.queues)
    if settings.metrics_port > 0:
        use_host_metrics_dir(settings.metrics_port)
    worker_class = resolve_worker_class(settings)
    from observability.metrics import start_worker_metrics_server

    if settings.execution == "pool" and settings.worker_class == DEFAULT_WORKER_CLASS:
        worker_class = import_attribute("worker.pool.PoolWorker")
    connection = redis_connection(settings)
    probe = probe_connection(settings)
    if settings.metrics_port > 0:
        start_worker_metrics_server(settings.metrics_port, addr=settings.metrics_addr)
    stop = _stop_event()
    while True:
        # Started while Redis is away (or lost before registering): wait, one log line per attempt.
        if not wait_for_redis(probe, settings.redis_url, component="worker", cap=settings.redis_backoff_cap,
                              stop=stop):
            return 0
        worker = worker_class(queues, name=args.name, connection=connection, settings=settings)
        try:
            worker.work(burst=args.burst, with_scheduler=True, logging_level=None)
            return 0
        except REDIS_ERRORS as exc:  # raised before the work loop (registration): wait again
            log_event("worker_start_failed", level=40, error=error_reason(exc))
            stop = _stop_event()


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
    from worker.recovery import Sweeper, sweep_abandoned

    parser = argparse.ArgumentParser(prog=prog, description="Crash-recovery sweep.")
    parser.add_argument("--loop", action="store_true", help="sweep until SIGTERM/SIGINT")
    parser.add_argument("--interval", type=float, default=settings.recovery_interval)
    parser.add_argument("--queues", default=None, help="default: every known queue")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be > 0")
    args.queues = _queue_list(args.queues)
    connection = redis_connection(settings)
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sweeper = Sweeper(connection, settings, args.queues, interval=args.interval)
    while True:
        if not args.loop:
            recovered = sweep_abandoned(connection, args.queues, settings)
            log_event("sweep_done", recovered=len(recovered), job_ids=recovered or None)
            return 0
        try:
            connection.ping()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            sweeper.contact_failed()
            log_event("sweep_failed", level=40, error=str(exc))
        else:
            recovered_or_none = sweeper.tick(force=True)
            if recovered_or_none is not None:
                log_event("sweep_done", recovered=len(recovered_or_none), job_ids=recovered_or_none or None)
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
    parser.add_argument("--tenant", default=None, help="tenant (fair share); default: the default tenant")
    args = parser.parse_args(argv)
    job = submit(args.path, *[_cli_value(a) for a in args.args], queue=args.queue, timeout=args.timeout,
                 idempotency_key=args.key, tenant=args.tenant, settings=settings)
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
    except REDIS_ERRORS as exc:
        print(unreachable_message(os.environ.get("REDIS_URL"), exc), file=sys.stderr)
        return REDIS_UNREACHABLE_EXIT


if __name__ == "__main__":
    sys.exit(main())
