"""User data rendered by the real program: shellcheck-clean, entry points that exist, settings that parse."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.userdata import MAX_USER_DATA_BYTES, UserDataError, env_file, render
from jobfleet.settings import Settings, load_settings
from tests.infra.harness import ROOT, TEST_SECRETS, Program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROLES = ("worker", "monitoring", "dashboard", "grafana")
ENTRY_POINTS = {"worker": "worker", "monitoring": "autoscaler", "dashboard": "dashboard"}


def shellcheck_binary() -> str:
    """Path of shellcheck; a clear failure under CI=true when missing, a skip elsewhere."""
    path = shutil.which("shellcheck")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck is not installed but CI=true: install the Debian package `shellcheck` "
                        "(`make system-deps` does it as root)")
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    return path


def user_data(program: Program, role: str) -> str:
    if role == "worker":
        lt = program.one("aws:ec2/launchTemplate:LaunchTemplate")
        return base64.b64decode(lt.inputs["userData"]).decode()
    return str(program.one("aws:ec2/instance:Instance", f"{role}-instance").inputs["userData"])


def heredoc(text: str, marker: str) -> str:
    """The body of the quoted heredoc ``<<'MARKER'`` in ``text``."""
    match = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", text, re.S)
    assert match, f"no heredoc {marker}"
    return match.group(1)


def env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in heredoc(text, "ENVFILE").splitlines())


def _shellcheck(script: str, name: str) -> None:
    result = subprocess.run(
        [shellcheck_binary(), "--shell=bash", "--severity=style", "-"], input=script.encode(),
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, f"shellcheck on {name}:\n{result.stdout.decode()}{result.stderr.decode()}"


@pytest.mark.parametrize("role", ROLES)
def test_user_data_shape(dev: Program, role: str) -> None:
    text = user_data(dev, role)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "set -euo pipefail" in lines[:6]
    assert len(text.encode()) <= MAX_USER_DATA_BYTES
    assert "@@" not in text
    assert not any(secret in text for secret in TEST_SECRETS.values())


@pytest.mark.parametrize("role", ROLES)
def test_user_data_passes_shellcheck(dev: Program, role: str) -> None:
    text = user_data(dev, role)
    _shellcheck(text, role)
    for marker in ("DRAIN", "FETCH", "LAUNCHHOOK", "SELFCHECK"):
        if f"<<'{marker}'" in text:
            _shellcheck(heredoc(text, marker), f"{role}/{marker}")


def test_shellcheck_catches_a_broken_script() -> None:
    with pytest.raises(AssertionError, match="SC2086"):
        _shellcheck("#!/bin/bash\nset -euo pipefail\nrm -rf $1/tmp\n", "broken")


def test_missing_shellcheck_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="shellcheck is not installed but CI=true"):
        shellcheck_binary()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        shellcheck_binary()


@pytest.mark.parametrize("role", list(ENTRY_POINTS))
def test_entry_points_exist_in_this_repo(dev: Program, role: str) -> None:
    text = user_data(dev, role)
    package = ENTRY_POINTS[role]
    assert re.search(rf"ExecStart=/opt/jobfleet/current/\.venv/bin/python -m {package}\b", text)
    assert (ROOT / package / "__main__.py").is_file(), f"`python -m {package}` has no {package}/__main__.py"
    members = dev.one("aws:s3/bucketObjectv2:BucketObjectv2", "app").inputs["source"].path
    assert Path(members).is_file()


def test_autoscaler_accepts_the_aws_backend_flag(dev: Program) -> None:
    assert "-m autoscaler --backend aws" in user_data(dev, "monitoring")
    sources = " ".join(p.read_text() for p in (ROOT / "autoscaler").glob("*.py"))
    assert "--backend" in sources, "autoscaler has no --backend option"


@pytest.mark.parametrize("role", list(ENTRY_POINTS))
def test_host_environment_is_valid_for_worker_settings(dev: Program, role: str) -> None:
    env = env_of(user_data(dev, role))
    known = {f.metadata["env"] for f in Settings.__dataclass_fields__.values()}
    unknown = {k for k in env if not k.startswith("OTEL_")} - known
    assert unknown == set(), f"{role} sets variables worker/settings.py does not read: {unknown}"
    settings = load_settings(env)  # raises SettingsError on any bad value
    assert settings.redis_url is not None and settings.redis_url.startswith("rediss://master.")
    assert settings.redis_ssm_parameter == "/jobfleet/dev/redis-auth-token"
    assert settings.aws_region == "eu-west-1"
    if role == "monitoring":
        assert settings.autoscaler_backend == "aws" and settings.asg_name == "jobfleet-dev-workers"
        assert (settings.autoscaler_min, settings.autoscaler_max) == (1, 10)
    if role == "dashboard":
        assert settings.dashboard_host == "127.0.0.1" and settings.dashboard_port == 8080  # only the SSM tunnel
    if role == "worker":
        assert settings.slots_per_instance == 2 and str(settings.metrics_dir) == "/run/jobfleet/metrics"
        assert settings.metrics_port == 9121


def test_worker_units_stop_gracefully_within_the_job_timeout(dev: Program) -> None:
    text = user_data(dev, "worker")
    unit = heredoc(text, "UNIT")
    assert "KillSignal=SIGTERM" in unit and "KillMode=mixed" in unit
    stop = int(re.search(r"TimeoutStopSec=(\d+)", unit).group(1))  # type: ignore[union-attr]
    assert stop >= 180 and stop >= 600  # job timeout and shutdown deadline of the dev stack
    hook = next(h.inputs for h in dev.of_type("aws:autoscaling/lifecycleHook:LifecycleHook")
                if h.inputs["lifecycleTransition"].endswith("TERMINATING"))
    assert hook["heartbeatTimeout"] > stop
    assert "jobfleet-worker@.service" in text and 'units+=("jobfleet-worker@${slot}.service")' in text
    drain = heredoc(text, "DRAIN")
    assert "readonly ASG_NAME=jobfleet-dev-workers" in drain and f"readonly HOOK_NAME={hook['name']}" in drain
    assert "target-lifecycle-state" in drain and "complete-lifecycle-action" in drain


def test_secrets_reach_hosts_only_by_parameter_name(dev: Program) -> None:
    dashboard = user_data(dev, "dashboard")
    assert "JOBFLEET_DASHBOARD_TOKEN=/jobfleet/dev/dashboard-token" in dashboard
    assert "aws ssm get-parameter --with-decryption" in heredoc(dashboard, "FETCH")
    grafana = user_data(dev, "grafana")
    assert "GF_SECURITY_ADMIN_PASSWORD=/jobfleet/dev/grafana-admin-password" in grafana


def test_grafana_host_uses_the_observability_files(dev: Program) -> None:
    text = user_data(dev, "grafana")
    for path in (
        "observability/grafana/provisioning", "observability/grafana/dashboards",
        "observability/prometheus/prometheus-aws.yml", "observability/otel/collector.yaml",
    ):
        assert path in text, path
        assert (ROOT / path).exists(), f"{path} is referenced by the Grafana host but missing from the repo"
    assert (ROOT / "observability/prometheus/alerts.yml").is_file()
    assert "/var/lib/grafana/dashboards/jobfleet" in text
    assert "/var/lib/grafana/dashboards/jobfleet" in (
        ROOT / "observability/grafana/provisioning/dashboards/dashboards.yaml").read_text()
    assert "BindReadOnlyPaths=/opt/jobfleet/observability/observability/grafana/dashboards:" \
           "/var/lib/grafana/dashboards/jobfleet" in text
    for home in ("grafana-12.1.1", "prometheus-3.5.0", "otelcol-contrib-0.132.0", "tempo-2.8.2"):
        assert f"install_archive /opt/jobfleet/{home} vendor/" in text


def test_renderer_refuses_missing_and_unsafe_values() -> None:
    with pytest.raises(UserDataError, match="missing values"):
        render("drain.sh", {"AWS_REGION": "x"})
    with pytest.raises(UserDataError, match="unused values"):
        render("fetch-secret.sh", {"AWS_REGION": "x", "EXTRA": "y"})
    with pytest.raises(UserDataError, match="contains a newline"):
        env_file({"REDIS_URL": "rediss://x\nrm -rf /"})
    with pytest.raises(UserDataError, match="not allowed"):
        env_file({"bad key": "x"})


def test_warm_pool_has_its_launch_hook_and_the_user_data_tells_pool_entry_from_start() -> None:
    """Issue 14: warmPoolMax > 0 adds a Stopped warm pool (reused on scale-in). The group's one launch hook
    (a LifecycleHook resource, ABANDON by default) is then answered on every boot by jobfleet-launch-hook;
    worker slots carry an ExecCondition that is false on Warmed:*."""
    from tests.infra.harness import dev_config, run_program

    program = run_program(dev_config(warmPoolMax=8))
    group = program.one("aws:autoscaling/group:Group").inputs
    assert group["warmPool"]["poolState"] == "Stopped"
    assert group["warmPool"]["instanceReusePolicy"]["reuseOnScaleIn"] is True
    hooks = [r.inputs for r in program.of_type("aws:autoscaling/lifecycleHook:LifecycleHook")]
    launch = [h for h in hooks if h["lifecycleTransition"].endswith("LAUNCHING")]
    assert [h["name"] for h in launch] == ["jobfleet-launch"] and launch[0]["defaultResult"] == "ABANDON"
    assert not group.get("initialLifecycleHooks")
    text = user_data(program, "worker")
    assert len(text.encode()) <= MAX_USER_DATA_BYTES
    script = heredoc(text, "LAUNCHHOOK")
    _shellcheck(script, "worker/LAUNCHHOOK")
    assert "readonly ASG_NAME=jobfleet-dev-workers LAUNCH_HOOK=jobfleet-launch SLOTS=2 " in script
    assert "Warmed:*) exit 1" in script and ". /usr/local/lib/jobfleet/self-check.sh" in script
    assert "readonly WARM_POOL=1" in text
    assert "ExecCondition=/usr/local/bin/jobfleet-launch-hook --in-service" in heredoc(text, "UNIT")
    # install_release runs in the user data, i.e. once, on the first boot (the boot into the pool)
    assert text.index("install_release\n") < text.index("<<'LAUNCHHOOK'")
    monitoring = env_of(user_data(program, "monitoring"))
    assert monitoring["JOBFLEET_WARM_POOL_MAX"] == "8"
    # without a warm pool: no pool, the hook script is inert and the user data's self-check answers the hook
    dev = run_program(dev_config())
    assert "warmPool" not in dev.one("aws:autoscaling/group:Group").inputs
    dev_text = user_data(dev, "worker")
    assert "LAUNCH_HOOK='' " in heredoc(dev_text, "LAUNCHHOOK")
    assert "readonly WARM_POOL=0" in dev_text


def test_warm_pool_refuses_spot() -> None:
    from infra.config import ConfigError
    from tests.infra.harness import dev_config, run_program

    with pytest.raises(ConfigError, match="warm pools do not support Spot"):
        run_program(dev_config(warmPoolMax=4, useSpot=True, workerInstanceTypes=["t3.small", "t3a.small"]))
