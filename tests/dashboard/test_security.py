"""The dashboard's front door (dashboard.security): Host allow list, origin check, headers, HEAD."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis
from rq import Queue

from dashboard.app import create_app
from dashboard.security import SecurityPolicy, host_name
from jobfleet.settings import Settings, load_settings
from tests.dashboard.conftest import Population


def test_host_header_outside_the_allow_list_is_refused(client: TestClient, population: Population) -> None:
    for host in ("evil.example", "evil.example:8080", "localhost.evil.example"):
        response = client.get("/api/queues", headers={"Host": host})
        assert response.status_code == 400, host
        assert "JOBFLEET_DASHBOARD_ALLOWED_HOSTS" in response.json()["error"]
        assert "default" not in response.text
    for host in ("localhost", "localhost:8080", "127.0.0.1:9", "[::1]:8080"):
        assert client.get("/api/queues", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_setting(settings: Settings) -> None:
    assert load_settings({}).dashboard_allowed_hosts == ("localhost", "127.0.0.1", "::1")
    app = create_app(settings.replace(dashboard_allowed_hosts=("dash.example.com",)))
    with TestClient(app, base_url="http://dash.example.com") as named:
        assert named.get("/api/queues").status_code == 200
        assert named.get("/api/queues", headers={"Host": "localhost"}).status_code == 400
    with TestClient(create_app(settings.replace(dashboard_allowed_hosts=("*",))), base_url="http://x.y") as anyhost:
        assert anyhost.get("/api/queues").status_code == 200


def test_writes_from_other_origins_and_opaque_origins_are_refused(
    client: TestClient, population: Population, redis: Redis
) -> None:
    job = population.queued[0]
    for headers in ({"Origin": "null"}, {"Origin": "http://evil.example"}, {"Origin": "http://localhost.evil.example"},
                    {"Origin": "https://localhost:8443"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "file://"}):
        for method, path in (("POST", f"/api/jobs/{job.id}/cancel"), ("DELETE", f"/api/jobs/{job.id}"),
                             ("POST", "/api/queues/default/requeue-failed")):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 403, (headers, method, path)
    assert job.id in Queue("default", connection=redis).get_job_ids()  # nothing happened
    same = client.post(f"/api/jobs/{job.id}/cancel", headers={"Origin": "http://localhost"})
    assert same.status_code == 200 and same.json()["status"] == "canceled"


def test_allow_listed_origin_may_write(settings: Settings, population: Population) -> None:
    app = create_app(settings.replace(dashboard_allowed_origins=("https://ops.example.com",)))
    with TestClient(app, base_url="http://localhost") as client:
        job = population.failed[0]
        ok = client.post(f"/api/jobs/{job.id}/requeue", headers={"Origin": "https://ops.example.com"})
        assert ok.status_code == 200
        assert client.post(f"/api/jobs/{job.id}/requeue", headers={"Origin": "null"}).status_code == 403


def test_security_headers_on_every_response(client: TestClient) -> None:
    for path in ("/", "/api/queues", "/static/app.js", "/api/jobs/nope", "/no-such-page", "/docs"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self';" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    refused = client.get("/", headers={"Host": "evil.example"}).headers
    assert refused["x-frame-options"] == "DENY"


def test_head_answers_like_get_without_a_body(client: TestClient, population: Population) -> None:
    for path in ("/", "/api/queues", "/healthz", "/static/app.js", "/docs", f"/api/jobs/{population.failed[0].id}"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/api/jobs/nope").status_code == 404


def test_docs_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/swagger-ui/swagger-ui-bundle.js" in page and "//" not in page.replace("://", "")
    assert "cdn" not in page.lower()
    assert client.get("/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "jobfleet dashboard"


def test_policy_is_a_pure_decision() -> None:
    policy = SecurityPolicy(frozenset({"dash.internal"}), frozenset({"https://ops.example"}), token="t")
    headers = {"host": "dash.internal:8080", "authorization": "Bearer t"}
    assert policy.refusal("GET", "/api/queues", headers) is None
    assert policy.refusal("POST", "/api/x", {**headers, "origin": "http://dash.internal:8080"}) is None
    assert policy.refusal("POST", "/api/x", {**headers, "origin": "https://ops.example/"}) is None
    refusal = policy.refusal("POST", "/api/x", {**headers, "origin": "null"})
    assert refusal is not None and refusal.status == 403
    refusal = policy.refusal("GET", "/api/x", {"host": "dash.internal"})
    assert refusal is not None and refusal.status == 401
    assert policy.refusal("GET", "/healthz", {"host": "dash.internal"}) is None
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM:1") == "example.com"
