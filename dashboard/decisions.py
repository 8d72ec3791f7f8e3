"""Recent autoscaler decisions, read from the Redis stream the autoscaler appends to.

The dashboard does not import the autoscaler: it reads ``jobfleet:autoscaler:decisions`` directly.
Fields: ts, desired, in_service, booting, busy, queued, started, reason, drained (JSON list),
dry_run, inputs (JSON). A field that does not parse is returned as its raw text rather than failing.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from dashboard.errors import ApiError

DECISIONS_STREAM = "jobfleet:autoscaler:decisions"
_INTS = ("desired", "in_service", "booting", "busy", "queued", "started")
_JSON = ("drained", "inputs")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _parse(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": entry_id}
    for name, raw in fields.items():
        value: Any = raw
        try:
            if name == "ts":
                value = float(raw)
            elif name in _INTS:
                value = int(float(raw))
            elif name in _JSON:
                value = json.loads(raw)
            elif name == "dry_run":
                value = raw.strip().lower() in ("1", "true", "yes", "on")
        except ValueError:
            value = raw
        row[name] = value
    if "ts" not in row:  # fall back to the stream id's millisecond clock
        row["ts"] = int(entry_id.split("-")[0]) / 1000.0
    return row


def recent_decisions(connection: Redis, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` decisions, newest first (empty when the autoscaler has not run yet)."""
    try:
        entries: list[Any] = connection.xrevrange(DECISIONS_STREAM, "+", "-", count=limit) or []
    except ResponseError as exc:  # e.g. the key holds something other than a stream
        raise ApiError(500, f"cannot read {DECISIONS_STREAM}: {exc}") from None
    return [
        _parse(_text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()}) for entry_id, fields in entries
    ]
