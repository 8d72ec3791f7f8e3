"""Vendor release archives of the Grafana host: fetched over real HTTP (a local ``http.server`` mirror serving
fake archives and checksum files in the vendors' formats), verified against the lock or the vendor checksum
file, uploaded to the artifact bucket, readable by the Grafana role only, and installed by grafana.sh."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.access import allowed
from infra.config import ConfigError
from infra.policies import Resource, role_documents
from infra.releases import (
    COMPONENTS,
    LOCK_FILE,
    ReleaseError,
    fetch_archive,
    parse_checksum,
    read_lock,
    urls,
)
from tests.infra.harness import (
    ARCHES,
    FakeMirror,
    Program,
    dev_config,
    run_program,
    shared_mirror,
    start_mirror,
)
from tests.infra.test_config import _load
from tests.infra.test_userdata import _shellcheck, user_data

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
VERSIONS = {name: spec.versions[0] for name, spec in COMPONENTS.items()}


@pytest.fixture
def mirror() -> Iterator[FakeMirror]:
    """A mirror of this test's own (so it may be tampered with)."""
    own = start_mirror()
    yield own
    own.close()


def _vendor_objects(program: Program) -> list[dict[str, Any]]:
    return [r.inputs for r in program.of_type(OBJECT) if r.inputs["key"].startswith("vendor/")]


@pytest.mark.parametrize(("instance_type", "arch", "goarch"), [("t3.small", "x86_64", "amd64"),
                                                               ("t4g.small", "aarch64", "arm64")])
def test_one_verified_object_per_archive_for_the_grafana_hosts_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], instance_type: str, arch: str, goarch: str,
) -> None:
    mirror = shared_mirror()
    lock = tmp_path / "releases.lock.json"  # empty: every digest is learned from the checksum files
    program = run_program(dev_config(grafanaInstanceType=instance_type), releases=(lock, tmp_path / "cache"))
    objects = _vendor_objects(program)
    assert sorted(o["key"].split("/")[1] for o in objects) == sorted(COMPONENTS)
    text = user_data(program, "grafana")
    learned = read_lock(lock)
    for name, version in VERSIONS.items():
        digest = mirror.sha256(name, version, arch)
        asset = urls(name, version, arch)[0]
        assert goarch in asset and asset.endswith(".tar.gz")
        (obj,) = [o for o in objects if o["key"].split("/")[1] == name]
        assert obj["key"] == f"vendor/{name}/{digest}/{asset}"
        assert obj["serverSideEncryption"] == "AES256" and obj["tags"]["jobfleet:sha256"] == digest
        assert Path(obj["source"].path).read_bytes() == mirror.path_of(urls(name, version, arch, mirror.url)[1]
                                                                        ).read_bytes()
        assert f"install_archive /opt/jobfleet/{name}-{version} {obj['key']} {digest} " in text
        assert learned[name][version] == {arch: digest}
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "review and commit it" in out[0] and str(lock) in out[0]
    # a second run with the lock as written learns nothing and prints nothing
    run_program(dev_config(grafanaInstanceType=instance_type), releases=(lock, tmp_path / "cache"))
    assert capsys.readouterr().out == "" and read_lock(lock) == learned


def test_grafana_user_data_pulls_no_image_and_installs_no_container_runtime(dev: Program) -> None:
    text = user_data(dev, "grafana")
    for banned in ("docker", "podman", "containerd", "ghcr.io", "quay.io", "registry", "image"):
        assert banned not in text.lower(), banned
    # dnf only for AL2023 repository packages (the agent; python3.11 sits in the shared, here uncalled, installer)
    packages = {p for m in re.finditer(r"dnf install -y -q (.*)", text) for p in m.group(1).split()}
    assert packages == {"amazon-cloudwatch-agent", "python3.11", "python3.11-pip"}
    assert not re.search(r"^install_release$", text, re.M)
    for unit in ("prometheus", "tempo", "otelcol", "grafana"):
        body = re.search(rf"jobfleet-{unit}\.service <<'UNIT'\n(.*?)\nUNIT\n", text, re.S)
        assert body, unit
        for line in ("DynamicUser=yes", f"StateDirectory=jobfleet/{unit}", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "PrivateTmp=yes", "Restart=always"):
            assert line in body.group(1), (unit, line)
    assert "ExecStart=/opt/jobfleet/prometheus-3.5.0/prometheus \\\n  --config.file=/opt/jobfleet/observability/" \
           "observability/prometheus/prometheus-aws.yml" in text
    assert "ExecStart=/opt/jobfleet/otelcol-contrib-0.132.0/otelcol-contrib --config=/opt/jobfleet/observability/" \
           "observability/otel/collector.yaml" in text
    assert "ExecStart=/opt/jobfleet/tempo-2.8.2/tempo -config.file=/etc/jobfleet/tempo.yaml" in text
    assert "ExecStart=/opt/jobfleet/grafana-12.1.1/bin/grafana server --homepath=/opt/jobfleet/grafana-12.1.1" in text
    assert "ExecStartPre=+/usr/local/bin/jobfleet-fetch-secrets /run/jobfleet-secrets/grafana.env" in text


def test_a_wrong_digest_in_the_lock_stops_the_program(tmp_path: Path) -> None:
    lock = tmp_path / "releases.lock.json"
    wrong = "0" * 64
    lock.write_text(json.dumps({"prometheus": {"3.5.0": {"x86_64": wrong}}}))
    with pytest.raises(ReleaseError) as err:
        run_program(dev_config(), releases=(lock, tmp_path / "cache"))
    got = shared_mirror().sha256("prometheus", "3.5.0", "x86_64")
    assert str(err.value).startswith(f"prometheus-3.5.0.linux-amd64.tar.gz from {shared_mirror().url}/prometheus/")
    assert f"has sha256 {got}, but releases.lock.json pins {wrong}; refusing it" in str(err.value)
    assert str(lock) in str(err.value)
    assert json.loads(lock.read_text()) == {"prometheus": {"3.5.0": {"x86_64": wrong}}}  # never "fixed" silently
    assert not (tmp_path / "cache" / got).exists()


def test_an_archive_not_matching_the_vendor_checksum_file_is_refused(mirror: FakeMirror, tmp_path: Path) -> None:
    asset, url, _ = urls("tempo", "2.8.2", "aarch64", mirror.url)
    mirror.path_of(url).write_bytes(b"not the archive the checksum file describes")
    lock = tmp_path / "lock.json"
    with pytest.raises(ReleaseError, match=rf"{asset} from .* but the vendor checksum file .*SHA256SUMS pins"):
        fetch_archive("tempo", "2.8.2", "arm64", mirror=mirror.url, lock_path=lock, cache_dir=tmp_path / "c")
    assert not lock.exists()  # nothing learned from a failed verification


def test_locked_and_cached_archives_need_no_network(mirror: FakeMirror, tmp_path: Path) -> None:
    lock, cache = tmp_path / "lock.json", tmp_path / "cache"
    first, learned = fetch_archive("grafana", "12.1.1", "x86_64", mirror=mirror.url, lock_path=lock, cache_dir=cache)
    assert learned and first.path == cache / first.sha256 / "grafana-12.1.1.linux-amd64.tar.gz"
    dead = mirror.url
    mirror.close()
    again, learned = fetch_archive("grafana", "12.1.1", "x86_64", mirror=dead, lock_path=lock, cache_dir=cache)
    assert not learned and again == first
    first.path.write_bytes(b"corrupted cache entry")  # a bad cache entry is downloaded again, and that fails here
    with pytest.raises(ReleaseError, match=r"cannot download http://127\.0\.0\.1"):
        fetch_archive("grafana", "12.1.1", "x86_64", mirror=dead, lock_path=lock, cache_dir=cache)


def test_checksum_files_yield_exactly_the_asset_asked_for() -> None:
    asset = "prometheus-3.5.0.linux-amd64.tar.gz"
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    sums = f"{b}  prometheus-3.5.0.linux-amd64.tar.gz.sbom\n{c}  prometheus-3.5.0.linux-arm64.tar.gz\n{a} *{asset}\n"
    assert parse_checksum(sums, asset, "sums") == a
    assert parse_checksum(f"{a.upper()}\n", asset, "single") == a
    assert parse_checksum(f"{a}  {asset}\n", asset, "single") == a
    with pytest.raises(ReleaseError, match=f"no sha256 for {asset}"):
        parse_checksum(f"{c}  prometheus-3.5.0.linux-arm64.tar.gz\n", asset, "sums")
    with pytest.raises(ReleaseError, match="conflicting"):
        parse_checksum(f"{a}  {asset}\n{b}  {asset}\n", asset, "sums")
    with pytest.raises(ReleaseError, match="no sha256"):
        parse_checksum("<html>Not Found</html>\n", asset, "single")


def test_urls_follow_the_vendors_naming_and_the_mirror_keeps_their_paths() -> None:
    assert urls("prometheus", "3.5.0", "arm64") == (
        "prometheus-3.5.0.linux-arm64.tar.gz",
        "https://github.com/prometheus/prometheus/releases/download/v3.5.0/prometheus-3.5.0.linux-arm64.tar.gz",
        "https://github.com/prometheus/prometheus/releases/download/v3.5.0/sha256sums.txt")
    _, url, sums = urls("grafana", "12.1.1", "x86_64", "https://mirror.example.com/vendors/")
    assert url == "https://mirror.example.com/vendors/oss/release/grafana-12.1.1.linux-amd64.tar.gz"
    assert sums == url + ".sha256"
    assert urls("otelcol-contrib", "0.132.0", "x86_64")[2].endswith(
        "/v0.132.0/opentelemetry-collector-releases_otelcol-contrib_checksums.txt")
    assert urls("tempo", "2.8.2", "aarch64")[0] == "tempo_2.8.2_linux_arm64.tar.gz"


def test_the_committed_lock_holds_only_pinned_entries() -> None:
    lock = read_lock(LOCK_FILE)
    for component, versions in lock.items():
        assert component in COMPONENTS
        for version, digests in versions.items():
            assert version in COMPONENTS[component].versions
            assert set(digests) <= set(ARCHES)
            assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests.values())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"grafanaVersion": "12.2.0"},
     "jobfleet:grafanaVersion='12.2.0' is not allowed: infra/releases.py pins no grafana release of that version "
     "(expected one of 12.1.1)"),
    ({"otelcolVersion": "latest"}, "jobfleet:otelcolVersion='latest' is not allowed"),
    ({"releaseMirror": "ftp://mirror.example.com"}, "jobfleet:releaseMirror='ftp://mirror.example.com' is not allowed"),
    ({"releaseMirror": "https://"}, "jobfleet:releaseMirror"),
    ({"releaseMirror": "https://m.example.com/x?token=1"}, "not an http(s) URL"),
])
def test_bad_release_config_fails_with_one_clear_message(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(**overrides)
    assert message in str(err.value)


def test_release_config_values() -> None:
    cfg = _load(releaseMirror="https://mirror.example.com/vendors/")
    assert cfg.release_mirror == "https://mirror.example.com/vendors"
    assert cfg.observability_versions == VERSIONS
    assert _load(releaseMirror="").release_mirror == ""


def test_only_the_grafana_role_reads_the_vendor_archives(dev: Program) -> None:
    docs = role_documents([Resource(r.typ, r.name, r.inputs, r.id) for r in dev.resources])
    bucket = dev.one("aws:s3/bucket:Bucket").id
    keys = [o["key"] for o in _vendor_objects(dev)]
    assert len(keys) == len(COMPONENTS)
    for key in keys:
        arn = f"arn:aws:s3:::{bucket}/{key}"
        assert allowed(docs["jobfleet-dev-grafana"], "s3:GetObject", arn), key
        for role in ("worker", "monitoring", "dashboard"):
            assert not allowed(docs[f"jobfleet-dev-{role}"], "s3:GetObject", arn), (role, key)
    # and the Grafana role reads nothing else of the bucket but its provisioning bundle
    assert not allowed(docs["jobfleet-dev-grafana"], "s3:GetObject", f"arn:aws:s3:::{bucket}/releases/jobfleet-x")


STUBS = {
    # `aws s3 cp --only-show-errors s3://BUCKET/KEY DEST`: copies the mirror's file for KEY's asset name
    "aws": '#!/bin/bash\necho "$*" >> "$CALLS"\ncp "$SERVED/${4##*/}" "$5"\n',
    "chown": "#!/bin/bash\nexit 0\n",
}


def _install(tmp_path: Path, text: str, args: list[str], served: Path) -> subprocess.CompletedProcess[str]:
    """Run grafana.sh's rendered install_archive function (from the user data) with ``args``."""
    function = re.search(r"^install_archive\(\) \{\n.*?^\}\n", text, re.S | re.M)
    assert function, "no install_archive function in the Grafana user data"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    script = "\n".join(["#!/bin/bash", "set -euo pipefail", "readonly ARTIFACT_BUCKET=artifacts-abc123",
                        "log() { printf '%s\\n' \"$*\"; }", 'retry() { "$@"; }', function.group(0),
                        'install_archive "$@"'])
    return subprocess.run(["bash", "-c", script, "install", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls"),
                               "SERVED": str(served)})


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_grafana_sh_installs_only_an_archive_with_the_rendered_digest(
    dev: Program, tmp_path: Path, component: str,
) -> None:
    mirror, text = shared_mirror(), user_data(dev, "grafana")
    line = next(row for row in text.splitlines() if row.startswith(f"install_archive /opt/jobfleet/{component}-"))
    _, home, key, digest, strip, binary = line.split()
    served = mirror.path_of(urls(component, VERSIONS[component], "x86_64", mirror.url)[1]).parent
    dest = tmp_path / "opt" / Path(home).name
    done = _install(tmp_path, text, [str(dest), key, digest, strip, binary], served)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "calls").read_text().startswith(f"s3 cp --only-show-errors s3://artifacts-abc123/{key} ")
    executable = dest / binary
    out = subprocess.run([str(executable)], capture_output=True, text=True, timeout=10).stdout
    assert out == f"{component} {VERSIONS[component]} x86_64\n"  # the unpacked vendor layout, stripped right
    other = tmp_path / "other"
    bad = _install(tmp_path, text, [str(other), key, "f" * 64, strip, binary], served)
    assert bad.returncode != 0 and "sha256 mismatch, refusing it" in bad.stdout
    assert not other.exists() and not Path(f"{other}.new").exists()


def test_grafana_user_data_passes_shellcheck_with_every_heredoc(dev: Program) -> None:
    text = user_data(dev, "grafana")
    _shellcheck(text, "grafana")
    assert text.count("install_archive /opt/jobfleet/") == len(COMPONENTS)
