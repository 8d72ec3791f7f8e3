"""prometheus-client multiprocess files that neither lose counts nor pile up.

RQ forks a work horse per job, so a host writes one ``counter_<pid>.db`` / ``histogram_<pid>.db`` per
process that ever recorded a value. The stock ``MultiProcessCollector`` reads every file on every scrape,
forever. :class:`CompactingMultiProcessCollector` first tidies the directory:

- counters/histograms/summaries of dead processes are folded into ``<type>_archive.db`` (sums are kept,
  so totals never go backwards) and their files removed;
- ``live*`` gauges of dead processes are removed (no stale busy/slot series after a crash or ``kill -9``).

Scrape cost therefore stays proportional to the live processes, not to the jobs ever run.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

ARCHIVE = "archive"
_SUMMED_TYPES = ("counter", "histogram", "summary")


def parse_db_name(path: str) -> tuple[str, str | None, str]:
    """``(type, gauge mode or None, process id)`` of a multiprocess file name like ``gauge_livesum_12.db``."""
    parts = os.path.basename(path)[: -len(".db")].split("_")
    if parts[0] == "gauge" and len(parts) >= 3:
        return "gauge", parts[1], "_".join(parts[2:])
    return parts[0], None, "_".join(parts[1:])


def pid_alive(ident: str) -> bool:
    """Whether the process named by a file's identifier still runs (non-numeric ids count as alive)."""
    if not ident.isdigit():
        return True
    try:
        os.kill(int(ident), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(int(ident))


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def tidy(directory: Path) -> tuple[int, int]:
    """Fold dead processes' counts into the archive and drop their live gauges: ``(folded, dropped)`` files."""
    lock_path = directory / ".compact.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _tidy_locked(directory)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tidy_locked(directory: Path) -> tuple[int, int]:
    dead_by_type: dict[str, list[str]] = {typ: [] for typ in _SUMMED_TYPES}
    dropped = 0
    for path in glob.glob(str(directory / "*.db")):
        typ, mode, ident = parse_db_name(path)
        if ident == ARCHIVE or pid_alive(ident):
            continue
        if typ == "gauge":
            if mode is not None and mode.startswith("live"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    dropped += 1
        elif typ in dead_by_type:
            dead_by_type[typ].append(path)
    folded = 0
    for typ, dead in dead_by_type.items():
        if dead:
            _fold(directory, typ, dead)
            folded += len(dead)
    return folded, dropped


def _fold(directory: Path, typ: str, dead: list[str]) -> None:
    archive = directory / f"{typ}_{ARCHIVE}.db"
    sources = ([str(archive)] if archive.exists() else []) + dead
    merged = MultiProcessCollector.merge(sources, accumulate=False)
    tmp = directory / f"{typ}_{ARCHIVE}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    out = MmapedDict(str(tmp))
    try:
        for key, value in _keyed_samples(merged):
            out.write_value(key, value, 0.0)
    finally:
        out.close()
    os.replace(tmp, archive)
    for path in dead:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _keyed_samples(metrics: Iterable[Metric]) -> Iterator[tuple[str, float]]:
    for metric in metrics:
        for sample in metric.samples:
            key = json.dumps([metric.name, sample.name, dict(sample.labels), metric.documentation], sort_keys=True)
            yield key, sample.value


class CompactingMultiProcessCollector(MultiProcessCollector):
    """A ``MultiProcessCollector`` that tidies the directory (see module doc) before each collection."""

    def __init__(self, directory: Path, registry: CollectorRegistry | None = None) -> None:
        self.directory = Path(directory)
        super().__init__(registry, path=str(self.directory))

    def collect(self) -> Iterable[Metric]:
        """Tidy, then merge the remaining files."""
        tidy(self.directory)
        return super().collect()
