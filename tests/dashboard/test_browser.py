"""The web UI in real Chromium against a real ``python -m dashboard`` (uvicorn) on a free port."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from dashboard.decisions import DECISIONS_STREAM
from tests.dashboard import jobs
from tests.dashboard.conftest import BusyWorker, Population, run_burst

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
TOKEN = "browser-test-token"


def require_chromium() -> None:
    """Skip without a browser, except in CI (CI=true) where a missing browser is a failure."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium; `make test` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def dashboard_url(dashboard_server: Callable[..., str]) -> str:
    """A real dashboard whose write actions need ``TOKEN``."""
    return dashboard_server(JOBFLEET_DASHBOARD_TOKEN=TOKEN)


def test_page_shows_counts_and_requeues_a_failed_job(
    dashboard_url: str, population: Population, busy_worker: BusyWorker, redis: Redis, tmp_path: Path
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    for i in range(3):
        redis.xadd(DECISIONS_STREAM, {
            "ts": str(time.time() - 6 + 3 * i), "desired": str(2 + i), "in_service": "2", "booting": str(i),
            "busy": "2", "queued": str(4 + 20 * i), "started": "2", "reason": f"p95 wait forecast {12 * i} s",
            "drained": json.dumps([]), "dry_run": "0", "inputs": json.dumps({}),
        })
    hostile = "<img src=x onerror=alert(1)><b>bold</b>"
    low = Queue("low", connection=redis)
    low.enqueue(jobs.boom, hostile)
    run_burst(redis, low)
    victim = population.failed[1]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            prompts: list[str] = []

            def give_token(dialog: object) -> None:
                prompts.append(dialog.message)  # type: ignore[attr-defined]
                dialog.accept(TOKEN)  # type: ignore[attr-defined]

            page.on("dialog", give_token)
            page.goto(dashboard_url)
            default_row = page.locator('#queues tr[data-queue="default"]')
            expect(default_row.locator('td[data-state="queued"]')).to_have_text("4")
            expect(default_row.locator('td[data-state="failed"]')).to_have_text("3")
            expect(default_row.locator('td[data-state="finished"]')).to_have_text("2")
            page.locator("#failed-section summary").click()  # collapsed by default
            expect(page.locator("#failed tbody tr")).to_have_count(4)
            expect(page.locator("#failed")).to_contain_text(f"RuntimeError: {hostile}")  # shown as text, not HTML
            expect(page.locator("#failed img")).to_have_count(0)
            expect(page.locator("#decisions tbody tr")).to_have_count(3)
            expect(page.locator("#decisions tbody tr").first).to_contain_text("p95 wait forecast 24 s")

            # The live fleet worker, its instance and its job; the running job's progress in its detail view.
            worker_row = page.locator("#workers tbody tr").first
            expect(worker_row).to_contain_text(busy_worker.name)
            expect(worker_row).to_contain_text("busy")
            expect(worker_row).to_contain_text(busy_worker.instance_id)
            worker_row.locator("a").click()
            expect(page.locator("#job-progress span")).to_have_text("25 % · waiting for the test")
            page.locator("#job-close").click()

            # Job detail view shows the traceback.
            page.locator(f'#failed tr[data-job="{victim.id}"] a').click()
            expect(page.locator("#job-exception")).to_contain_text("RuntimeError: failure 1")
            page.screenshot(path=str(tmp_path / "dashboard-detail.png"))
            page.locator("#job-close").click()

            # Reads need the token too: the page asked for it once on load; the requeue reuses it.
            page.locator(f'#failed tr[data-job="{victim.id}"] button.requeue').click()
            expect(page.locator(f'#failed tr[data-job="{victim.id}"]')).to_have_count(0)
            expect(page.locator("#failed tbody tr")).to_have_count(3)
            expect(default_row.locator('td[data-state="failed"]')).to_have_text("2")
            expect(default_row.locator('td[data-state="queued"]')).to_have_text("5")
            expect(page.locator("#banner")).to_contain_text(f"Requeued job {victim.id}")
            assert len(prompts) == 1 and "token" in prompts[0].lower()
            assert victim.id in [i.decode() for i in redis.lrange("rq:queue:default", 0, -1)]

            # Browsing a state from the queue table lists the jobs with paging info.
            default_row.locator('td[data-state="queued"] a').click()
            expect(page.locator("#browse-title")).to_have_text("default · queued (5)")
            expect(page.locator("#browse-jobs tbody tr")).to_have_count(5)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
