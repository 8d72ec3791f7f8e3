"""Per-architecture wheelhouses for the release bundle: hosts install offline, every file hash-checked.

At ``pulumi up`` time (on the operator's machine, which has PyPI) ``pip download --only-binary=:all:
--platform ...`` resolves the runtime requirements for the hosts' Python (AL2023's python3.11) and CPU
architecture. The wheels go into the bundle under ``wheelhouse/<uname -m>/`` with a ``requirements.lock``
that pins every file (``name==version --hash=sha256:...``), and hosts run ``pip install --no-index
--require-hashes``: a boot needs neither PyPI nor a compiler, and installs exactly the bytes that were
resolved. A package without a wheel for an architecture fails the build, not a boot.

Wheelhouses are cached in ``infra/.build/wheelhouse`` by the hash of the requirements and architecture.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSION = "3.11"
"""The hosts' interpreter (``python3.11`` from the AL2023 repositories)."""
LOCK_FILE = "requirements.lock"
#: Wheel platform tags an AL2023 host (glibc 2.34) accepts, per ``uname -m`` name.
PLATFORMS: dict[str, tuple[str, ...]] = {
    "x86_64": ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64": ("manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux_2_17_aarch64",
                "manylinux2014_aarch64"),
}
_ARCH_NAMES = {"x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


class WheelhouseError(RuntimeError):
    """The requirements cannot be resolved to wheels for an architecture."""


@dataclass(frozen=True)
class Wheelhouse:
    """Wheels for one architecture and the hash-pinned lock that installs them."""

    arch: str
    directory: Path
    lock: str

    @property
    def wheels(self) -> list[Path]:
        """The wheel files, sorted by name."""
        return sorted(self.directory.glob("*.whl"))


def machine(architecture: str) -> str:
    """``uname -m`` name of an EC2 architecture (``arm64`` -> ``aarch64``)."""
    try:
        return _ARCH_NAMES[architecture]
    except KeyError:
        raise WheelhouseError(f"unknown architecture {architecture!r}") from None


def download_command(requirements_file: Path, arch: str, dest: Path) -> list[str]:
    """The ``pip download`` that resolves ``requirements_file`` to wheels for ``arch`` hosts."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
           "--abi", f"cp{PYTHON_VERSION.replace('.', '')}", "--abi", "abi3", "--abi", "none",
           "-r", str(requirements_file), "-d", str(dest)]
    for platform in PLATFORMS[machine(arch)]:
        cmd += ["--platform", platform]
    return cmd


def _wheel_name_version(path: Path) -> tuple[str, str]:
    name, version = path.name.removesuffix(".whl").split("-")[:2]
    return name.replace("_", "-").lower(), version


def lock_text(directory: Path) -> str:
    """``name==version --hash=sha256:...`` for every wheel in ``directory`` (what ``--require-hashes`` needs)."""
    lines = []
    for wheel in sorted(directory.glob("*.whl")):
        name, version = _wheel_name_version(wheel)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def build_wheelhouse(requirements: str, arch: str, cache_dir: Path, timeout: float = 600) -> Wheelhouse:
    """The wheelhouse of ``requirements`` for ``arch``, downloaded once and then served from ``cache_dir``."""
    arch = machine(arch)
    key = hashlib.sha256(f"{PYTHON_VERSION}\n{arch}\n{requirements}".encode()).hexdigest()[:16]
    final = cache_dir / f"{arch}-{key}"
    if not (final / LOCK_FILE).is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{arch}-", dir=cache_dir))
        try:
            (work / "requirements.in").write_text(requirements)
            done = subprocess.run(download_command(work / "requirements.in", arch, work / "wheels"),
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
                raise WheelhouseError(f"cannot resolve the host requirements to {arch} wheels:\n{tail}")
            (work / "wheels" / LOCK_FILE).write_text(lock_text(work / "wheels"))
            try:
                os.replace(work / "wheels", final)
            except OSError:  # a concurrent build got there first: use its (identical) result
                if not (final / LOCK_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return Wheelhouse(arch, final, (final / LOCK_FILE).read_text())
