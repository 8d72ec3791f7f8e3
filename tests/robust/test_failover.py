"""Redis failover with a real primary and replica: clients follow the promoted replica; an asynchronous
replica loses what it had not received, an acknowledged submit (WAIT) never reports such a job accepted."""

from __future__ import annotations

from bench.failover import run_failover


def test_failover_async_loses_the_unreplicated_tail_and_acknowledged_submits_lose_nothing() -> None:
    lagging = run_failover(ack_replicas=0, seconds=3.0, replica_lag_s=0.6)
    print("async:", lagging)
    assert lagging.accepted_after > 0  # the submitter and the workers followed the endpoint to the new primary
    assert lagging.unfinished == 0  # every job the promoted replica holds ran
    assert lagging.lost > 0  # accepted by the dead primary, never replicated: the risk being measured

    acked = run_failover(ack_replicas=1, seconds=3.0, replica_lag_s=0.6)
    print("acknowledged:", acked)
    assert acked.accepted > 0 and acked.lost == 0 and acked.unfinished == 0
