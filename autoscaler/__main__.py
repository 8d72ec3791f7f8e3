"""``python -m autoscaler [--backend local|aws] [--dry-run] [--once]``: run the autoscaler daemon.

SIGTERM/SIGINT end the loop cleanly without changing capacity (the local backend then warm-stops the
worker processes it started, since they are its children).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from autoscaler.backends.base import Backend
from jobfleet.connection import probe_connection, redis_connection, wait_for_redis
from jobfleet.logs import configure_logging, log_event
from jobfleet.settings import Settings, SettingsError, load_settings


def make_backend(name: str, settings: Settings) -> Backend:
    """The backend called ``name`` (``local`` or ``aws``)."""
    if name == "local":
        from autoscaler.backends.local import LocalBackend

        return LocalBackend(settings, redis_connection(settings))
    from autoscaler.backends.aws import AwsBackend

    return AwsBackend.from_settings(settings, redis_connection(settings))


def main(argv: Sequence[str] | None = None, prog: str = "python -m autoscaler") -> int:
    """Parse arguments, validate settings, run the loop; exit code 2 on bad configuration."""
    parser = argparse.ArgumentParser(prog=prog, description="Run the jobfleet autoscaler.")
    parser.add_argument("--backend", choices=("local", "aws"), default=None,
                        help="where capacity comes from (default JOBFLEET_AUTOSCALER_BACKEND)")
    parser.add_argument("--dry-run", action="store_true", help="decide and log, but do not change capacity")
    parser.add_argument("--once", action="store_true", help="take one decision and exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.backend:
            settings = settings.replace(autoscaler_backend=args.backend)
        if settings.autoscaler_backend == "aws" and not settings.asg_name:
            raise SettingsError("JOBFLEET_ASG_NAME is required with --backend aws")
        if settings.autoscaler_backend == "local" and settings.redis_url is None:
            raise SettingsError("REDIS_URL is required (the local fleet `make run` sets it)")
        from autoscaler.daemon import Daemon, policy_config

        policy_config(settings)
    except (SettingsError, ValueError) as exc:
        print(f"autoscaler: bad configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    from autoscaler import metrics
    from jobfleet.tracing import configure_tracing, flush

    configure_tracing("jobfleet-autoscaler")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log_event("autoscaler_stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    connection = redis_connection(settings)
    # Started while Redis is away: wait (one log line per attempt) instead of failing.
    if not wait_for_redis(probe_connection(settings), settings.redis_url, component="autoscaler",
                          cap=settings.redis_backoff_cap, stop=stop):
        return 0
    backend = make_backend(settings.autoscaler_backend, settings)
    if settings.autoscaler_metrics_port > 0:
        from observability.queue_collector import register_queue_collector

        register_queue_collector(metrics.REGISTRY, connection, settings.queues, settings.target_wait)
        metrics.serve_metrics(settings.autoscaler_metrics_port, addr="0.0.0.0")
    daemon = Daemon(settings, backend, connection, dry_run=args.dry_run or None)
    log_event("autoscaler_started", backend=settings.autoscaler_backend, dry_run=daemon.dry_run,
              interval=settings.autoscaler_interval)
    try:
        daemon.run(stop, once=args.once)
    finally:
        backend.close()
        flush()
    log_event("autoscaler_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
