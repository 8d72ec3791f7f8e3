"""The dashboard's front door: Host allow list, CSRF origin check, bearer token, security headers, HEAD.

One pure ASGI middleware (:class:`SecurityMiddleware`) applies the rules of a :class:`SecurityPolicy`;
the decision itself (:meth:`SecurityPolicy.refusal`) is a pure function of method, path and headers.

* ``Host`` must name one of ``JOBFLEET_DASHBOARD_ALLOWED_HOSTS`` (port ignored), so a DNS-rebound
  name (``evil.example`` resolving to the dashboard) gets 400 and no data.
* A state-changing request (anything but GET/HEAD/OPTIONS) carrying an ``Origin`` must come from the
  page's own origin or an allow-listed one; ``Origin: null`` (sandboxed frames, data: URLs) is
  refused, as is ``Sec-Fetch-Site: cross-site`` without an allowed origin.
* With a token configured, every ``/api`` request needs ``Authorization: Bearer <token>`` (reads too,
  unless ``JOBFLEET_DASHBOARD_OPEN_READS``); the page, its assets, ``/healthz`` and ``/readyz`` stay open.
* Every response carries a strict CSP with ``frame-ancestors 'none'``, X-Frame-Options DENY,
  nosniff, ``Referrer-Policy: no-referrer``; HEAD is answered as GET without a body.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Swagger UI sets inline style attributes; its page gets them, scripts stay 'self' only.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
_OPEN_PATHS = ("/healthz", "/readyz")


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header, lower-case, without port (``[::1]:8080`` -> ``::1``)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _origin_netloc(origin: str) -> str | None:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, as an HTTP status and a message."""

    status: int
    message: str


@dataclass(frozen=True)
class SecurityPolicy:
    """What the dashboard lets through; built from settings by :func:`policy_from_settings`."""

    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]
    token: str | None = None
    open_reads: bool = False

    def host_allowed(self, host_header: str | None) -> bool:
        """True when ``host_header`` names an allowed host (``*`` allows any)."""
        if "*" in self.allowed_hosts:
            return True
        return bool(host_header) and host_name(host_header or "") in self.allowed_hosts

    def origin_refusal(self, method: str, headers: dict[str, str]) -> Refusal | None:
        """For a state-changing request: a refusal unless it comes from the page's own or an allowed origin."""
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None:
            if headers.get("sec-fetch-site", "") == "cross-site":
                return Refusal(403, "cross-site request refused (Sec-Fetch-Site: cross-site)")
            return None  # not a browser (curl, scripts): CSRF needs a browser, which always sends Origin here
        if origin.strip().lower() == "null":
            return Refusal(403, "request from an opaque origin (Origin: null) refused")
        netloc = _origin_netloc(origin)
        if netloc is not None and netloc == headers.get("host", "").strip().lower():
            return None
        if origin.rstrip("/").lower() in self.allowed_origins:
            return None
        return Refusal(403, f"cross-origin request from {origin[:100]} refused")

    def token_refusal(self, method: str, path: str, headers: dict[str, str]) -> Refusal | None:
        """A 401 when the request needs the bearer token and lacks it (or has a wrong one)."""
        if self.token is None or not path.startswith("/api/"):
            return None
        if method in SAFE_METHODS and self.open_reads:
            return None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Refusal(401, "this request needs the header 'Authorization: Bearer <dashboard token>'")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return Refusal(401, "wrong dashboard token")
        return None

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> Refusal | None:
        """The first rule the request breaks, or ``None`` when it may through."""
        if path in _OPEN_PATHS and method in SAFE_METHODS:
            return None  # load-balancer health checks use the host's address; the answer holds no data
        if not self.host_allowed(headers.get("host")):
            host = headers.get("host", "")[:100]
            return Refusal(400, f"host {host!r} is not one this dashboard answers (JOBFLEET_DASHBOARD_ALLOWED_HOSTS)")
        return self.origin_refusal(method, headers) or self.token_refusal(method, path, headers)


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().lower().strip("[]") for v in values if v.strip())


def policy_from_settings(settings: Any) -> SecurityPolicy:
    """The policy of a :class:`jobfleet.settings.Settings`."""
    return SecurityPolicy(
        allowed_hosts=_names(settings.dashboard_allowed_hosts),
        allowed_origins=frozenset(o.strip().rstrip("/").lower() for o in settings.dashboard_allowed_origins),
        token=settings.dashboard_token,
        open_reads=settings.dashboard_open_reads,
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class SecurityMiddleware:
    """ASGI middleware enforcing a :class:`SecurityPolicy` and adding the security headers."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy, docs_paths: tuple[str, ...] = ("/docs",)) -> None:
        self.app = app
        self.policy = policy
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        csp = DOCS_CSP if path in self.docs_paths else CSP
        extra = [(k.encode(), v.encode()) for k, v in {"content-security-policy": csp, **HEADERS}.items()]
        refusal = self.policy.refusal(method, path, _headers(scope))
        if refusal is not None:
            body = json.dumps({"error": refusal.message}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            if refusal.status == 401:
                headers.append((b"www-authenticate", b'Bearer realm="jobfleet dashboard"'))
            await send({"type": "http.response.start", "status": refusal.status, "headers": headers + extra})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
            return
        head = method == "HEAD"
        if head:
            scope = dict(scope, method="GET")

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message, headers=list(message.get("headers", [])) +
                               [(k, v) for k, v in extra if k not in names])
            elif head and message["type"] == "http.response.body":
                message = dict(message, body=b"")
            await send(message)

        await self.app(scope, receive, send_secured)
