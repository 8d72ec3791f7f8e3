"""Hardening of the web UI in real Chromium: CSRF from a foreign page, framing, token-protected reads,
odd queue names, and the bulk/delete/search/paging/hash-link features."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from redis import Redis
from rq import Queue

from jobfleet.embedded_redis import free_port
from tests.dashboard import jobs
from tests.dashboard.conftest import Population, run_burst
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

TOKEN = "hardening-token"


@contextmanager
def serve_html(pages: dict[str, str], port: int) -> Iterator[str]:
    """Serve ``pages`` (path -> HTML) from another origin (loopback, another port) for the length of the block."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "not here").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def foreign_pages(target: str, job_id: str) -> dict[str, str]:
    """A hostile site: ``/`` fetches a write and frames the dashboard; ``/frame`` runs in a sandboxed iframe
    (so its requests carry ``Origin: null``) and both fetches and form-POSTs writes."""
    cancel = f"{target}/api/jobs/{job_id}/cancel"
    frame = (
        "<!doctype html><html><body>"
        f"<script>fetch('{cancel}', {{method: 'POST'}}).catch(() => {{}});"
        f"fetch('{target}/api/jobs/{job_id}', {{method: 'DELETE'}}).catch(() => {{}});</script>"
        f"<form id=f method=POST action='{cancel}'></form><script>document.getElementById('f').submit()</script>"
        "</body></html>"
    )
    top = (
        "<!doctype html><html><body><h1>cute cats</h1>"
        '<iframe id="sandboxed" sandbox="allow-scripts allow-forms" src="/frame"></iframe>'
        f"<script>fetch('{cancel}', {{method: 'POST', mode: 'no-cors'}});</script>"
        f'<iframe id="framed" src="{target}/"></iframe>'
        "</body></html>"
    )
    return {"/": top, "/frame": frame}


def attack(url: str, job_id: str, port: int) -> list[tuple[str, int | str, str | None]]:
    """Open the hostile page against dashboard ``url`` in Chromium; (method, status or failure, Origin) per write."""
    from playwright.sync_api import sync_playwright

    outcomes: list[tuple[str, int | str, str | None]] = []
    with sync_playwright() as pw, serve_html(foreign_pages(url, job_id), port) as foreign:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()

            def done(request: Any, outcome: int | str) -> None:
                if "/api/jobs/" in request.url and request.method in ("POST", "DELETE"):
                    outcomes.append((request.method, outcome, request.headers.get("origin")))

            context.on("response", lambda response: done(response.request, response.status))
            context.on("requestfailed", lambda request: done(request, request.failure or "failed"))
            page = context.new_page()
            page.goto(f"{foreign}/")
            deadline = time.monotonic() + 30
            # the page's fetch; the sandboxed frame's fetch, delete (preflight) and form post
            while len(outcomes) < 3 or ("POST", 403, "null") not in outcomes:
                assert time.monotonic() < deadline, outcomes
                page.wait_for_timeout(100)
            page.wait_for_timeout(500)
            assert page.frame_locator("#framed").locator("#queues").count() == 0  # frame-ancestors 'none'
        finally:
            browser.close()
    return outcomes


def test_foreign_page_cannot_change_anything_or_frame_the_dashboard(
    dashboard_server: Callable[..., str], population: Population, redis: Redis
) -> None:
    require_chromium()
    url = dashboard_server()  # the default: no token at all
    victim = population.queued[0]
    outcomes = attack(url, victim.id, free_port())
    # No write succeeded: refused (403), or failed in the browser (CORS, CORP, a preflight the server refuses).
    assert not any(isinstance(status, int) and status < 400 for _, status, _ in outcomes), outcomes
    assert ("POST", 403, "null") in outcomes  # the sandboxed frame's form post really sent Origin: null
    assert victim.id in Queue("default", connection=redis).get_job_ids()
    assert redis.exists(victim.key) and httpx.get(f"{url}/api/jobs/{victim.id}").json()["status"] == "queued"


def test_the_same_attack_cancels_a_job_when_its_origin_is_allow_listed(
    dashboard_server: Callable[..., str], redis: Redis
) -> None:
    """Control for the test above: the hostile page is live; only the origin check stops it."""
    require_chromium()
    job = Queue("default", connection=redis).enqueue(jobs.add, 1, 2)
    port = free_port()
    url = dashboard_server(JOBFLEET_DASHBOARD_ALLOWED_ORIGINS=f"http://127.0.0.1:{port}")
    attack(url, job.id, port)
    assert httpx.get(f"{url}/api/jobs/{job.id}").json()["status"] == "canceled"


def test_token_reads_odd_queue_names_bulk_actions_and_navigation(
    dashboard_server: Callable[..., str], redis: Redis
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a busy shared machine: poll longer, never sleep
    url = dashboard_server(JOBFLEET_DASHBOARD_TOKEN=TOKEN)
    assert httpx.get(f"{url}/api/queues").status_code == 401  # reads need the token
    spaced, slavic = Queue("my queue", connection=redis), Queue("очередь/ü", connection=redis)
    for queue, count in ((spaced, 3), (slavic, 1)):
        for i in range(count):
            queue.enqueue(jobs.boom, f"{queue.name} failure {i}")
        run_burst(redis, queue)
    with redis.pipeline() as pipe:
        many = [spaced.enqueue(jobs.add, i, 0, pipeline=pipe).id for i in range(60)]
        pipe.execute()
    later = spaced.enqueue_in(timedelta(hours=2), jobs.add, 1, 1)
    doomed = many[-1]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            dialogs: list[tuple[str, str]] = []

            def answer(dialog: Any) -> None:
                dialogs.append((dialog.type, dialog.message))
                dialog.accept(TOKEN) if dialog.type == "prompt" else dialog.accept()

            page.on("dialog", answer)
            # A fresh load of a #queue link opens that view (and asks for the token once).
            page.goto(f"{url}/#queue/{'my%20queue'}/queued/2")
            expect(page.locator("#browse-title")).to_have_text("my queue · queued (60)")
            expect(page.locator("#page-info")).to_have_text("26\u201350 of 60")
            expect(page.locator("#page-count")).to_have_text("of 3")
            assert [m for kind, m in dialogs if kind == "prompt"] == ["Dashboard token (JOBFLEET_DASHBOARD_TOKEN):"]
            first = page.locator("#browse-jobs tbody tr").first.locator("td").nth(3)
            expect(first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))  # dates in timestamps
            page.locator("#page-number").fill("3")
            page.locator("#page-form button").click()
            expect(page.locator("#page-info")).to_have_text("51\u201360 of 60")
            assert page.evaluate("location.hash") == "#queue/my%20queue/queued/3"

            # Both odd queues are listed; their failed jobs show once the collapsed section is opened.
            expect(page.locator('#queues tr[data-queue="очередь/ü"] td[data-state="failed"]')).to_have_text("1")
            expect(page.locator("#failed tbody tr")).to_have_count(0)  # collapsed: not even fetched
            page.locator("#failed-section summary").click()
            expect(page.locator("#failed tbody tr")).to_have_count(4)
            expect(page.locator("#failed")).to_contain_text("очередь/ü failure 0")
            expect(page.locator("#status")).to_contain_text("updated")

            # Scheduled jobs show when they run.
            page.locator('#queues tr[data-queue="my queue"] td[data-state="scheduled"] a').click()
            expect(page.locator("#browse-when")).to_have_text("runs at")
            expect(page.locator(f'#browse-jobs tr[data-job="{later.id}"]')).to_have_count(1)

            # Requeue all failed of "my queue" in the background: progress in the banner, then done.
            page.get_by_role("button", name="Requeue all 3 failed in my queue").click()
            expect(page.locator("#banner")).to_contain_text("Requeueing failed jobs of my queue: done, requeued 3")
            expect(page.locator('#queues tr[data-queue="my queue"] td[data-state="queued"]')).to_have_text("63")

            # Search by job id opens its view; delete asks for confirmation, then the job is gone.
            page.locator("#search-id").fill(doomed)
            page.locator("#search button").click()
            expect(page.locator("#job-id")).to_have_text(doomed)
            page.locator("#job-delete").click()
            expect(page.locator("#banner")).to_contain_text(f"Deleted job {doomed}.")
            assert any(kind == "confirm" and doomed in message for kind, message in dialogs)
            assert not redis.exists(f"rq:job:{doomed}")

            # Empty the queue (confirmed): every queued job of it is deleted.
            page.locator('#queues tr[data-queue="my queue"] button.empty-queue').click()
            expect(page.locator("#banner")).to_contain_text("Emptying my queue: done, deleted 62 queued job(s)")
            expect(page.locator('#queues tr[data-queue="my queue"] td[data-state="queued"]')).to_have_text("0")
            assert spaced.count == 0

            # A job link opens on a fresh load too; the API docs render from local assets under the CSP.
            page.goto(f"{url}/#job/{later.id}")
            expect(page.locator("#job-id")).to_have_text(later.id)
            expect(page.locator("#job-fields")).to_contain_text("scheduled for")
            page.goto(f"{url}/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("jobfleet dashboard")
        finally:
            browser.close()
