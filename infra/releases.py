"""Vendor release archives for the Grafana host: pinned versions, hash-locked, shipped through the S3 bundle bucket.

The Grafana host runs Grafana, Prometheus, Tempo and the OpenTelemetry collector from the vendors' official
release archives (no Docker, no registry pull at boot). :data:`COMPONENTS` pins where each archive and its
vendor checksum file live; ``infra/releases.lock.json`` holds the sha256 of every (component, version,
architecture) in use. At ``pulumi up`` (on the operator's machine) :func:`fetch_archive`

- with a locked digest: downloads the archive (once; cached in ``infra/.build/releases/<sha256>/``) and refuses
  it unless its sha256 is the locked one;
- without one: reads the vendor's checksum file, takes the digest of exactly that asset, verifies the download
  against it and writes it into the lock (the operator commits the lock; from then on the digest is pinned).

The program uploads each verified archive to the artifact bucket under ``vendor/<component>/<sha256>/`` and
renders key and digest into the host's user data, which checks ``sha256sum -c`` again before unpacking.

``jobfleet:releaseMirror`` replaces the vendors' ``https://<host>`` with an internal mirror (same paths). The
environment variables ``JOBFLEET_RELEASES_LOCK`` and ``JOBFLEET_RELEASES_CACHE`` move the lock file and the
cache (the tests point them at temporary files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.wheelhouse import machine

INFRA_DIR = Path(__file__).resolve().parent
LOCK_FILE = INFRA_DIR / "releases.lock.json"
CACHE_DIR = INFRA_DIR / ".build" / "releases"
KEY_PREFIX = "vendor/"
"""S3 prefix of the vendor archives in the artifact bucket (only the Grafana role may read it)."""
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(RuntimeError):
    """A vendor archive cannot be downloaded or does not match its pinned or published sha256."""


@dataclass(frozen=True)
class Component:
    """Where one vendor publishes its Linux release archives.

    ``url`` and ``checksums`` are templates over ``{version}`` and ``{goarch}`` (``amd64``/``arm64``);
    ``checksum_format`` is ``sums`` (``<sha256>  <asset>`` lines for every asset of the release) or ``single``
    (a ``<asset>.sha256`` file holding that asset's digest). ``strip`` is the number of leading path parts
    the archive wraps its files in, ``binary`` the executable's path after stripping them.
    """

    name: str
    versions: tuple[str, ...]
    url: str
    checksums: str
    checksum_format: str
    strip: int
    binary: str


COMPONENTS: dict[str, Component] = {
    "prometheus": Component(
        "prometheus", ("3.5.0",),
        "https://github.com/prometheus/prometheus/releases/download/v{version}/prometheus-{version}.linux-{goarch}.tar.gz",
        "https://github.com/prometheus/prometheus/releases/download/v{version}/sha256sums.txt",
        "sums", 1, "prometheus",
    ),
    "grafana": Component(
        "grafana", ("12.1.1",),
        "https://dl.grafana.com/oss/release/grafana-{version}.linux-{goarch}.tar.gz",
        "https://dl.grafana.com/oss/release/grafana-{version}.linux-{goarch}.tar.gz.sha256",
        "single", 1, "bin/grafana",
    ),
    "tempo": Component(
        "tempo", ("2.8.2",),
        "https://github.com/grafana/tempo/releases/download/v{version}/tempo_{version}_linux_{goarch}.tar.gz",
        "https://github.com/grafana/tempo/releases/download/v{version}/SHA256SUMS",
        "sums", 0, "tempo",
    ),
    "otelcol-contrib": Component(
        "otelcol-contrib", ("0.132.0",),
        "https://github.com/open-telemetry/opentelemetry-collector-releases/releases/download/v{version}/"
        "otelcol-contrib_{version}_linux_{goarch}.tar.gz",
        "https://github.com/open-telemetry/opentelemetry-collector-releases/releases/download/v{version}/"
        "opentelemetry-collector-releases_otelcol-contrib_checksums.txt",
        "sums", 0, "otelcol-contrib",
    ),
}
"""The four archives the Grafana host installs; the first version of each is the default."""


@dataclass(frozen=True)
class Archive:
    """A verified vendor archive on disk and where the host finds it."""

    component: str
    version: str
    arch: str
    asset: str
    sha256: str
    path: Path
    strip: int
    binary: str

    @property
    def key(self) -> str:
        """S3 key in the artifact bucket: ``vendor/<component>/<sha256>/<asset>`` (content-addressed)."""
        return f"{KEY_PREFIX}{self.component}/{self.sha256}/{self.asset}"

    @property
    def home(self) -> str:
        """Install directory on the host: ``/opt/jobfleet/<component>-<version>``."""
        return f"/opt/jobfleet/{self.component}-{self.version}"


def default_versions() -> dict[str, str]:
    """The pinned default version of every component."""
    return {name: c.versions[0] for name, c in COMPONENTS.items()}


def check_version(component: str, version: str) -> str:
    """``version`` if the table pins it for ``component``, else a ValueError naming the supported ones."""
    supported = COMPONENTS[component].versions
    if version not in supported:
        raise ValueError(f"{component} {version} is not in infra/releases.py; supported: {', '.join(supported)}")
    return version


def _mirrored(url: str, mirror: str) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (the path is kept)."""
    if not mirror:
        return url
    return mirror.rstrip("/") + urllib.parse.urlsplit(url).path


def urls(component: str, version: str, arch: str, mirror: str = "") -> tuple[str, str, str]:
    """Asset name, archive URL and checksum-file URL of ``component`` ``version`` for ``arch``."""
    spec = COMPONENTS[component]
    check_version(component, version)
    values = {"version": version, "goarch": _GOARCH[machine(arch)]}
    url = spec.url.format(**values)
    return url.rsplit("/", 1)[-1], _mirrored(url, mirror), _mirrored(spec.checksums.format(**values), mirror)


def parse_checksum(text: str, asset: str, fmt: str) -> str:
    """The sha256 the vendor's checksum file gives for exactly ``asset``."""
    found: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        digest = parts[0].lower()
        if fmt == "single":
            name = parts[1].lstrip("*").removeprefix("./") if len(parts) > 1 else asset
        else:
            if len(parts) != 2:
                continue
            name = parts[1].lstrip("*").removeprefix("./")
        if name == asset and _SHA256.match(digest):
            found.add(digest)
    if len(found) != 1:
        problem = "no sha256" if not found else "conflicting sha256 values"
        raise ReleaseError(f"the checksum file has {problem} for {asset}")
    return found.pop()


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # http(s) only: config checks the mirror
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ReleaseError(f"cannot download {url}: {exc}") from None


def read_lock(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The lock file's ``{component: {version: {arch: sha256}}}`` (empty when the file is missing)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{path} must map component -> version -> architecture -> sha256")
    return data


def _locked(lock: Mapping[str, Mapping[str, Mapping[str, str]]], component: str, version: str,
            arch: str, path: Path) -> str | None:
    digest = lock.get(component, {}).get(version, {}).get(arch)
    if digest is not None and not _SHA256.match(str(digest)):
        raise ReleaseError(f"{path}: {component} {version} {arch} is not a sha256 ({digest!r})")
    return digest


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _record(path: Path, component: str, version: str, arch: str, digest: str) -> None:
    lock = read_lock(path)
    lock.setdefault(component, {}).setdefault(version, {})[arch] = digest
    _write_atomic(path, (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def fetch_archive(
    component: str, version: str, arch: str, *, mirror: str = "", lock_path: Path = LOCK_FILE,
    cache_dir: Path = CACHE_DIR, timeout: float = 300,
) -> tuple[Archive, bool]:
    """The verified archive and whether its digest was learned (and written into ``lock_path``) just now."""
    arch = machine(arch)
    spec = COMPONENTS[component]
    asset, url, checksum_url = urls(component, version, arch, mirror)
    digest = _locked(read_lock(lock_path), component, version, arch, lock_path)
    learned = digest is None
    if digest is None:
        try:
            digest = parse_checksum(_get(checksum_url, timeout).decode(errors="replace"), asset, spec.checksum_format)
        except ReleaseError as exc:
            raise ReleaseError(f"cannot learn the sha256 of {asset} from {checksum_url}: {exc}") from None
    path = cache_dir / digest / asset
    if not (path.is_file() and _digest(path) == digest):
        data = _get(url, timeout)
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            source = f"the vendor checksum file {checksum_url}" if learned else f"{lock_path.name}"
            raise ReleaseError(
                f"{asset} from {url} has sha256 {got}, but {source} pins {digest}; refusing it "
                f"(a tampered or re-published archive; check it, then fix or remove the {component} {version} "
                f"{arch} entry of {lock_path})"
            )
        _write_atomic(path, data)
    if learned:
        _record(lock_path, component, version, arch, digest)
    return Archive(component, version, arch, asset, digest, path, spec.strip, spec.binary), learned


def lock_path() -> Path:
    """The lock file in use (``JOBFLEET_RELEASES_LOCK`` or ``infra/releases.lock.json``)."""
    return Path(os.environ.get("JOBFLEET_RELEASES_LOCK") or LOCK_FILE)


def cache_path() -> Path:
    """The download cache in use (``JOBFLEET_RELEASES_CACHE`` or ``infra/.build/releases``)."""
    return Path(os.environ.get("JOBFLEET_RELEASES_CACHE") or CACHE_DIR)


def fetch_archives(versions: Mapping[str, str], arch: str, *, mirror: str = "") -> tuple[Archive, ...]:
    """Every component's verified archive for ``arch``; prints one line when the lock file learned digests."""
    lock, cache = lock_path(), cache_path()
    results = [fetch_archive(name, versions[name], arch, mirror=mirror, lock_path=lock, cache_dir=cache)
               for name in COMPONENTS]
    learned = [archive.asset for archive, new in results if new]
    if learned:
        print(f"jobfleet: recorded the vendors' sha256 of {', '.join(learned)} in {lock}; review and commit it")
    return tuple(archive for archive, _ in results)
