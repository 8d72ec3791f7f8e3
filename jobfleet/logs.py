"""Structured logs: one JSON object per line (ts, level, event, job fields) on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from jobfleet.settings import Settings

LOGGER_NAME = "jobfleet.worker"
JOB_FIELDS = ("job_id", "queue", "function", "attempt", "duration_s", "outcome", "trace_id")


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; jobfleet events carry their fields in ``record.jf``."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        fields: dict[str, Any] = getattr(record, "jf", None) or {}
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "event": fields.get("event") or record.getMessage(),
            "logger": record.name,
        }
        line.update({k: v for k, v in fields.items() if k != "event" and v is not None})
        if not fields and record.name != LOGGER_NAME:
            line["event"] = "library"
            line["message"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable variant: time, level, event and key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The text line for ``record``."""
        fields: dict[str, Any] = getattr(record, "jf", None) or {}
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in fields.items() if k != "event" and v is not None)
        text = f"{stamp} {record.levelname.lower()} {fields.get('event') or record.getMessage()} {extras}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(settings: Settings) -> None:
    """Send every log record (ours and RQ's) to stderr in ``settings.log_format`` at ``settings.log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in ("rq.worker", "rq.job", "rq.scheduler", "rq.queue", "rq.registry"):
        rq_logger = logging.getLogger(name)
        for old in list(rq_logger.handlers):
            rq_logger.removeHandler(old)
        rq_logger.propagate = True
        # RQ is chatty at info (one line per job step); keep its warnings and errors only.
        rq_logger.setLevel(max(logging.WARNING, root.level))


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Emit one structured event (``fields`` with None values are left out)."""
    logging.getLogger(LOGGER_NAME).log(level, event, extra={"jf": {"event": event, **fields}})
