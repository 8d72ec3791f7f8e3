"""Worker-test fixtures: ``execution_mode`` runs a test once per execution mode (fork, pool)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.worker.helpers import EXECUTION_MODES, use_execution


@pytest.fixture(params=EXECUTION_MODES)
def execution_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The execution mode (``JOBFLEET_EXECUTION``) of the workers ``worker_env`` starts in this test."""
    use_execution(request.param)
    yield request.param
    use_execution(None)
