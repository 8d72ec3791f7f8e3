"""jobfleet: the app-facing API and the shared core of every jobfleet component.

    from jobfleet import submit, submit_many, get_job, report_progress

Apps install this package alone (``pip install jobfleet``); the worker, autoscaler, dashboard and
observability components sit on top of it and are installed with extras.
"""

from __future__ import annotations

from jobfleet.errors import PermanentError, SubmitError
from jobfleet.progress import get_progress, report_progress
from jobfleet.settings import Settings, SettingsError, load_settings
from jobfleet.submit import get_job, submit, submit_many

__all__ = [
    "PermanentError",
    "Settings",
    "SettingsError",
    "SubmitError",
    "get_job",
    "get_progress",
    "load_settings",
    "report_progress",
    "submit",
    "submit_many",
]
