"""The pure policy: unit cases for the behaviours the issue names, and hypothesis properties for its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policy import (
    InstanceState,
    Observation,
    PolicyConfig,
    QueueState,
    arrival_estimate,
    decide,
    erlang_c,
    steady_slots,
)

NOW = 1_000_000.0
CFG = PolicyConfig(min_instances=0, max_instances=20, slots_per_instance=1, target_wait_s=30, boot_time_s=90,
                   idle_hold_s=90)


def ready(iid: str, busy: int = 0, idle_for: float | None = None, slots: int = 1) -> InstanceState:
    return InstanceState(id=iid, slots=slots, busy=busy, launched_at=NOW - 1000, ready=True,
                         idle_since=None if busy else NOW - (idle_for or 0.0))


def obs(queued: int = 0, started: int = 0, instances: tuple[InstanceState, ...] = (), rate: float = 0.0,
        service: float | None = 10.0, age: float = 0.0, window: float = 0.0,
        recent: float | None = None) -> Observation:
    q = QueueState("default", queued=queued, started=started, arrival_rate=rate, completion_rate=max(rate, 0.1),
                   mean_service_s=service, rate_window_s=window, recent_arrival_rate=recent,
                   recent_window_s=60.0 if recent is not None else 0.0)
    return Observation(now=NOW, observed_at=NOW - age, desired=len(instances), queues=(q,), instances=instances)


def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 3.0) == 1.0
    assert steady_slots(0.0, 10, 30) == 0
    assert steady_slots(1.0, 10, 30) > 10  # load 10 erlangs needs more than 10 slots


def test_burst_scales_out_straight_to_target_in_one_decision() -> None:
    d = decide(obs(queued=200, instances=(ready("a", busy=1),), started=1), CFG)
    assert d.code == "scale_out" and d.desired == CFG.max_instances and not d.drain


def test_max_step_limits_the_step() -> None:
    cfg = PolicyConfig(max_instances=20, max_step=2, boot_time_s=90, idle_hold_s=90)
    assert decide(obs(queued=200, instances=(ready("a", busy=1),), started=1), cfg).desired == 3


def test_wakes_from_zero_on_the_first_job() -> None:
    d = decide(obs(queued=1, service=None), CFG)
    assert d.desired == 1 and d.code == "scale_out"


def test_running_work_counts_when_the_queue_list_is_empty() -> None:
    """RQ moves taken jobs to the started registry: LLEN=0 while all are busy must not scale in."""
    fleet = tuple(ready(f"i{k}", busy=1) for k in range(5))
    d = decide(obs(queued=0, started=5, instances=fleet), CFG)
    assert d.desired == 5 and d.drain == ()


def test_scale_in_only_after_the_idle_hold_and_longest_idle_first() -> None:
    fleet = (ready("busy", busy=1), ready("fresh", idle_for=10), ready("old", idle_for=500), ready("mid", idle_for=100))
    d = decide(obs(started=1, instances=fleet), CFG)
    assert d.code == "scale_in" and d.drain == ("old", "mid") and d.desired == 2
    d2 = decide(obs(started=1, instances=(ready("busy", busy=1), ready("fresh", idle_for=10))), CFG)
    assert d2.drain == () and d2.desired == 2 and d2.code == "hold"


def test_rate_noise_band_holds_a_fleet_inside_it() -> None:
    """0.5 jobs/s over 300 s is 150 arrivals (±8 %): 6 slots sit inside the band, so neither out nor in."""
    rate, noise = arrival_estimate([QueueState("q", 0, 0, arrival_rate=0.5, rate_window_s=300)])
    assert rate == 0.5 and noise == pytest.approx(1 / 150**0.5)
    low = steady_slots(0.5 * (1 - noise), 10, 30)
    high = steady_slots(0.5 * (1 + noise), 10, 30)
    assert low < high
    for size in range(low, high + 1):
        fleet = tuple(ready(f"i{k}", busy=int(k < 4), idle_for=1000) for k in range(size))
        d = decide(obs(started=4, instances=fleet, rate=0.5, window=300), CFG)
        assert d.desired == size and d.drain == (), d.reason
    fleet = tuple(ready(f"i{k}", busy=int(k < 4), idle_for=1000) for k in range(low - 1))
    assert decide(obs(started=4, instances=fleet, rate=0.5, window=300), CFG).desired == low


def test_recent_minute_caps_a_served_burst_but_not_sparse_arrivals() -> None:
    burst = [QueueState("q", 0, 0, arrival_rate=1.7, rate_window_s=300, recent_arrival_rate=0.1, recent_window_s=60)]
    assert arrival_estimate(burst)[0] == pytest.approx((6 + 1 + 7**0.5) / 60)
    sparse = [QueueState("q", 0, 0, arrival_rate=0.01, rate_window_s=300, recent_arrival_rate=0.0, recent_window_s=60)]
    assert arrival_estimate(sparse)[0] == 0.01


def test_far_surplus_after_a_burst_drains_after_the_fast_hold() -> None:
    """40 idle instances after a burst, the pessimistic need is 2: all but 4 go once idle 15 s."""
    fleet = (ready("busy", busy=1), *(ready(f"i{k:02d}", idle_for=20) for k in range(39)), ready("new", idle_for=5))
    d = decide(obs(started=1, instances=fleet, rate=0.1, window=300, recent=0.1), CFG)
    keep = decide(obs(started=1, instances=fleet[:1], rate=0.1, window=300, recent=0.1), CFG).desired
    assert d.code == "scale_in" and "busy" not in d.drain and "new" not in d.drain
    assert d.desired == 2 * keep, d.reason
    # the near surplus (between the need and twice it) still waits for the full idle hold
    fleet2 = (ready("busy", busy=1), *(ready(f"j{k}", idle_for=20) for k in range(2 * keep - 1)))
    assert decide(obs(started=1, instances=fleet2, rate=0.1, window=300, recent=0.1), CFG).drain == ()


def test_booting_instances_count_at_their_ready_time() -> None:
    booting = tuple(InstanceState(id=f"b{k}", slots=1, busy=0, launched_at=NOW - 80, ready=False) for k in range(5))
    with_booting = decide(obs(queued=10, instances=booting), CFG)
    assert with_booting.desired <= 5 + 1  # the 5 nearly-ready instances clear most of the backlog


@pytest.mark.parametrize("age,error", [(31.0, None), (0.0, "redis: ConnectionError")])
def test_stale_or_failed_observation_holds_and_says_why(age: float, error: str | None) -> None:
    fleet = (ready("a", idle_for=1000), ready("b", busy=1))
    o = obs(queued=100, started=1, instances=fleet, age=age)
    if error:
        o = Observation(now=NOW, observed_at=None, desired=2, instances=fleet, error=error)
    d = decide(o, CFG)
    assert d.desired == 2 and d.drain == () and d.hold and d.code == "stale"
    assert ("stale" in d.reason) if age else ("ConnectionError" in d.reason)


def test_bad_config_is_rejected_with_every_problem() -> None:
    with pytest.raises(ValueError, match=r"max_instances=0.*target_wait_s=-1.*'low'=-2"):
        PolicyConfig(max_instances=0, target_wait_s=-1, queue_targets=(("low", -2),))


# -- properties ---------------------------------------------------------------------------------------------------
@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Observation, PolicyConfig]:
    mx = draw(st.integers(1, 30))
    cfg = PolicyConfig(
        min_instances=draw(st.integers(0, mx)), max_instances=mx, slots_per_instance=draw(st.integers(1, 4)),
        target_wait_s=draw(st.floats(1, 600)), boot_time_s=draw(st.floats(0, 300)),
        idle_hold_s=draw(st.floats(0, 300)), max_step=draw(st.integers(0, 5)), stale_after_s=30,
        fast_drain_s=draw(st.floats(0, 60)), noise_band=draw(st.floats(0, 3)),
    )
    n = draw(st.integers(0, mx))
    instances = []
    for k in range(n):
        is_ready = draw(st.booleans())
        busy = draw(st.integers(0, cfg.slots_per_instance)) if is_ready else 0
        instances.append(InstanceState(
            id=f"i{k}", slots=cfg.slots_per_instance, busy=busy, launched_at=NOW - draw(st.floats(0, 1000)),
            ready=is_ready, idle_since=NOW - draw(st.floats(0, 1000)) if is_ready and busy == 0 else None,
            healthy=draw(st.booleans()),
        ))
    queues = tuple(
        QueueState(f"q{j}", queued=draw(st.integers(0, 500)), started=draw(st.integers(0, 50)),
                   oldest_age_s=draw(st.floats(0, 1000)), arrival_rate=draw(st.floats(0, 20)),
                   completion_rate=draw(st.floats(0, 20)), mean_service_s=draw(st.none() | st.floats(0.01, 600)),
                   rate_window_s=draw(st.floats(0, 600)), recent_arrival_rate=draw(st.none() | st.floats(0, 20)),
                   recent_window_s=draw(st.floats(0, 60)))
        for j in range(draw(st.integers(0, 3)))
    )
    observed_at = draw(st.none() | st.floats(NOW - 100, NOW))
    error = draw(st.none() | st.just("redis: timeout"))
    floor = draw(st.none() | st.integers(0, 10))
    return Observation(now=NOW, observed_at=observed_at, desired=n, queues=queues, instances=tuple(instances),
                       error=error, idle_slots_floor=floor), cfg


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_invariants(case: tuple[Observation, PolicyConfig]) -> None:
    o, cfg = case
    d = decide(o, cfg)
    busy_ids = {i.id for i in o.instances if i.busy > 0}
    assert cfg.min_instances <= d.desired <= cfg.max_instances
    assert d.desired >= o.busy_instances
    assert not busy_ids & set(d.drain), "drained a busy instance"
    assert all(i.ready for i in o.instances if i.id in d.drain), "drained a booting instance"
    assert len(set(d.drain)) == len(d.drain)
    if d.drain:
        assert d.desired == len(o.instances) - len(d.drain)
    if o.error or o.observed_at is None or o.now - o.observed_at > cfg.stale_after_s:
        assert d.hold and d.drain == () and d.code == "stale"
        assert d.desired == min(cfg.max_instances, max(cfg.min_instances, o.busy_instances, o.desired))
    assert d.reason
