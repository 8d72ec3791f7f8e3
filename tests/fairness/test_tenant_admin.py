"""Tenant administration end to end: the `jobfleet tenants` command, the REST endpoints (token, errors),
the tenants page, the Prometheus collector and the autoscaler's observation all see tenants."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from redis import Redis

from autoscaler.observe import QueueObserver
from dashboard.app import create_app
from jobfleet.errors import SubmitError
from jobfleet.settings import Settings, SettingsError, load_settings
from jobfleet.submit import submit
from jobfleet.tenants import check_tenant
from observability.tenant_collector import register_tenant_collector
from tests.conftest import ROOT
from tests.conftest import test_env as child_env
from tests.fairness.helpers import enqueue

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JOB = "tests.fairness.helpers.record"
TOKEN = "fair-token"


def _cli(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobfleet", "tenants", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=child_env(redis_url, tmp_path))


def test_cli_sets_weights_and_caps_and_lists_tenants(redis_url: str, redis: Redis, tmp_path: Path) -> None:
    enqueue(redis, JOB, "acme", 0, tenant="acme", count=3)
    assert _cli(redis_url, tmp_path, "set-weight", "acme", "3").stdout.strip() == "tenant acme: weight 3"
    assert _cli(redis_url, tmp_path, "set-cap", "acme", "2").returncode == 0
    listed = _cli(redis_url, tmp_path, "list", "--queue", "default").stdout
    acme = next(line for line in listed.splitlines() if " acme " in line).split()
    assert acme[:4] == ["default", "acme", "3", "0"] and acme[5:7] == ["3", "2"]
    for args, message in ((("set-weight", "acme", "0"), "must be a finite number > 0"),
                          (("set-weight", "acme", "-2"), "must be a finite number > 0"),
                          (("set-cap", "acme", "0"), "must be >= 1"),
                          (("set-weight", "bad/name", "1"), "tenant 'bad/name' must be")):
        result = _cli(redis_url, tmp_path, *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def secured(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(dashboard_token=TOKEN)), base_url="http://localhost") as client:
        yield client


def test_rest_endpoints_need_the_token_and_reject_bad_input(secured: TestClient, redis: Redis) -> None:
    enqueue(redis, JOB, "acme", 0, tenant="acme", count=2)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.post("/api/tenants/acme/weight", json={"weight": 2}).status_code == 401
    assert secured.post("/api/tenants/acme/weight", json={"weight": 2}, headers=auth).json() == \
        {"tenant": "acme", "weight": 2.0, "cap": None}
    assert secured.post("/api/tenants/acme/cap", json={"cap": 4}, headers=auth).json()["cap"] == 4
    assert secured.get("/api/tenants").status_code == 401  # reads need the token too
    rows = secured.get("/api/tenants", headers=auth).json()
    acme = next(r for r in rows if r["tenant"] == "acme" and r["queue"] == "default")
    assert (acme["queued"], acme["weight"], acme["cap"], acme["rq_queue"]) == (2, 2.0, 4, "default~acme")
    assert acme["entitled"] == 1.0  # the only active tenant of the queue
    for path, body, status, message in (
        ("/api/tenants/acme/weight", {"weight": 0}, 422, "'weight': Input should be greater than 0"),
        ("/api/tenants/acme/weight", {"weight": "x"}, 422, "'weight': Input should be a valid number"),
        ("/api/tenants/acme/cap", {"cap": 0}, 422, "'cap': Input should be greater than or equal to 1"),
        ("/api/tenants/a~b/cap", {"cap": 1}, 422, "path parameter 'tenant': String should match pattern"),
    ):
        response = secured.post(path, json=body, headers=auth)
        assert response.status_code == status and message in response.json()["error"], response.text
    assert secured.get("/api/tenants", params={"queue": "nope"}, headers=auth).status_code == 404
    page = secured.get("/static/tenants.html")
    assert page.status_code == 200 and "/api/tenants" in page.text


def test_metrics_and_autoscaler_count_tenant_queues(redis: Redis) -> None:
    enqueue(redis, JOB, "acme", 0, tenant="acme", count=3)
    enqueue(redis, JOB, "x", 0, count=2)
    registry = CollectorRegistry()
    register_tenant_collector(registry, redis)
    text = generate_latest(registry).decode()
    assert 'jobfleet_tenant_jobs{queue="default",state="queued",tenant="acme"} 3.0' in text
    assert 'jobfleet_tenant_share{kind="entitled",queue="default",tenant="acme"} 0.5' in text
    assert 'jobfleet_tenant_weight{tenant="acme"} 1.0' in text
    (state,) = QueueObserver(redis, ["default"]).read()
    assert state.queued == 5  # the default tenant's 2 and acme's 3


def test_bad_tenant_names_and_settings_are_refused_clearly(redis: Redis) -> None:
    for bad in ("", "a~b", "x" * 65, "sp ace", 7):
        with pytest.raises(ValueError, match="must be 1-64 characters"):
            check_tenant(bad)
    assert check_tenant(None) == "default"
    with pytest.raises(SubmitError, match="tenant 'a~b' must be 1-64 characters"):
        submit("tests.fairness.helpers.record", "x", 0, tenant="a~b", connection=redis,
               settings=load_settings({}))
    for env, message in ((("JOBFLEET_FAIR_RESERVATION", "0.95"), "must be <= 0.9"),
                         (("JOBFLEET_FAIR_HALF_LIFE", "-1"), "must be >= 0"),
                         (("JOBFLEET_PRIORITY_MODE", "random"), "expected one of strict, weighted"),
                         (("JOBFLEET_PRIORITY_WEIGHTS", "high"), "expected queue=weight pairs")):
        with pytest.raises(SettingsError, match=message):
            load_settings(dict([env]))
