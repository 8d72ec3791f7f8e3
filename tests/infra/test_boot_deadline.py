"""The autoscaler's boot deadline (autoscaler/backends/aws.py ``_check_boot_deadline``) against a local moto
server: an InService instance whose workers never heartbeated is marked Unhealthy once the deadline passes."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from autoscaler.backends.aws import AwsBackend
from tests.autoscaler.test_aws_backend import _group, _make_group, _settings, moto_url  # noqa: F401


def test_a_host_that_never_heartbeats_is_marked_unhealthy_after_the_boot_deadline(
    redis: Redis, redis_url: str, tmp_path: Path, moto_url: str  # noqa: F811
) -> None:
    client = _make_group(moto_url)
    settings = _settings(redis_url, tmp_path, moto_url).replace(boot_deadline=3600.0)
    backend = AwsBackend.from_settings(settings, redis)
    backend.set_desired(1)
    (iid,) = [i["InstanceId"] for i in _group(client)["Instances"]]
    (state,) = backend.fleet()  # just launched, no worker yet: booting, not unhealthy
    assert state.healthy and _group(client)["Instances"][0]["HealthStatus"] == "Healthy"
    backend.settings = settings.replace(boot_deadline=0.001)  # the deadline has passed
    time.sleep(0.01)
    (state,) = backend.fleet()
    assert not state.healthy
    assert _group(client)["Instances"][0]["HealthStatus"] == "Unhealthy"
    assert iid in backend.marked_unhealthy
