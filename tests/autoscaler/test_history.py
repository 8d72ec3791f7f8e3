"""The forecast's arrival history persists in real Redis: a new daemon resumes it instead of relearning it."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from autoscaler.backends.local import LocalBackend
from autoscaler.daemon import Daemon
from autoscaler.history import HistoryStore
from autoscaler.window import SeasonalForecast
from jobfleet.settings import load_settings
from tests.conftest import test_env as child_env


def _hourly(t: float) -> float:
    return 2.0 if (t % 3600) >= 1800 else 0.1


def test_a_restored_history_forecasts_what_the_original_did(redis: Redis) -> None:
    store = HistoryStore(redis, key="test:history:a")
    original = {"q": SeasonalForecast(period_s=3600.0)}
    seen, t = 0.0, 0.0
    while t < 3 * 3600:
        original["q"].add(t, seen)
        store.save(original, t)
        seen += _hourly(t) * 30
        t += 30.0
    fresh = {"q": SeasonalForecast(period_s=3600.0), "other": SeasonalForecast(period_s=3600.0)}
    assert store.load(fresh, t) > 100
    for probe in (t + 60, t + 1700, t + 1900, t + 3000):
        assert fresh["q"].forecast(probe, 90) == original["q"].forecast(probe, 90)
    assert (fresh["q"].forecast(t + 1900, 90) or 0) > 1.5 and fresh["other"].forecast(t, 90) is None
    stale = {"q": SeasonalForecast(period_s=3600.0)}
    store.load(stale, t + 30 * 86400)  # a month later every bin is too old: nothing is resumed
    assert stale["q"].snapshot(t)[0] is None
    assert 0 < redis.ttl("test:history:a") <= 9 * 86400


def test_trim_drops_bins_the_forecast_no_longer_uses(redis: Redis) -> None:
    store = HistoryStore(redis, key="test:history:b")
    f = {"q": SeasonalForecast(period_s=600.0, periods=2)}
    f["q"].add(0.0, 0.0)
    for t, seen in ((60.0, 5.0), (3000.0, 9.0)):
        f["q"].add(t, seen)
        store.save(f, t)
    assert redis.hexists("test:history:b", "q|1")
    store.trim(f, 3000.0)  # bins before 3000 - 3 * 600 s are gone
    assert not redis.hexists("test:history:b", "q|1") and redis.hexists("test:history:b", "q|50")


def test_a_new_daemon_resumes_the_history_its_predecessor_wrote(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    settings = load_settings(child_env(redis_url, tmp_path, JOBFLEET_QUEUES="hist"))
    store = HistoryStore(redis)
    seeded = {"hist": SeasonalForecast()}
    start = time.time() - 120
    seeded["hist"].add(start, 0.0)
    seeded["hist"].add(start + 60, 42.0)
    store.save(seeded, start + 60)
    backend = LocalBackend(settings, redis)
    try:
        daemon = Daemon(settings, backend, redis, dry_run=True)
        assert daemon.observer.seasonal["hist"].snapshot(start + 60) == (start, int((start + 60) // 60), 42.0)
    finally:
        backend.close()
        redis.delete("jobfleet:autoscaler:arrivals")
