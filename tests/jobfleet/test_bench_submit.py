"""The submission benchmark runs end to end and writes the JSON shape other tools read (no speed asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.submit import main


def test_bench_submit_writes_every_contender_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "submit.json"
    assert main(["--single", "20", "--bulk", "200", "--repeat", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    results = doc["results"]
    assert set(results) == {
        "rq Queue.enqueue (anchor)", "jobfleet submit", "jobfleet submit idempotency_key",
        "rq enqueue_many (anchor)", "jobfleet submit_many", "jobfleet submit_many idempotency_key",
    }
    for name, row in results.items():
        assert row["jobs_per_s"] > 0 and row["redis_commands_per_job"] > 0
        assert ("ratio_to_anchor" in row) == ("anchor" not in name)
    assert set(doc["goals"]) == {"submit >= 1.0x rq Queue.enqueue", "submit_many >= 20000 jobs/s",
                                 "submit_many with keys >= 20000 jobs/s"}
