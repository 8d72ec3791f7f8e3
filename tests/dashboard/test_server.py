"""``python -m dashboard`` as a real process: serves the page and the API; refuses bad settings clearly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.conftest import test_env as child_env
from tests.dashboard.conftest import Population


def test_serves_page_static_files_and_api(dashboard_server: Callable[..., str], population: Population) -> None:
    url = dashboard_server()
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<title>jobfleet dashboard</title>" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert httpx.get(url + asset).status_code == 200, asset
    queues = httpx.get(url + "/api/queues").json()
    assert next(q for q in queues if q["name"] == "default")["failed"] == 3
    # No token configured: a same-host POST works.
    response = httpx.post(f"{url}/api/jobs/{population.failed[0].id}/requeue")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert httpx.get(url + "/docs").status_code == 200


def test_bad_setting_exits_with_a_clear_message(redis_url: str, tmp_path: Path) -> None:
    env = child_env(redis_url, tmp_path, JOBFLEET_DASHBOARD_PORT="http")
    done = subprocess.run([sys.executable, "-m", "dashboard"], cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"JOBFLEET_DASHBOARD_PORT='http': expected a whole number" in done.stderr


def test_missing_redis_url_exits_with_a_clear_message(redis_url: str, tmp_path: Path) -> None:
    env = child_env(redis_url, tmp_path, REDIS_URL="")
    done = subprocess.run([sys.executable, "-m", "dashboard"], cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"REDIS_URL is empty" in done.stderr
