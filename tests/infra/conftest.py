"""Fixtures for the Pulumi program tests: the real program run once under mocks with the dev stack."""

from __future__ import annotations

import pytest

from tests.infra.harness import Program, dev_config, run_program


@pytest.fixture(scope="module")
def dev() -> Program:
    """The program as `pulumi up` would run it for Pulumi.dev.yaml (plus test secrets)."""
    return run_program(dev_config())
