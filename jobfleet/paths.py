"""Where child processes find jobfleet and the app's job modules."""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The directory that holds the ``jobfleet`` package: the repository, or site-packages when installed."""


def child_pythonpath(existing: str | None = None) -> str:
    """PYTHONPATH for a worker or component started by the local fleet or the local autoscaler backend.

    The current directory comes first, so an app's job modules (``myapp.tasks``) import in workers started
    from the app's directory; then jobfleet's own source root, for a repository checkout that is not installed.
    """
    parts = [os.getcwd(), str(SOURCE_ROOT), *(existing.split(os.pathsep) if existing else [])]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))
