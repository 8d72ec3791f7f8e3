"""Boot scripts run in bash against stand-ins for IMDS (curl), systemd and the AWS CLI: the launch check
(CONTINUE only after a passing self-check; ABANDON on a failed check or bootstrap step), the warm-pool launch
hook (the same self-check into service; straight CONTINUE into the pool) and the secret fetcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.userdata import launch_check_script, launch_hook_script, self_check_lib
from tests.infra.harness import ROOT, Program
from tests.infra.test_userdata import user_data

STUBS = {
    # IMDSv2: a token for the PUT, the instance id and address; the metrics endpoint answers when METRICS_UP=1
    "curl": """#!/bin/bash
for arg in "$@"; do
  case "$arg" in
    *api/token) echo tok; exit 0 ;;
    *meta-data/instance-id) echo i-0abc123; exit 0 ;;
    *meta-data/local-ipv4) echo 10.40.1.7; exit 0 ;;
    *meta-data/autoscaling/target-lifecycle-state) echo "${TARGET_STATE:-InService}"; exit 0 ;;
    */metrics) [ "${METRICS_UP:-1}" = 1 ]; exit $? ;;
  esac
done
exit 22
""",
    "systemctl": """#!/bin/bash
echo "$*" >> "${SYSTEMCTL_CALLS:-/dev/null}"
case "$1" in
  is-active) [ "${UNITS_ACTIVE:-1}" = 1 ] ;;
  show) echo "${RESTARTS:-0}" ;;
  *) exit 0 ;;
esac
""",
    "aws": """#!/bin/bash
echo "$*" >> "$CALLS"
""",
}


def _stubs(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in {**STUBS, **(extra or {})}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_boot(tmp_path: Path, body: str, **env: str) -> tuple[int, list[str], str]:
    """Run the rendered launch check, then ``body``; returns exit code, aws calls and the log."""
    bin_dir = _stubs(tmp_path)
    env_file = tmp_path / "jobfleet.env"
    env_file.write_text("JOBFLEET_METRICS_ADDR=10.40.1.7\n")
    calls, log = tmp_path / "calls", tmp_path / "log"
    script = "\n".join([
        "#!/bin/bash", "set -euo pipefail",
        f"log() {{ printf '%s\\n' \"$*\" >> {log}; }}",
        'retry() { "$@"; }',
        launch_check_script(asg_name="jobfleet-dev-workers", launch_hook="jobfleet-launch", self_check_seconds=1,
                            lib=str(tmp_path / "lib" / "self-check.sh")),
        body,
    ])
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "JOBFLEET_ENV_FILE": str(env_file),
             "SELF_CHECK_SETTLE": "0", **env},
    )
    made = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, made, log.read_text() if log.exists() else ""


WORKER_TAIL = """
units=(jobfleet-worker@1.service jobfleet-worker@2.service)
if ! self_check "${units[@]}"; then
  trap - ERR
  complete_launch ABANDON
  exit 1
fi
trap - ERR
complete_launch CONTINUE
"""
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HOOK = ("autoscaling complete-lifecycle-action --auto-scaling-group-name jobfleet-dev-workers "
        "--lifecycle-hook-name jobfleet-launch --instance-id i-0abc123 --lifecycle-action-result ")


def test_a_passing_self_check_continues(tmp_path: Path) -> None:
    code, calls, log = run_boot(tmp_path, WORKER_TAIL)
    assert code == 0, log
    assert calls == [HOOK + "CONTINUE"] and "self-check passed" in log


@pytest.mark.parametrize(("env", "why"), [
    ({"UNITS_ACTIVE": "0"}, "jobfleet-worker@1.service is not active"),
    ({"RESTARTS": "3"}, "restarted 3 time(s)"),
    ({"METRICS_UP": "0"}, "metrics endpoint 10.40.1.7:9121 did not answer"),
])
def test_a_failed_self_check_abandons(tmp_path: Path, env: dict[str, str], why: str) -> None:
    code, calls, log = run_boot(tmp_path, WORKER_TAIL, **env)
    assert code == 1
    assert calls == [HOOK + "ABANDON"] and why in log


def test_a_failed_bootstrap_step_abandons(tmp_path: Path) -> None:
    code, calls, log = run_boot(tmp_path, "install_release() { false; }\ninstall_release\n" + WORKER_TAIL)
    assert code != 0
    assert calls == [HOOK + "ABANDON"] and "bootstrap failed" in log


def test_the_launch_check_writes_the_functions_the_launch_hook_sources(tmp_path: Path) -> None:
    code, _, log = run_boot(tmp_path, WORKER_TAIL)
    assert code == 0, log
    assert (tmp_path / "lib" / "self-check.sh").read_text() == self_check_lib() + "\n"


# the watch loop after the launch action (sleep 5) ends the run: the script got that far
HOOK_STUBS = {"sleep": '#!/bin/bash\nif [ "$1" = 5 ]; then echo watching >> "$CALLS"; kill -TERM "$PPID"; fi\n'}


def run_hook(tmp_path: Path, *args: str, **env: str) -> tuple[int, list[str], str, list[str]]:
    """Run the rendered jobfleet-launch-hook (warm pool, 2 slots) sourcing the launch check's functions;
    returns exit code, aws calls (and ``watching``), the log and the systemctl calls."""
    bin_dir = _stubs(tmp_path, HOOK_STUBS)
    lib = tmp_path / "self-check.sh"
    lib.write_text(self_check_lib() + "\n")
    env_file = tmp_path / "jobfleet.env"
    env_file.write_text("JOBFLEET_METRICS_ADDR=10.40.1.7\n")
    calls, systemctl = tmp_path / "calls", tmp_path / "systemctl"
    script = launch_hook_script(region="eu-west-1", asg_name="jobfleet-dev-workers", hook_name="jobfleet-launch",
                                slots=2, self_check_seconds=1, lib=str(lib))
    done = subprocess.run(
        ["bash", "-c", script, "jobfleet-launch-hook", *args], capture_output=True, text=True, timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "JOBFLEET_ENV_FILE": str(env_file),
             "SELF_CHECK_SETTLE": "0", "SYSTEMCTL_CALLS": str(systemctl), **env},
    )
    made = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, made, done.stdout + done.stderr, (
        systemctl.read_text().splitlines() if systemctl.exists() else [])


def test_warm_pool_boot_into_service_continues_after_a_passing_self_check(tmp_path: Path) -> None:
    code, calls, log, systemctl = run_hook(tmp_path, TARGET_STATE="InService")
    assert calls == [HOOK + "CONTINUE", "watching"], log
    assert code == -15 and "self-check passed" in log  # stopped by the test in the watch loop
    assert "is-active --quiet jobfleet-worker@2.service" in systemctl


@pytest.mark.parametrize(("env", "why"), [
    ({"UNITS_ACTIVE": "0"}, "jobfleet-worker@1.service did not become active"),
    ({"RESTARTS": "3"}, "restarted 3 time(s)"),
    ({"METRICS_UP": "0"}, "metrics endpoint 10.40.1.7:9121 did not answer"),
])
def test_warm_pool_boot_into_service_abandons_on_a_failed_self_check(
    tmp_path: Path, env: dict[str, str], why: str,
) -> None:
    code, calls, log, _ = run_hook(tmp_path, TARGET_STATE="InService", **env)
    assert code == 2, log  # RestartPreventExitStatus=2: not retried, the ASG replaces the host
    assert calls == [HOOK + "ABANDON"] and why in log


def test_warm_pool_boot_into_the_pool_continues_without_starting_workers(tmp_path: Path) -> None:
    code, calls, log, systemctl = run_hook(tmp_path, TARGET_STATE="Warmed:Stopped", METRICS_UP="0")
    assert calls == [HOOK + "CONTINUE", "watching"] and code == -15, log
    assert systemctl == []  # no slot checked, started or waited for
    assert run_hook(tmp_path, "--in-service", TARGET_STATE="Warmed:Stopped")[0] == 1  # slots' ExecCondition
    assert run_hook(tmp_path, "--in-service", TARGET_STATE="InService")[0] == 0


def test_worker_user_data_runs_the_check_it_was_tested_with(dev: Program) -> None:
    text = user_data(dev, "worker")
    assert launch_check_script(asg_name="jobfleet-dev-workers", launch_hook="jobfleet-launch",
                               self_check_seconds=810) in text
    enable = text.index('systemctl enable --now "${units[@]}"')
    assert text.rindex("units=()") < text.rindex('units+=("jobfleet-worker@${slot}.service")') < enable  # listed first
    tail = text[enable:]
    assert WORKER_TAIL.strip().split("\n", 1)[1] in tail  # the same sequence, after the units start
    appended = "printf 'JOBFLEET_METRICS_ADDR=%s\\n' \"$(local_ipv4)\" >> /etc/jobfleet/jobfleet.env"
    assert appended in text and "meta-data/local-ipv4" in text
    assert appended in user_data(dev, "monitoring")  # the autoscaler's endpoint too


def test_secret_fetcher_retries_with_backoff_then_writes_the_file(tmp_path: Path) -> None:
    from infra.userdata import fetch_secret_script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(  # fails twice (SSM throttling), then answers
        '#!/bin/bash\nn=$(cat "$COUNT" 2>/dev/null || echo 0); echo $((n + 1)) > "$COUNT"\n'
        '[ "$n" -ge 2 ] || { echo "ThrottlingException" >&2; exit 255; }\necho s3cr3t-value\n')
    (bin_dir / "sleep").write_text('#!/bin/bash\necho "$1" >> "$SLEPT"\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    out = tmp_path / "secrets" / "dashboard.env"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "COUNT": str(tmp_path / "n"), "SLEPT": str(tmp_path / "slept")}
    script = fetch_secret_script(region="eu-west-1")
    done = subprocess.run(["bash", "-c", script, "fetch", str(out), "JOBFLEET_DASHBOARD_TOKEN=/jobfleet/dev/x"],
                          capture_output=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "JOBFLEET_DASHBOARD_TOKEN=s3cr3t-value\n"
    assert (tmp_path / "slept").read_text().split() == ["1", "2"]  # exponential backoff
    assert b"retrying in 1 s" in done.stderr
    (tmp_path / "n").write_text("-100")  # now it keeps failing: a bounded number of attempts, then exit 1
    env["JOBFLEET_FETCH_ATTEMPTS"] = "4"
    failed = subprocess.run(["bash", "-c", script, "fetch", str(tmp_path / "other.env"), "X=/y"],
                            capture_output=True, timeout=30, env=env)
    assert failed.returncode == 1 and b"cannot read /y after 4 attempts" in failed.stderr
    assert not (tmp_path / "other.env").exists()


@pytest.mark.parametrize("role", ["dashboard", "grafana"])
def test_secret_fetch_is_part_of_the_restarting_service(dev: Program, role: str) -> None:
    text = user_data(dev, role)
    assert "Type=oneshot" not in text and f"jobfleet-{role}-secrets.service" not in text
    assert "ExecStartPre=" in text and "jobfleet-fetch-secrets /run/jobfleet-secrets/" in text
    assert "Restart=always" in text


def test_worker_hosts_run_the_spot_watcher(dev: Program) -> None:
    text = user_data(dev, "worker")
    assert "ExecStart=/opt/jobfleet/current/.venv/bin/python -m worker.spot" in text
    assert "jobfleet-drain.service jobfleet-spot.service" in text
    assert (ROOT / "worker" / "spot.py").is_file()
