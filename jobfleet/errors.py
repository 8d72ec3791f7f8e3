"""Exceptions of the worker package (what went wrong is always in the message)."""

from __future__ import annotations


class PermanentError(Exception):
    """Raise from a job to fail it at once: it is never retried and goes straight to the dead-letter registry."""


class SubmitError(ValueError):
    """A job could not be submitted because its input is invalid; the message says what is wrong."""


class DeadLetterError(LookupError):
    """A dead-letter operation named a job or queue that does not exist (or is not dead-lettered)."""
