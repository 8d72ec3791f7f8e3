"""Standalone per-queue metrics endpoint: ``python -m observability.exporter --redis-url URL --port N``.

In a deployment the autoscaler serves these metrics on its own endpoint (``register_queue_collector``); this
exporter is for local use, tests, and fleets without the autoscaler. (observability sits below the worker
package, so it builds its own Redis client from the URL given on the command line.)
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, start_http_server
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobfleet.connection import unreachable_message, wait_for_redis
from jobfleet.settings import parse_queues
from observability.queue_collector import register_queue_collector
from observability.tenant_collector import register_tenant_collector
from observability.workflow_collector import register_workflow_collector


def _queues(raw: str) -> list[str]:
    try:
        return list(parse_queues(raw))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _redis_url(raw: str) -> str:
    if not re.match(r"^(redis|rediss|unix)://", raw):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a redis://, rediss:// or unix:// URL")
    return raw


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m observability.exporter", description=__doc__)
    parser.add_argument("--redis-url", required=True, type=_redis_url, help="Redis URL of the fleet")
    parser.add_argument("--port", required=True, type=int, help="port to serve /metrics on")
    parser.add_argument("--addr", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--queues", type=_queues, default=[], help="comma-separated queues (default: all in rq:queues)")
    parser.add_argument("--target-wait", type=_positive, default=None,
                        help="target wait in seconds, exported as jobfleet_target_wait_seconds for the alert rules")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"exporter: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    connection = Redis.from_url(args.redis_url, socket_timeout=5, socket_connect_timeout=5)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def report(attempt: int, retry_in: float, exc: BaseException) -> None:
        print(f"exporter: {unreachable_message(args.redis_url, exc).removeprefix('jobfleet: ')}; "
              f"attempt {attempt}, retrying in {retry_in:.1f} s", file=sys.stderr, flush=True)

    # Started while Redis is away: wait (one line per attempt) instead of failing.
    probe = Redis.from_url(args.redis_url, socket_timeout=5, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))
    if not wait_for_redis(probe, args.redis_url, component="exporter", stop=done, report=report):
        return 0
    probe.close()
    registry = CollectorRegistry()
    register_queue_collector(registry, connection, args.queues, args.target_wait)
    register_workflow_collector(registry, connection)
    register_tenant_collector(registry, connection, [q for q in args.queues if "~" not in q])
    try:
        server, _thread = start_http_server(args.port, addr=args.addr, registry=registry)
    except OSError as exc:
        print(f"exporter: cannot listen on {args.addr}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"queue metrics on http://{args.addr}:{args.port}/metrics", flush=True)
    done.wait()
    server.shutdown()
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
