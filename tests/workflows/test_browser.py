"""The workflows UI in real Chromium against a real dashboard and a real worker: form, graph, retry, links."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from redis import Redis

from tests.dashboard.conftest import dashboard_server  # noqa: F401  (fixture)
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.worker.helpers import start_worker, worker_env

TOKEN = "wf-browser-token"
J = "tests.workflows.jobs"


def test_submit_through_the_form_watch_it_turn_green_and_retry_a_failed_node(
    dashboard_server: Callable[..., str], redis_url: str, redis: Redis, tmp_path: Path  # noqa: F811
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    url = dashboard_server(JOBFLEET_DASHBOARD_TOKEN=TOKEN)
    with start_worker(worker_env(redis_url, tmp_path), tmp_path, name="ui-w"), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("dialog", lambda dialog: dialog.accept(TOKEN))
            page.goto(url)
            page.click("#wf-new")
            form = page.locator("#wf-form")
            form.locator("input[name=func]").fill(f"{J}.child")
            form.locator("textarea[name=args]").fill('["log:ui", oops]')
            form.locator("input[name=size]").fill("3")
            page.click("#wf-submit")
            expect(page.locator("#wf-form-error")).to_contain_text("args is not valid JSON")
            assert redis.zcard("jobfleet:wf:index") == 0  # validated before sending
            form.locator("input[name=size]").fill("20000")
            form.locator("textarea[name=args]").fill('["log:ui"]')
            page.click("#wf-submit")
            expect(page.locator("#wf-form-error")).to_contain_text("array size must be")
            form.locator("input[name=size]").fill("3")
            form.locator("input[name=tenant]").fill("bad tenant!")
            page.click("#wf-submit")
            expect(page.locator("#wf-form-error")).to_contain_text("tenant may only hold")
            form.locator("input[name=tenant]").fill("acme")
            form.locator("input[name=key]").fill("ui-key-1")
            page.click("#wf-submit")
            page.wait_for_url("**#/workflows/*")
            wid = page.url.rsplit("/", 1)[1]
            summary = httpx.get(f"{url}/api/v1/jobs/{wid}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            assert summary["tenant"] == "acme"
            node = page.locator('#wf-graph g[data-node="task"]')
            expect(node).to_have_attribute("data-status", "succeeded", timeout=30_000)
            expect(node).to_contain_text("✓3")
            expect(page.locator("#wf-status")).to_have_text("succeeded")
            expect(page.locator(f'#wf-list tr[data-workflow="{wid}"] .wf-seg.wf-succeeded')).to_have_count(1)
            expect(page.locator("#wf-tasks tbody tr")).to_have_count(3)

            # a workflow with a failing node, submitted over the API; opened by a pasted link in a fresh tab
            body = {"name": "with-failure", "tasks": [
                {"id": "first", "func": f"{J}.record", "args": ["log:ui2", "first"]},
                {"id": "flaky", "func": f"{J}.fail_unless_flag", "args": ["log:ui2", "flaky"], "retry": 0,
                 "depends_on": ["first"]},
                {"id": "last", "func": f"{J}.record", "args": ["log:ui2", "last"], "depends_on": ["flaky"]}]}
            created = httpx.post(f"{url}/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
            assert created.status_code == 201, created.text
            wid2 = created.json()["id"]
            fresh = browser.new_page(viewport={"width": 1280, "height": 1000})
            fresh.on("dialog", lambda dialog: dialog.accept(TOKEN))
            fresh.goto(f"{url}/#/workflows/{wid2}")
            expect(fresh.locator('#wf-graph g[data-node="flaky"]')).to_have_attribute("data-status", "failed",
                                                                                     timeout=30_000)
            expect(fresh.locator('#wf-graph g[data-node="last"]')).to_have_attribute("data-status", "canceled")
            expect(fresh.locator("#wf-status")).to_have_text("failed")
            redis.set("log:ui2:fixed", 1)
            fresh.click("#wf-retry")
            expect(fresh.locator('#wf-graph g[data-node="flaky"]')).to_have_attribute("data-status", "succeeded",
                                                                                     timeout=30_000)
            expect(fresh.locator('#wf-graph g[data-node="last"]')).to_have_attribute("data-status", "succeeded",
                                                                                    timeout=30_000)
            expect(fresh.locator("#wf-status")).to_have_text("succeeded")
            assert [v.decode() for v in redis.lrange("log:ui2", 0, -1)] == ["first", "flaky", "flaky", "last"]

            task_tab = browser.new_page()  # a fresh context: it asks for the token (reads need it too)
            task_tab.on("dialog", lambda dialog: dialog.accept(TOKEN))
            task_tab.goto(f"{url}/#/tasks/{wid}-0-2")
            expect(task_tab.locator("#wf-task-status")).to_have_text("succeeded")
            expect(task_tab.locator("#wf-detail dl")).to_contain_text("array index2")
        finally:
            browser.close()
