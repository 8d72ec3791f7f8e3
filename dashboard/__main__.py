"""``python -m dashboard``: serve the dashboard on ``JOBFLEET_DASHBOARD_HOST:JOBFLEET_DASHBOARD_PORT``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

import uvicorn

from dashboard.app import create_app
from jobfleet.connection import probe_connection, wait_for_redis
from jobfleet.logs import configure_logging
from jobfleet.settings import SettingsError, load_settings


def main(argv: Sequence[str] | None = None, prog: str = "python -m dashboard") -> int:
    """Load settings, build the app and run uvicorn until interrupted."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve the jobfleet dashboard and REST API on JOBFLEET_DASHBOARD_HOST:PORT."
    )
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
        probe = probe_connection(settings)
    except SettingsError as exc:
        print(f"jobfleet dashboard: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Started while Redis is away: wait (one log line per attempt) instead of failing.
    if not wait_for_redis(probe, settings.redis_url, component="dashboard", cap=settings.redis_backoff_cap,
                          stop=stop):
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn installs its own handlers
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app = create_app(settings)
    if settings.dashboard_token is None and settings.dashboard_host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("jobfleet.dashboard").warning(
            "JOBFLEET_DASHBOARD_TOKEN is empty while listening on %s: write actions are open to anyone who can "
            "reach this port", settings.dashboard_host,
        )
    uvicorn.run(app, host=settings.dashboard_host, port=settings.dashboard_port, log_config=None,
                log_level=settings.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
