"""User-data scripts rendered from the bash templates in ``infra/templates``.

Templates hold ``@@NAME@@`` placeholders; :func:`render` fills every one and refuses unknown or
missing names. Values are inserted as given, so callers shell-quote what lands in shell code
(:func:`shlex.quote`) and environment files are built by :func:`env_file`, which rejects values that
could break out of a line. Nothing rendered here may contain a secret: hosts receive the *names* of
SSM SecureString parameters and read the values at service start.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.releases import Archive

TEMPLATES = Path(__file__).resolve().parent / "templates"
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_ENV_KEY = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ENV_VALUE = re.compile(r"^[^\n\r\"'\\$`]*$")
_PARAMETER = re.compile(r"^[A-Za-z0-9_./-]+$")

WORKER_METRICS_PORT = 9121
AUTOSCALER_METRICS_PORT = 9122
DASHBOARD_PORT = 8080
GRAFANA_PORT = 3000
PROMETHEUS_PORT = 9090
OTLP_HTTP_PORT = 4318
MULTIPROC_DIR = "/run/jobfleet/metrics"
SELF_CHECK_LIB = "/usr/local/lib/jobfleet/self-check.sh"
"""Where the worker user data writes the shared imds/self-check functions (``imds.sh`` + ``self-check.sh``)."""
MAX_USER_DATA_BYTES = 16384
"""EC2 refuses user data larger than 16 KiB (before base64)."""


class UserDataError(ValueError):
    """A template or value cannot be rendered safely."""


@dataclass(frozen=True)
class Release:
    """Where a host downloads its bundle from."""

    bucket: str
    key: str
    region: str

    @property
    def name(self) -> str:
        """The bundle's file name without extension (``jobfleet-<sha16>``)."""
        return self.key.rsplit("/", 1)[-1].removesuffix(".tar.gz")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``templates/<template>``; every placeholder must be given and every value used."""
    text = (TEMPLATES / template).read_text()
    wanted = set(_PLACEHOLDER.findall(text))
    missing = sorted(wanted - set(values))
    unused = sorted(set(values) - wanted)
    if missing or unused:
        raise UserDataError(f"{template}: missing values {missing}, unused values {unused}")
    rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    if _PLACEHOLDER.search(rendered):
        raise UserDataError(f"{template}: a value contains a placeholder")
    return rendered


def env_file(env: Mapping[str, str]) -> str:
    """``KEY=value`` lines for a systemd EnvironmentFile, refusing unsafe keys or values."""
    lines = []
    for key in sorted(env):
        value = str(env[key])
        if not _ENV_KEY.match(key):
            raise UserDataError(f"environment variable name {key!r} is not allowed")
        if not _ENV_VALUE.match(value):
            raise UserDataError(f"value of {key} contains a newline, quote, backslash, $ or backtick")
        lines.append(f"{key}={value}")
    return "\n".join(lines)


def _parameter(name: str) -> str:
    if not _PARAMETER.match(name):
        raise UserDataError(f"SSM parameter name {name!r} is not allowed")
    return name


def _snippet(name: str) -> str:
    """A shared shell snippet (no placeholders) of ``templates/``, rendered into several scripts."""
    return render(name, {}).rstrip("\n")


def _common() -> str:
    return render("common.sh", {"HELPERS": _snippet("helpers.sh")}).rstrip("\n")


def _release_values(release: Release) -> dict[str, str]:
    return {
        "ARTIFACT_BUCKET": shlex.quote(release.bucket),
        "ARTIFACT_KEY": shlex.quote(release.key),
        "AWS_REGION": shlex.quote(release.region),
        "RELEASE": release.name,
        "COMMON": _common(),
    }


def _json_line(text: str) -> str:
    """A JSON document for a quoted heredoc: one line, no heredoc terminator inside."""
    if "\n" in text or "CWAGENT" in text:
        raise UserDataError("the CloudWatch agent config must be one line of JSON")
    return text


def _checked(text: str, what: str) -> str:
    if not text.startswith("#!/bin/bash\n"):
        raise UserDataError(f"{what} user data must start with the shebang on line 1")
    size = len(text.encode())
    if size > MAX_USER_DATA_BYTES:
        raise UserDataError(f"{what} user data is {size} bytes; EC2 allows {MAX_USER_DATA_BYTES}")
    return text


def app_env(
    *,
    region: str,
    redis_host: str,
    redis_port: int,
    redis_parameter: str,
    queues: tuple[str, ...],
    job_timeout: int,
    shutdown_deadline: int,
    slots_per_instance: int,
    min_instances: int,
    max_instances: int,
    otlp_host: str,
    service: str,
    stack: str,
) -> dict[str, str]:
    """Environment shared by the worker, autoscaler and dashboard hosts (read by worker/settings.py)."""
    return {
        "REDIS_URL": f"rediss://{redis_host}:{redis_port}/0",
        "REDIS_PASSWORD_SSM_PARAMETER": _parameter(redis_parameter),
        "AWS_REGION": region,
        "JOBFLEET_QUEUES": ",".join(queues),
        "JOBFLEET_JOB_TIMEOUT": str(job_timeout),
        "JOBFLEET_SHUTDOWN_DEADLINE": str(shutdown_deadline),
        "JOBFLEET_SLOTS_PER_INSTANCE": str(slots_per_instance),
        "JOBFLEET_MIN_INSTANCES": str(min_instances),
        "JOBFLEET_MAX_INSTANCES": str(max_instances),
        "JOBFLEET_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otlp_host}:{OTLP_HTTP_PORT}",
        "OTEL_SERVICE_NAME": f"jobfleet-{service}",
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={stack}",
    }


def drain_script(*, region: str, asg_name: str, hook_name: str) -> str:
    """The worker host's drain loop (completes the termination lifecycle hook after a graceful stop)."""
    return render("drain.sh", {
        "AWS_REGION": shlex.quote(region), "ASG_NAME": shlex.quote(asg_name), "HOOK_NAME": shlex.quote(hook_name),
        "LIB": shlex.quote(SELF_CHECK_LIB),
    }).rstrip("\n")


def self_check_lib() -> str:
    """The functions the launch check, the warm-pool launch hook and the drain loop share (one file on the host)."""
    return _snippet("imds.sh") + "\n\n" + _snippet("self-check.sh")


def launch_hook_script(*, region: str, asg_name: str, hook_name: str, slots: int = 1,
                       self_check_seconds: int = 120, lib: str = SELF_CHECK_LIB) -> str:
    """The worker host's warm-pool launch hook (``hook_name`` empty: no warm pool, the script idles).

    Into service it waits for the ``slots`` worker units and runs the launch check's self-check
    (``self-check.sh``) before CONTINUE, else ABANDONs; into the pool it continues at once.
    """
    return render("launch-hook.sh", {
        "AWS_REGION": shlex.quote(region), "ASG_NAME": shlex.quote(asg_name), "HOOK_NAME": shlex.quote(hook_name),
        "SLOTS": str(int(slots)), "SELF_CHECK_SECONDS": str(int(self_check_seconds)),
        "METRICS_PORT": str(WORKER_METRICS_PORT), "HELPERS": _snippet("helpers.sh"), "LIB": shlex.quote(lib),
    }).rstrip("\n")


def fetch_secret_script(*, region: str) -> str:
    """The helper that writes SSM SecureString values into a root-only environment file."""
    return render("fetch-secret.sh", {"AWS_REGION": shlex.quote(region)}).rstrip("\n")


def launch_check_script(*, asg_name: str, launch_hook: str, self_check_seconds: int,
                        lib: str = SELF_CHECK_LIB) -> str:
    """Functions that answer the launch lifecycle hook: CONTINUE after a passing self-check, else ABANDON."""
    return render("launch-check.sh", {
        "ASG_NAME": shlex.quote(asg_name), "LAUNCH_HOOK": shlex.quote(launch_hook),
        "SELF_CHECK_SECONDS": str(int(self_check_seconds)), "METRICS_PORT": str(WORKER_METRICS_PORT),
        "LIB": shlex.quote(lib), "SELF_CHECK_LIB": self_check_lib(),
    }).rstrip("\n")


def worker_user_data(
    release: Release, env: Mapping[str, str], *, slots: int, stop_timeout: int, asg_name: str, hook_name: str,
    warm_pool: bool = False, launch_hook: str = "jobfleet-launch", self_check_seconds: int = 120,
    log_config: str = "{}",
) -> str:
    """User data of a worker host: ``slots`` times ``python -m worker`` under ``jobfleet-worker@.service``."""
    # every slot asks for the metrics port: the first to bind serves the whole host from the shared
    # multiprocess directory, the others stand by (observability.metrics.start_worker_metrics_server)
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": MULTIPROC_DIR, "JOBFLEET_METRICS_PORT": str(WORKER_METRICS_PORT)}
    values = {
        **_release_values(release),
        "SLOTS": str(int(slots)),
        "STOP_TIMEOUT": str(int(stop_timeout)),
        "ENV_FILE": env_file(env),
        "DRAIN_SCRIPT": drain_script(region=release.region, asg_name=asg_name, hook_name=hook_name),
        "WARM_POOL": "1" if warm_pool else "0",
        # with a warm pool the launch hook is answered by jobfleet-launch-hook on every boot (see worker.sh)
        "LAUNCH_HOOK_SCRIPT": launch_hook_script(region=release.region, asg_name=asg_name,
                                                 hook_name=launch_hook if warm_pool else "", slots=slots,
                                                 self_check_seconds=self_check_seconds),
        "CW_AGENT_CONFIG": _json_line(log_config),
        "LAUNCH_CHECK": launch_check_script(asg_name=asg_name, launch_hook=launch_hook,
                                            self_check_seconds=self_check_seconds),
    }
    return _checked(render("worker.sh", values), "worker")


def monitoring_user_data(
    release: Release, env: Mapping[str, str], *, asg_name: str, target_wait: str, boot_time: float,
    warm_pool_max: int = 0, log_config: str = "{}", boot_deadline: int = 900,
) -> str:
    """User data of the monitoring host: ``python -m autoscaler --backend aws`` under systemd."""
    env = {
        **env,
        "JOBFLEET_AUTOSCALER_BACKEND": "aws",
        "JOBFLEET_ASG_NAME": asg_name,
        "JOBFLEET_TARGET_WAIT": target_wait,
        "JOBFLEET_BOOT_TIME": f"{boot_time:g}",
        "JOBFLEET_WARM_POOL_MAX": str(int(warm_pool_max)),
        "JOBFLEET_BOOT_DEADLINE": str(int(boot_deadline)),
        "JOBFLEET_AUTOSCALER_METRICS_PORT": str(AUTOSCALER_METRICS_PORT),
        "JOBFLEET_METRICS_PORT": "0",
    }
    values = {**_release_values(release), "ASG_NAME": shlex.quote(asg_name), "ENV_FILE": env_file(env),
              "CW_AGENT_CONFIG": _json_line(log_config)}
    return _checked(render("monitoring.sh", values), "monitoring")


def dashboard_user_data(
    release: Release, env: Mapping[str, str], *, token_parameter: str,
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), log_config: str = "{}",
    listen: str = "127.0.0.1",
) -> str:
    """User data of the dashboard host: ``python -m dashboard`` on 0.0.0.0:8080, token from SSM.

    ``allowed_hosts``: the names browsers use (``localhost`` through the SSM tunnel, the public domain
    behind the ALB); any other ``Host`` is refused (DNS rebinding). ``listen``: loopback when only the
    Session Manager tunnel reaches it, ``0.0.0.0`` behind the ALB.
    """
    env = {
        **env,
        "JOBFLEET_DASHBOARD_ALLOWED_HOSTS": ",".join(allowed_hosts),
        "JOBFLEET_DASHBOARD_HOST": listen,
        "JOBFLEET_DASHBOARD_PORT": str(DASHBOARD_PORT),
        "JOBFLEET_METRICS_PORT": "0",
    }
    values = {
        **_release_values(release),
        "PORT": str(DASHBOARD_PORT),
        "ENV_FILE": env_file(env),
        "FETCH_SCRIPT": fetch_secret_script(region=release.region),
        "TOKEN_ASSIGNMENT": f"JOBFLEET_DASHBOARD_TOKEN={_parameter(token_parameter)}",
        "CW_AGENT_CONFIG": _json_line(log_config),
    }
    return _checked(render("dashboard.sh", values), "dashboard")


_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BINARY_KEYS = {"prometheus": "PROMETHEUS", "grafana": "GRAFANA", "tempo": "TEMPO", "otelcol-contrib": "OTELCOL"}


def install_archives(archives: Sequence[Archive]) -> str:
    """``install_archive DEST KEY SHA256 STRIP BINARY`` lines (grafana.sh) for the vendor archives."""
    lines = []
    for archive in archives:
        if not _SHA256.match(archive.sha256):
            raise UserDataError(f"{archive.asset}: {archive.sha256!r} is not a sha256")
        for value in (archive.key, archive.home, archive.binary):
            if not _SAFE_PATH.match(value):
                raise UserDataError(f"{archive.asset}: unsafe path {value!r}")
        lines.append(f"install_archive {archive.home} {archive.key} {archive.sha256} {int(archive.strip)} "
                     f"{archive.binary}")
    return "\n".join(lines)


def grafana_user_data(
    release: Release,
    *,
    stack: str,
    password_parameter: str,
    archives: Sequence[Archive],
    log_config: str = "{}",
    grafana_listen: str = "127.0.0.1",
) -> str:
    """User data of the Grafana host: Grafana, Prometheus, Tempo and the OTel collector from the verified vendor
    archives in the artifact bucket (``infra.releases``), one systemd service each."""
    by_name = {archive.component: archive for archive in archives}
    if sorted(by_name) != sorted(_BINARY_KEYS) or len(archives) != len(_BINARY_KEYS):
        raise UserDataError(f"the Grafana host needs one archive each of {', '.join(sorted(_BINARY_KEYS))}")
    values = {
        **_release_values(release),
        "STACK": shlex.quote(stack),
        "FETCH_SCRIPT": fetch_secret_script(region=release.region),
        "PASSWORD_ASSIGNMENT": f"GF_SECURITY_ADMIN_PASSWORD={_parameter(password_parameter)}",
        "INSTALL_ARCHIVES": install_archives(archives),
        "GRAFANA_HOME": by_name["grafana"].home,
        "GRAFANA_LISTEN": grafana_listen,
        "CW_AGENT_CONFIG": _json_line(log_config),
    }
    for component, prefix in _BINARY_KEYS.items():
        archive = by_name[component]
        values[f"{prefix}_BIN"] = f"{archive.home}/{archive.binary}"
        values[f"{prefix}_VERSION"] = archive.version
    return _checked(render("grafana.sh", values), "grafana")
