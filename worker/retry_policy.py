"""Which exceptions are permanent (never retried); the default backoff itself lives in ``jobfleet.retry``."""

from __future__ import annotations

import builtins
import importlib

from jobfleet.errors import PermanentError


def resolve_exception_types(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """Exception classes for dotted or builtin names; a clear ValueError for a name that is not one."""
    found: list[type[BaseException]] = [PermanentError]
    for name in names:
        if "." in name:
            module_name, _, attr = name.rpartition(".")
            try:
                candidate = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError):
                raise ValueError(f"JOBFLEET_PERMANENT_ERRORS: cannot import {name!r}") from None
        else:
            candidate = getattr(builtins, name, None)
        if not (isinstance(candidate, type) and issubclass(candidate, BaseException)):
            raise ValueError(f"JOBFLEET_PERMANENT_ERRORS: {name!r} is not an exception class")
        found.append(candidate)
    return tuple(dict.fromkeys(found))


def is_permanent(exc_type: type[BaseException] | None, permanent: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc_type`` is (a subclass of) one of the permanent exception types."""
    return exc_type is not None and issubclass(exc_type, permanent)
