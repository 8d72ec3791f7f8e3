"""Static checks of the Grafana / Prometheus / OTel collector artefacts (the live check is test_prometheus_proof)."""

from __future__ import annotations

import json
import re

import yaml

from observability import metrics
from tests.observability.artefacts import DASHBOARDS, OBS, all_exprs


def test_every_artefact_path_exists_and_parses() -> None:
    for rel in ("grafana/provisioning/datasources/datasources.yaml", "grafana/provisioning/dashboards/dashboards.yaml",
                "prometheus/prometheus-local.yml", "prometheus/prometheus-aws.yml", "prometheus/alerts.yml",
                "otel/collector.yaml"):
        assert isinstance(yaml.safe_load((OBS / rel).read_text()), dict), rel
    assert [p.name for p in DASHBOARDS] == ["jobfleet.json"]


def test_dashboard_covers_the_issue_and_uses_the_provisioned_datasource() -> None:
    dash = json.loads(DASHBOARDS[0].read_text())
    datasources = yaml.safe_load((OBS / "grafana/provisioning/datasources/datasources.yaml").read_text())
    uids = {d["uid"]: d["type"] for d in datasources["datasources"]}
    assert set(uids.values()) == {"prometheus", "tempo"}
    titles = " | ".join(p["title"] for p in dash["panels"])
    for needed in ("Queue depth", "Oldest queued job age", "Throughput", "Failure rate", "Wait time", "Run time",
                   "desired vs in service vs busy", "Dead-letter"):
        assert needed in titles, needed
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert uids[panel["datasource"]["uid"]] == "prometheus"
    assert any(a.get("expr") for a in dash["annotations"]["list"]), "decision annotations missing"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_worker_metric_names_used_in_expressions_exist() -> None:
    """Every jobfleet_ worker/queue metric an expression names is one we export (autoscaler's are checked live)."""
    exported = {
        "jobfleet_jobs_finished_total", "jobfleet_job_run_seconds_bucket", "jobfleet_job_wait_seconds_bucket",
        "jobfleet_job_retries_total", "jobfleet_jobs_recovered_total", "jobfleet_worker_busy_slots",
        "jobfleet_worker_slots", "jobfleet_queue_jobs", "jobfleet_queue_oldest_job_age_seconds",
        "jobfleet_queue_workers", "jobfleet_target_wait_seconds", "jobfleet_queue_exporter_up",
    }
    assert metrics.JOBS_FINISHED._name + "_total" in exported
    for expr in all_exprs():
        for name in re.findall(r"\bjobfleet_[a-z_]+", expr.promql):
            assert name in exported or name.startswith("jobfleet_autoscaler_"), f"{expr.where}: {name}"
