"""The one place that builds Redis connections (URL, TLS, AUTH, timeouts, retry on connection errors).

Also what every process does when Redis is not there: :func:`wait_for_redis` (long-running processes wait,
retrying with backoff, one log line per attempt) and :func:`unreachable_message` (commands print one line
and exit with ``REDIS_UNREACHABLE_EXIT`` = 3).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis import Redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from jobfleet.logs import log_event
from jobfleet.settings import Settings, SettingsError


def connection_kwargs(settings: Settings, url: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url`` built from settings (used by workers and CLIs alike)."""
    target = redis_target(settings, url)
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), settings.redis_retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionResetError],
    }
    password = settings.redis_password or _password_from_ssm(settings)
    if password:
        kwargs["password"] = password
    if target.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if settings.redis_tls_ca:
            kwargs["ssl_ca_certs"] = settings.redis_tls_ca
    return kwargs


def redis_connection(settings: Settings, url: str | None = None) -> Redis:
    """A Redis client for ``url`` (default ``settings.redis_url``) with retries, timeouts, TLS and AUTH."""
    return Redis.from_url(redis_target(settings, url), **connection_kwargs(settings, url))


def redis_target(settings: Settings, url: str | None = None) -> str:
    """The URL to connect to; a clear error when none is configured."""
    target = url or settings.redis_url
    if not target:
        raise SettingsError("REDIS_URL is empty: start the local fleet (`make run`) or set REDIS_URL")
    return target


def _password_from_ssm(settings: Settings) -> str | None:
    """Read the AUTH token from SSM Parameter Store when configured (AWS hosts); None otherwise."""
    if not settings.redis_ssm_parameter:
        return None
    import boto3  # imported lazily: only AWS hosts need it

    client = boto3.client(
        "ssm", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    response = client.get_parameter(Name=settings.redis_ssm_parameter, WithDecryption=True)
    return str(response["Parameter"]["Value"])


REDIS_UNREACHABLE_EXIT = 3
"""Exit status of every jobfleet command that gives up because Redis cannot be reached (bad input: 2)."""
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionResetError,
)


def redacted_url(url: str | None) -> str:
    """``url`` without its password (``redis://user:secret@host`` → ``redis://user@host``)."""
    if not url:
        return "(no REDIS_URL)"
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def error_reason(exc: BaseException) -> str:
    """The last line of an error, without redis-py's repetitions (``Error 111 connecting to ...``)."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text


def unreachable_message(url: str | None, exc: BaseException) -> str:
    """The one line every CLI prints when it gives up on Redis."""
    return f"jobfleet: cannot reach Redis at {redacted_url(url)}: {error_reason(exc)}"


def probe_connection(settings: Settings, url: str | None = None) -> Redis:
    """A client like :func:`redis_connection` but without retries: one call is one attempt."""
    kwargs = connection_kwargs(settings, url)
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs["retry_on_error"] = []
    return Redis.from_url(redis_target(settings, url), **kwargs)


def backoff_delay(attempt: int, cap: float, base: float = 0.5) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling from ``base``, capped."""
    return float(min(cap, base * 2 ** min(max(attempt, 1) - 1, 16)))


def wait_for_redis(
    client: Redis, url: str | None, *, component: str, cap: float = 2.0, stop: threading.Event | None = None,
    report: Callable[[int, float, BaseException], None] | None = None,
) -> bool:
    """Ping ``client`` until Redis answers; after each failure report it once and back off (capped).

    Returns True once Redis answered, False if ``stop`` was set first. ``report(attempt, retry_in, exc)``
    defaults to one ``redis_waiting`` log event per attempt.
    """
    attempt = 0
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            client.ping()
        except REDIS_ERRORS as exc:
            attempt += 1
            delay = backoff_delay(attempt, cap)
            if report is not None:
                report(attempt, delay, exc)
            else:
                log_event("redis_waiting", level=logging.WARNING, component=component, url=redacted_url(url),
                          attempt=attempt, retry_in_s=delay, error=error_reason(exc))
            stop.wait(delay)
            continue
        if attempt:
            log_event("redis_reachable", component=component, url=redacted_url(url), attempts=attempt + 1)
        return True
    return False
