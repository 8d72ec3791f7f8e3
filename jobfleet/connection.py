"""The one place that builds Redis connections (URL, TLS, AUTH, timeouts, retry on connection errors)."""

from __future__ import annotations

import ssl
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

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
