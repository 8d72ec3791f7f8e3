"""A bounded schemathesis run over the whole API: no server errors, responses as the schema documents."""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from redis import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dashboard.app import create_app
from jobfleet.settings import Settings
from tests.dashboard.conftest import Population

#: Operations whose bodies are also validated beyond their schema (a workflow's graph must be acyclic, its
#: functions importable...): a schema-valid body may rightly get a 422 there, so only that check is skipped.
SEMANTIC = {"POST /api/v1/jobs"}
#: Readiness answers a documented 503 while no worker heartbeat is fresh (none runs in this test).
NOT_READY = {"GET /readyz"}

EXCLUDED: dict[str, list[Any]] = {}

#: Examples per operation and mode (positive + negative): ~25 operation/mode pairs x 20 take ~20 s here.
EXAMPLES = 20


def test_api_conforms_to_its_schema(settings: Settings, population: Population, redis: Redis) -> None:
    app = create_app(settings.replace(dashboard_allowed_hosts=("testserver", "localhost")), connection=redis)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    failures: dict[str, str] = {}
    calls = 0
    for operation, mode in itertools.product(operations, list(GenerationMode)):
        if mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()):
            continue  # nothing to make invalid

        EXCLUDED[operation.label] = [positive_data_acceptance] if operation.label in SEMANTIC else []
        if operation.label in NOT_READY:
            EXCLUDED[operation.label].append(not_a_server_error)

        @given(case=operation.as_strategy(mode))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                             derandomize=True, database=None)
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(excluded_checks=EXCLUDED[case.operation.label])

        try:
            run()
        except Exception as exc:  # collected, so one run reports every failing operation
            failures[f"{operation.label} ({mode.value})"] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert calls >= len(operations) * 10  # both modes ran real examples
