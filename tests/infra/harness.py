"""Run the real Pulumi program (infra/__main__.py) under ``pulumi.runtime.set_mocks`` and record it.

The mocks answer the few data-source calls the program makes (AZs, caller identity, partition, the
AL2023 AMI parameter) and echo resource inputs back as outputs, adding the computed attributes the
program reads (ARNs, endpoints, IPs). Everything registered is returned as :class:`Registered` rows,
with inputs as Pulumi sent them (camelCase keys, resolved values).
"""

from __future__ import annotations

import atexit
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import runpy
import shutil
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.sync_await import _sync_await

from infra.releases import COMPONENTS, urls

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "infra" / "__main__.py"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
AMI = "ami-0abcdef1234567890"

TEST_SECRETS = {
    "jobfleet:redisAuthToken": "test-redis-auth-token-0123456789abcdef",
    "jobfleet:dashboardToken": "test-dashboard-token-0123456789",
    "jobfleet:grafanaAdminPassword": "test-grafana-password-42",
}


SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""Pulumi's marker key: a secret input reaches the mocks as ``{SECRET_SIG: <secret sig>, "value": ...}``."""


def secret_value(value: Any) -> Any:
    """The plain value of a secret input; fails if ``value`` was not sent as a secret."""
    assert isinstance(value, dict) and SECRET_SIG in value, f"not a secret: {value!r}"
    return value["value"]


@dataclass(frozen=True)
class Registered:
    """One resource the program registered."""

    typ: str
    name: str
    inputs: dict[str, Any]
    id: str | None = None


@dataclass
class Program:
    """What one run of the program produced."""

    resources: list[Registered]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Registered]:
        """Every registered resource of a type token, e.g. ``aws:ec2/instance:Instance``."""
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_part: str = "") -> Registered:
        """The single resource of ``typ`` whose logical name contains ``name_part``."""
        found = [r for r in self.of_type(typ) if name_part in r.name]
        assert len(found) == 1, f"expected one {typ} named *{name_part}*, got {[r.name for r in found]}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that record every resource and answer the program's data-source calls."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        name = args.name
        rid = f"{name}-abc123" if args.typ == "aws:s3/bucket:Bucket" else f"{name}-id"
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), rid))
        service = args.typ.split(":")[1].split("/")[0]
        outputs.setdefault("arn", f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}")
        if args.typ == "aws:s3/bucket:Bucket":
            outputs.update(bucket=rid, arn=f"arn:aws:s3:::{rid}")
        if args.typ == "aws:ssm/parameter:Parameter":
            outputs["arn"] = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{args.inputs['name']}"
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 3
        if args.typ == "aws:ec2/instance:Instance":
            outputs.update(privateIp="10.40.0.25", publicDns=f"ec2-203-0-113-25.{REGION}.compute.amazonaws.com")
        if args.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
            outputs["primaryEndpointAddress"] = f"master.{name}.abc123.euw1.cache.amazonaws.com"
        if args.typ in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile"):
            outputs.setdefault("name", f"{name}-abc123")
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:{args.typ.split(':')[-1].lower()}/{name}"
        if args.typ == "aws:elasticache/subnetGroup:SubnetGroup":
            outputs.setdefault("name", f"{name}-abc123")
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = [f"{REGION}{s}" for s in "abcd"]
            return {"names": zones, "zoneIds": [f"euw1-az{i}" for i in range(1, 5)], "id": REGION}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "AID", "id": ACCOUNT}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws",
                    "id": "aws"}
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "value": AMI, "insecureValue": AMI, "type": "String",
                    "arn": "arn:aws:ssm:::parameter", "version": 1, "withDecryption": True, "id": args.args["name"]}
        raise AssertionError(f"the program made an unexpected call {args.token}")


ARCHES = ("x86_64", "aarch64")


def fake_archive(component: str, version: str, arch: str) -> bytes:
    """A small tar.gz laid out like the vendor's (``strip`` wrapping directories, then the executable)."""
    spec = COMPONENTS[component]
    asset = urls(component, version, arch)[0]
    top = [asset.removesuffix(".tar.gz")] * spec.strip
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, body, mode in ((spec.binary, f"#!/bin/sh\necho {component} {version} {arch}\n", 0o755),
                                 ("LICENSE", "Apache-2.0\n", 0o644)):
            info = tarfile.TarInfo("/".join([*top, name]))
            info.size, info.mode, info.mtime = len(body.encode()), mode, 0
            tar.addfile(info, io.BytesIO(body.encode()))
    return gzip.compress(raw.getvalue(), mtime=0)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FakeMirror:
    """A real HTTP server (``http.server`` in a thread) serving fake vendor archives and checksum files at the
    vendors' paths, in the vendors' formats (``sha256sums.txt``-style lists, Grafana's ``<asset>.sha256``)."""

    root: Path
    url: str
    server: http.server.ThreadingHTTPServer
    lock: Path
    cache: Path

    def path_of(self, url: str) -> Path:
        """The served file behind a mirror URL."""
        return self.root / urllib.parse.urlsplit(url).path.lstrip("/")

    def sha256(self, component: str, version: str, arch: str) -> str:
        """The digest of the archive served for (component, version, arch), computed from the served bytes."""
        return hashlib.sha256(self.path_of(urls(component, version, arch, self.url)[1]).read_bytes()).hexdigest()

    def publish(self) -> None:
        """(Re)write every archive and checksum file (tests may tamper with them, then call this)."""
        sums: dict[Path, list[str]] = {}
        for name, spec in COMPONENTS.items():
            for version in spec.versions:
                for arch in ARCHES:
                    asset, url, checksum_url = urls(name, version, arch, self.url)
                    data = fake_archive(name, version, arch)
                    target = self.path_of(url)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    digest = hashlib.sha256(data).hexdigest()
                    if spec.checksum_format == "single":
                        self.path_of(checksum_url).write_text(digest + "\n")
                    else:  # every asset of the release, plus one that must not be taken for ours
                        decoy = hashlib.sha256(asset.encode()).hexdigest()
                        sums.setdefault(self.path_of(checksum_url), []).extend(
                            [f"{digest}  {asset}", f"{decoy}  {asset.replace('linux', 'darwin')}"])
        for path, lines in sums.items():
            path.write_text("\n".join(sorted(lines)) + "\n")

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.root, ignore_errors=True)


def start_mirror() -> FakeMirror:
    """A new :class:`FakeMirror` on 127.0.0.1 (an ephemeral port), with its own empty lock and cache."""
    root = Path(tempfile.mkdtemp(prefix="jobfleet-mirror-"))
    served = root / "www"
    served.mkdir()
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # the base URL has a path of its own (as an internal mirror's may): the vendors' paths go below it
    mirror = FakeMirror(served, f"http://127.0.0.1:{server.server_address[1]}/mirror", server,
                        root / "releases.lock.json", root / "cache")
    mirror.publish()
    return mirror


@functools.cache
def shared_mirror() -> FakeMirror:
    """The mirror every program run uses unless told otherwise (started once per test process)."""
    mirror = start_mirror()
    atexit.register(mirror.close)
    return mirror


@contextmanager
def releases_env(lock: Path, cache: Path) -> Iterator[None]:
    """Point the program's release lock and cache (``infra.releases``) at ``lock`` and ``cache``."""
    saved = {k: os.environ.get(k) for k in ("JOBFLEET_RELEASES_LOCK", "JOBFLEET_RELEASES_CACHE")}
    os.environ["JOBFLEET_RELEASES_LOCK"], os.environ["JOBFLEET_RELEASES_CACHE"] = str(lock), str(cache)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stack_config(path: Path = ROOT / "Pulumi.dev.yaml") -> dict[str, str]:
    """A stack file's config as the Pulumi CLI hands it to a program (objects and lists as JSON)."""
    data = yaml.safe_load(path.read_text())["config"]
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict | list):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def dev_config(**overrides: Any) -> dict[str, str]:
    """Pulumi.dev.yaml plus test secrets and the local release mirror, with ``overrides`` (``key=None`` removes
    a key)."""
    config = {**stack_config(), **TEST_SECRETS, "jobfleet:releaseMirror": shared_mirror().url}
    for key, value in overrides.items():
        full = key if ":" in key else f"jobfleet:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = json.dumps(value) if isinstance(value, dict | list) else (
                ("true" if value else "false") if isinstance(value, bool) else str(value)
            )
    return config


def run_program(
    config: Mapping[str, str], stack: str = "dev", mocks: RecordingMocks | None = None,
    releases: tuple[Path, Path] | None = None,
) -> Program:
    """Run infra/__main__.py under mocks with ``config``; exceptions from the program propagate.

    ``releases``: the (lock file, cache directory) the program's release archives use; default: the shared
    mirror's (never the repository's ``infra/releases.lock.json``).
    """
    lock, cache = releases or (shared_mirror().lock, shared_mirror().cache)
    with releases_env(lock, cache):
        return _run(config, stack, mocks)


def _run(config: Mapping[str, str], stack: str, mocks: RecordingMocks | None) -> Program:
    mocks = mocks or RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="jobfleet", stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config), [k for k in config if k in TEST_SECRETS])
    exported: dict[str, Any] = {}
    original_export = pulumi.export

    def capture(name: str, value: Any) -> None:
        exported[name] = value

    @pulumi.runtime.test
    def run() -> Any:
        runpy.run_path(str(PROGRAM), run_name="__main__")
        return pulumi.Output.all(**{k: pulumi.Output.from_input(v) for k, v in exported.items()})

    pulumi.export = capture
    try:
        run()
    finally:
        pulumi.export = original_export
    program = Program(resources=mocks.resources, calls=mocks.calls)
    for key, value in exported.items():
        out = pulumi.Output.from_input(value)
        program.outputs[key] = _sync_await(out.future(with_unknowns=True))
        if _sync_await(out.is_secret()):
            program.secret_outputs.add(key)
    return program
