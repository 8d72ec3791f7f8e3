"""Stack configuration, read once into a typed, validated :class:`InfraConfig`.

Every key lives in the ``jobfleet:`` namespace (``pulumi config set jobfleet:<key> <value>``) except the
region, which is the AWS provider's ``aws:region``. A wrong or missing value raises :class:`ConfigError`
whose message names the key, the value and what is allowed. Secrets are read here too, validated, and
handed on only as secret ``pulumi.Output`` values.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from infra.releases import COMPONENTS

NAMESPACE = "jobfleet"

# EC2 instance type: family (letters, generation digit, attribute letters, optional "-flex") "." size.
_INSTANCE_TYPE = re.compile(r"^([a-z]+)(\d+)([a-z0-9-]*)\.(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)$")
_CACHE_NODE_TYPE = re.compile(r"^cache\.[a-z]+\d+[a-z0-9-]*\.(micro|small|medium|large|\d*xlarge)$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ENGINE_VERSION = re.compile(r"^\d+(\.\d+)?$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
_PERF_RUN = re.compile(r"^[\w.:/=+\-@]{0,128}$")
# ElastiCache AUTH token: 16-128 printable ASCII characters except space, ", / and @.
_AUTH_TOKEN = re.compile(r"^[!#-.0-?A-~]{16,128}$")

DEFAULT_ENGINE_VERSIONS = {"valkey": "8.0", "redis": "7.1"}


class ConfigError(ValueError):
    """A stack configuration value is missing or not allowed; the message names the key."""


@dataclass(frozen=True)
class InfraConfig:
    """Everything the program needs from the stack configuration, typed and checked."""

    project: str
    stack: str
    region: str
    # network
    vpc_cidr: str
    nat_gateway: bool
    allowed_cidrs: tuple[str, ...]
    allow_public_access: bool
    # tags
    cost_tags: Mapping[str, str]
    perf_test_run: str  # "" = none; else every resource and worker instance is tagged PerfTestRun=<it>
    # redis
    redis_engine: str
    redis_engine_version: str
    redis_node_type: str
    redis_nodes: int
    # worker fleet
    worker_instance_types: tuple[str, ...]
    min_instances: int
    max_instances: int
    slots_per_instance: int
    use_spot: bool
    on_demand_base: int
    queues: tuple[str, ...]
    job_timeout: int
    shutdown_deadline: int
    target_wait: str  # JOBFLEET_TARGET_WAIT of the autoscaler: seconds, or per queue (high=5,default=30,low=300)
    boot_time: float
    root_volume_gb: int
    warm_pool_max: int  # issue 14: > 0 adds an ASG warm pool the autoscaler sizes up to this
    # hosts
    monitoring_instance_type: str
    dashboard_instance_type: str
    grafana_instance_type: str
    grafana_version: str
    prometheus_version: str
    otelcol_version: str
    tempo_version: str
    release_mirror: str  # "" = the vendors' hosts; else a base URL replacing them (same paths)
    # secrets (secret Outputs; never plain strings)
    redis_auth_token: pulumi.Output[str]
    dashboard_token: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]
    secrets_version: int = 1
    """Bump (``jobfleet:secretsVersion``) to re-send the write-only secrets after changing one."""
    boot_deadline: int = 900
    """Seconds a new worker host has to pass its self-check before the launch hook abandons it."""
    exposure: str = "ssm"
    """``ssm``: no public ingress (SSM port forwarding); ``alb``: an HTTPS-only ALB admitting ``allowedCidrs``."""
    certificate_arn: str = ""
    public_domain: str = ""
    log_retention_days: int = 14
    """Days CloudWatch keeps the hosts' logs."""
    """Seconds a new worker host has to pass its self-check before the launch hook abandons it."""
    """Bump (``jobfleet:secretsVersion``) to re-send the write-only secrets after changing one."""

    @property
    def architecture(self) -> str:
        """CPU architecture of the worker instance types (``arm64`` for Graviton, else ``x86_64``)."""
        return instance_architecture(self.worker_instance_types[0])

    @property
    def observability_versions(self) -> dict[str, str]:
        """Version of every Grafana-host component (``infra.releases.COMPONENTS`` names)."""
        return {"grafana": self.grafana_version, "prometheus": self.prometheus_version,
                "tempo": self.tempo_version, "otelcol-contrib": self.otelcol_version}

    @property
    def stop_timeout(self) -> int:
        """Seconds systemd waits for a worker to finish its job after SIGTERM (>= the job timeout)."""
        return max(self.job_timeout, self.shutdown_deadline) + 30

    @property
    def lifecycle_timeout(self) -> int:
        """Seconds the termination lifecycle hook holds an instance so its workers can drain."""
        return self.stop_timeout + 60


def instance_architecture(instance_type: str) -> str:
    """``arm64`` for Graviton families (an attribute letter ``g``: t4g, c7gn, m6gd), else ``x86_64``."""
    match = _INSTANCE_TYPE.match(instance_type)
    if not match:
        raise ConfigError(f"{instance_type!r} is not an EC2 instance type")
    attributes = match.group(3).split("-")[0]
    return "arm64" if "g" in attributes else "x86_64"


class _Reader:
    """Reads raw config strings and turns parse failures into :class:`ConfigError` naming the key."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def raw(self, key: str) -> str | None:
        value = runtime_config.get_config(f"{self.namespace}:{key}")
        return None if value is None else str(value)

    def value(self, key: str, default: str | None, parse: Callable[[str], Any], allowed: str) -> Any:
        raw = self.raw(key)
        if raw is None:
            if default is None:
                raise ConfigError(
                    f"{self.namespace}:{key} is required ({allowed}); set it with "
                    f"`pulumi config set {self.namespace}:{key} <value>`"
                )
            raw = default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            detail = f": {exc}" if str(exc) else ""
            raise ConfigError(f"{self.namespace}:{key}={raw!r} is not allowed{detail} (expected {allowed})") from None

    def secret(self, key: str, check: Callable[[str], None], allowed: str) -> pulumi.Output[str]:
        raw = self.raw(key)
        if raw is None or not raw.strip():
            raise ConfigError(
                f"{self.namespace}:{key} is required ({allowed}); set it with "
                f"`pulumi config set --secret {self.namespace}:{key} <value>`"
            )
        try:
            check(raw)
        except ValueError as exc:
            # never echo the secret itself
            raise ConfigError(f"{self.namespace}:{key} (secret) is not allowed: {exc}") from None
        return pulumi.Output.secret(raw)


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _float(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw.strip())
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError("not a boolean")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw.strip()

    return parse


def _json_list(raw: str) -> list[Any]:
    """A YAML/JSON list from structured config, or a comma-separated string."""
    text = raw.strip()
    if text.startswith("["):
        value = json.loads(text)
        if not isinstance(value, list):
            raise ValueError("not a list")
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def _instance_types(raw: str) -> tuple[str, ...]:
    types = tuple(str(item).strip() for item in _json_list(raw))
    if not types:
        raise ValueError("the list is empty")
    for item in types:
        if not _INSTANCE_TYPE.match(item):
            raise ValueError(f"{item!r} is not an EC2 instance type like t3.small or m7g.large")
    if len(set(types)) != len(types):
        raise ValueError("instance types must be unique")
    archs = {instance_architecture(item) for item in types}
    if len(archs) > 1:
        raise ValueError("instance types mix arm64 (Graviton) and x86_64; one AMI cannot serve both")
    return types


def _instance_type(raw: str) -> str:
    value = raw.strip()
    if not _INSTANCE_TYPE.match(value):
        raise ValueError(f"{value!r} is not one EC2 instance type like t3.small")
    return value


_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _optional(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value and not pattern.match(value):
            raise ValueError(f"not {what}")
        return value

    return parse


def _cidrs_or_none(exposure: str) -> Callable[[str], tuple[str, ...]]:
    """``allowedCidrs``: who may reach the ALB; unused (and may be empty) without one."""
    def parse(raw: str) -> tuple[str, ...]:
        if exposure == "ssm" and not _json_list(raw):
            return ()
        return _cidrs(raw)

    return parse


_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                   3288, 3653)


def _retention(raw: str) -> int:
    value = _int(1, 3653)(raw)
    if value not in _RETENTION_DAYS:
        raise ValueError("CloudWatch does not offer that retention")
    return value


def _cidrs(raw: str) -> tuple[str, ...]:
    items = tuple(str(item).strip() for item in _json_list(raw))
    if not items:
        raise ValueError("the list is empty; name at least one CIDR allowed to reach the dashboard and Grafana")
    out = []
    for item in items:
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a CIDR ({exc})") from None
        if network.version != 4:
            raise ValueError(f"{item!r}: only IPv4 CIDRs are supported")
        out.append(str(network))
    return tuple(out)


def _vpc_cidr(raw: str) -> str:
    network = ipaddress.ip_network(raw.strip(), strict=True)
    if network.version != 4 or not 16 <= network.prefixlen <= 20 or not network.is_private:
        raise ValueError("must be a private IPv4 CIDR with a prefix between /16 and /20")
    return str(network)


def _queues(raw: str) -> tuple[str, ...]:
    names = tuple(str(item).strip() for item in _json_list(raw))
    if not names:
        raise ValueError("the list is empty")
    for name in names:
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"queue name {name!r} may only hold letters, digits and _ . : - (1-64 chars)")
    if len(set(names)) != len(names):
        raise ValueError("queue names must be unique")
    return names


def _target_wait(raw: str) -> str:
    """``30``, or per queue ``high=5,default=30,low=300`` with an optional bare or ``*=`` fallback; 0-3600 s
    each (0 = start at once). Normalised; the queue names are checked against ``queues`` later."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise ValueError("it is empty")
    out, seen = [], set()
    for part in parts:
        name, _, number = part.rpartition("=")
        name = name.strip() or "*"
        try:
            value = float(number)
        except ValueError:
            raise ValueError(f"{part!r}: expected seconds or queue=seconds") from None
        if not 0 <= value <= 3600:
            raise ValueError(f"{part!r}: seconds must be between 0 and 3600")
        if name != "*" and not _QUEUE_NAME.match(name):
            raise ValueError(f"{part!r}: {name!r} is not a queue name")
        if name in seen:
            raise ValueError(f"{name!r} has two targets")
        seen.add(name)
        out.append(f"{value:g}" if name == "*" else f"{name}={value:g}")
    return ",".join(out)


def target_wait_queues(spec: str) -> tuple[set[str], bool]:
    """The queues a normalised ``targetWait`` names and whether it has a fallback for the others."""
    names = {part.split("=", 1)[0] for part in spec.split(",") if "=" in part}
    return names, any("=" not in part for part in spec.split(","))


def _cost_tags(raw: str) -> dict[str, str]:
    value = json.loads(raw)
    if not isinstance(value, dict) or not value:
        raise ValueError("must be a non-empty map of tag key to value")
    tags: dict[str, str] = {}
    for key, item in value.items():
        text = str(item)
        if not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key!r} is not allowed (1-128 chars, not starting with aws:)")
        if not _TAG_VALUE.match(text):
            raise ValueError(f"tag value {text!r} of {key!r} is not allowed (0-256 chars)")
        if key in ("Project", "Stack"):
            raise ValueError(f"tag key {key!r} is set by the program itself")
        tags[key] = text
    return tags


def _regex(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw.strip()):
            raise ValueError(f"not {what}")
        return raw.strip()

    return parse


def _mirror_url(raw: str) -> str:
    """Empty, or an http/https URL with a host and no query or fragment (trailing ``/`` dropped)."""
    value = raw.strip()
    if not value:
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("not an http(s) URL like https://mirror.example.com/vendor")
    return value.rstrip("/")


def _pinned(component: str) -> tuple[str, Callable[[str], str], str]:
    """Default, parser and allowed text of a component version: one the table of ``infra.releases`` pins."""
    supported = COMPONENTS[component].versions

    def parse(raw: str) -> str:
        if raw.strip() not in supported:
            raise ValueError(f"infra/releases.py pins no {component} release of that version")
        return raw.strip()

    return supported[0], parse, f"one of {', '.join(supported)}"


def _auth_token(raw: str) -> None:
    if not _AUTH_TOKEN.match(raw):
        raise ValueError("an ElastiCache AUTH token needs 16-128 printable ASCII characters without space, \", / or @")


def _min_length(n: int) -> Callable[[str], None]:
    """At least ``n`` printable ASCII characters without whitespace, quotes, backslash or $ (they would be
    re-interpreted by systemd environment files)."""

    def check(raw: str) -> None:
        if len(raw) < n or not re.fullmatch(r"[!#%-&(-\[\]-~]+", raw):
            raise ValueError(f"needs at least {n} printable characters without whitespace, quotes, backslash or $")

    return check


def load_config(project: str | None = None, stack: str | None = None) -> InfraConfig:
    """Read and validate the stack configuration; raise :class:`ConfigError` naming the bad key."""
    project = project or pulumi.get_project()
    stack = stack or pulumi.get_stack()
    aws = _Reader("aws")
    region = aws.value("region", None, _regex(re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$"), "an AWS region"),
                       "an AWS region like eu-west-1")
    c = _Reader(NAMESPACE)
    engine = c.value("redisEngine", "valkey", _choice("valkey", "redis"), "valkey or redis")
    exposure = c.value("exposure", "ssm", _choice("ssm", "alb"), "ssm (no public ingress) or alb (HTTPS ALB)")
    node_types = "a list of EC2 instance types like [t3.small, t3a.small]"
    cfg = InfraConfig(
        project=project,
        stack=stack,
        region=region,
        vpc_cidr=c.value("vpcCidr", "10.40.0.0/16", _vpc_cidr, "a private IPv4 CIDR /16-/20"),
        nat_gateway=c.value("natGateway", "false", _bool, "true or false"),
        allowed_cidrs=c.value("allowedCidrs", "[]" if exposure == "ssm" else None, _cidrs_or_none(exposure),
                              "a non-empty list of IPv4 CIDRs, e.g. [203.0.113.7/32]"),
        allow_public_access=c.value("allowPublicAccess", "false", _bool, "true or false"),
        cost_tags=c.value("costTags", '{"CostCenter": "jobfleet"}', _cost_tags, "a map of tag key to value"),
        perf_test_run=c.value("perfTestRun", "", _regex(_PERF_RUN, "a run tag"),
                              "a run tag of 1-128 letters, digits and _ . : / = + - @ (or empty for none)"),
        redis_engine=engine,
        redis_engine_version=c.value("redisEngineVersion", DEFAULT_ENGINE_VERSIONS[engine],
                                     _regex(_ENGINE_VERSION, "a version like 8.0"), "a version like 8.0"),
        redis_node_type=c.value("redisNodeType", "cache.t4g.micro", _regex(_CACHE_NODE_TYPE, "a cache node type"),
                                "a cache node type like cache.t4g.micro"),
        redis_nodes=c.value("redisNodes", "2", _int(1, 6), "a number of nodes 1-6"),
        worker_instance_types=c.value("workerInstanceTypes", '["t3.small"]', _instance_types, node_types),
        min_instances=c.value("minInstances", "1", _int(0, 1000), "a whole number 0-1000"),
        max_instances=c.value("maxInstances", "10", _int(1, 1000), "a whole number 1-1000"),
        slots_per_instance=c.value("slotsPerInstance", "2", _int(1, 256), "a whole number 1-256"),
        use_spot=c.value("useSpot", "false", _bool, "true or false"),
        on_demand_base=c.value("onDemandBase", "1", _int(0, 1000), "a whole number 0-1000"),
        queues=c.value("queues", '["high", "default", "low"]', _queues, "a list of queue names"),
        job_timeout=c.value("jobTimeout", "180", _int(1, 86400), "seconds 1-86400"),
        shutdown_deadline=c.value("shutdownDeadline", "600", _int(0, 86400), "seconds 0-86400"),
        target_wait=c.value("targetWait", "30", _target_wait,
                            "seconds 0-3600, or per queue like high=5,default=30,low=300 (0 = start at once)"),
        boot_time=c.value("bootTime", "90", _float(0, 3600), "seconds 0-3600"),
        root_volume_gb=c.value("rootVolumeGb", "20", _int(8, 1024), "GiB 8-1024"),
        warm_pool_max=c.value("warmPoolMax", "0", _int(0, 1000), "a whole number 0-1000 (0 = no warm pool)"),
        monitoring_instance_type=c.value("monitoringInstanceType", "t3.micro", _instance_type, "an instance type"),
        dashboard_instance_type=c.value("dashboardInstanceType", "t3.micro", _instance_type, "an instance type"),
        grafana_instance_type=c.value("grafanaInstanceType", "t3.small", _instance_type, "an instance type"),
        grafana_version=c.value("grafanaVersion", *_pinned("grafana")),
        prometheus_version=c.value("prometheusVersion", *_pinned("prometheus")),
        otelcol_version=c.value("otelcolVersion", *_pinned("otelcol-contrib")),
        tempo_version=c.value("tempoVersion", *_pinned("tempo")),
        release_mirror=c.value("releaseMirror", "", _mirror_url,
                               "an http(s) base URL replacing the vendors' hosts, or empty for none"),
        redis_auth_token=c.secret("redisAuthToken", _auth_token, "16-128 printable characters, not space \" / @"),
        dashboard_token=c.secret("dashboardToken", _min_length(16), "a token of at least 16 characters"),
        grafana_admin_password=c.secret("grafanaAdminPassword", _min_length(12), "at least 12 characters"),
        secrets_version=c.value("secretsVersion", "1", _int(1, 1_000_000), "a whole number >= 1"),
        boot_deadline=c.value("bootDeadline", "900", _int(60, 7200), "seconds 60-7200"),
        exposure=exposure,
        log_retention_days=c.value("logRetentionDays", "14", _retention, "one of CloudWatch's retention periods "
                                   f"({', '.join(map(str, _RETENTION_DAYS))})"),
        certificate_arn=c.value("certificateArn", "", _optional(_ACM_ARN, "an ACM certificate ARN"),
                                "an ACM certificate ARN (exposure alb)"),
        public_domain=c.value("publicDomain", "", _optional(_DOMAIN, "a DNS name"),
                              "the DNS name the certificate covers (exposure alb)"),
    )
    _check_consistency(cfg)
    return cfg


def _check_consistency(cfg: InfraConfig) -> None:
    if cfg.min_instances > cfg.max_instances:
        raise ConfigError(
            f"{NAMESPACE}:minInstances={cfg.min_instances} is above {NAMESPACE}:maxInstances={cfg.max_instances}"
        )
    if cfg.use_spot and cfg.on_demand_base > cfg.max_instances:
        raise ConfigError(
            f"{NAMESPACE}:onDemandBase={cfg.on_demand_base} is above {NAMESPACE}:maxInstances={cfg.max_instances}"
        )
    if not cfg.allow_public_access:
        for cidr in cfg.allowed_cidrs:
            if ipaddress.ip_network(cidr).prefixlen == 0:
                raise ConfigError(
                    f"{NAMESPACE}:allowedCidrs contains {cidr}, which opens the dashboard and Grafana to the whole "
                    f"internet; set {NAMESPACE}:allowPublicAccess=true if you really mean it"
                )
    named, fallback = target_wait_queues(cfg.target_wait)
    if unknown := sorted(named - set(cfg.queues)):
        raise ConfigError(f"{NAMESPACE}:targetWait={cfg.target_wait!r} names {', '.join(unknown)}, "
                          f"not in {NAMESPACE}:queues {list(cfg.queues)}")
    if not fallback and set(cfg.queues) - named:
        raise ConfigError(f"{NAMESPACE}:targetWait={cfg.target_wait!r} has no target for "
                          f"{', '.join(q for q in cfg.queues if q not in named)}: name them or add a bare number "
                          "for the others")
    if cfg.warm_pool_max and cfg.use_spot:
        raise ConfigError(f"{NAMESPACE}:warmPoolMax={cfg.warm_pool_max}: ASG warm pools do not support Spot "
                          f"(mixed instances policy); set {NAMESPACE}:useSpot=false or warmPoolMax=0")
    if cfg.exposure == "alb" and not (cfg.certificate_arn and cfg.public_domain):
        raise ConfigError(
            f"{NAMESPACE}:exposure=alb needs {NAMESPACE}:certificateArn (an issued ACM certificate) and "
            f"{NAMESPACE}:publicDomain (the DNS name it covers, pointed at the ALB)"
        )
    if cfg.boot_deadline < cfg.boot_time + 60:
        raise ConfigError(
            f"{NAMESPACE}:bootDeadline={cfg.boot_deadline} leaves less than a minute over "
            f"{NAMESPACE}:bootTime={cfg.boot_time:g}: healthy hosts would be abandoned"
        )
    if cfg.lifecycle_timeout > 7200:
        raise ConfigError(
            f"{NAMESPACE}:jobTimeout/{NAMESPACE}:shutdownDeadline make the drain hook {cfg.lifecycle_timeout} s; "
            "an ASG lifecycle hook allows at most 7200 s"
        )
    if cfg.redis_engine == "valkey" and cfg.redis_engine_version.split(".")[0] not in ("7", "8"):
        raise ConfigError(
            f"{NAMESPACE}:redisEngineVersion={cfg.redis_engine_version!r}: valkey versions are 7.x or 8.x"
        )
