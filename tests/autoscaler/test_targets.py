"""Per-queue target waits (JOBFLEET_TARGET_WAIT), target 0, the warm-pool sizing and the rolling windows it uses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.daemon import policy_config
from autoscaler.policy import InstanceState, Observation, PolicyConfig, QueueState, decide, steady_slots
from autoscaler.warm_pool import WarmPoolConfig, warm_pool_size
from autoscaler.window import BurstHistory, SeasonalForecast
from jobfleet.settings import SettingsError, load_settings
from jobfleet.target_wait import TargetWaits

NOW = 1_000_000.0


# -- JOBFLEET_TARGET_WAIT ------------------------------------------------------------------------------------------
def test_single_number_and_per_queue_forms() -> None:
    assert TargetWaits.parse("30") == TargetWaits((), 30.0)
    spec = TargetWaits.parse(" high=5, default=30 ,low=300")
    assert spec.for_queue("high") == 5 and spec.for_queue("low") == 300 and spec.fallback is None
    assert TargetWaits.parse("high=0,60").for_queue("other") == 60
    assert TargetWaits.parse("high=1,*=2").fallback == 2
    assert str(spec) == "high=5,default=30,low=300" and spec.loosest() == 300


@pytest.mark.parametrize("raw,message", [
    ("", "expected a number of seconds or a comma-separated list"),
    ("high=5,,low=3", "comma-separated list"),
    ("soon", "expected a number of seconds"),
    ("high=fast", "queue 'high': expected a number of seconds"),
    ("high=-1", "must be between 0 and"),
    ("high=inf", "finite"),
    ("30,40", "more than one bare number"),
    ("high=1,high=2", "given twice"),
    ("bad name=3", "may only hold"),
    ("5,*=6", "more than one fallback"),
])
def test_bad_specs_say_what_is_wrong(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TargetWaits.parse(raw)


@pytest.mark.parametrize("env,message", [
    ({"JOBFLEET_TARGET_WAIT": "high=5"}, "no target for queue(s) default, low"),
    ({"JOBFLEET_TARGET_WAIT": "hihg=5,30"}, "queue(s) hihg not in JOBFLEET_QUEUES"),
    ({"JOBFLEET_TARGET_WAIT": "high=x"}, "JOBFLEET_TARGET_WAIT='high=x': queue 'high'"),
    ({"JOBFLEET_LEADER_TTL": "3"}, "must be longer than JOBFLEET_AUTOSCALER_INTERVAL"),
])
def test_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert message in str(err.value)


def test_settings_reach_the_policy() -> None:
    settings = load_settings({"JOBFLEET_TARGET_WAIT": "high=5,default=30,low=300"})
    cfg = policy_config(settings)
    assert cfg.queue_targets == (("high", 5.0), ("default", 30.0), ("low", 300.0))
    assert [cfg.target_for(q) for q in ("high", "default", "low")] == [5, 30, 300]
    assert settings.target_wait == 300  # one threshold for the oldest-job alert: the loosest
    assert policy_config(load_settings({"JOBFLEET_TARGET_WAIT": "0"})).target_wait_s == 0


names = st.sampled_from(["high", "default", "low", "q1", "a.b", "x-y"])
seconds = st.floats(0, 86400, allow_nan=False).map(lambda v: float(f"{v:g}"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, seconds, max_size=5), st.none() | seconds)
def test_spec_round_trips(per_queue: dict[str, float], fallback: float | None) -> None:
    if not per_queue and fallback is None:
        return
    spec = TargetWaits(tuple(per_queue.items()), fallback)
    assert TargetWaits.parse(str(spec)) == spec


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_value_error(raw: str) -> None:
    try:
        spec = TargetWaits.parse(raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(0 <= t <= 86400 for _, t in spec.per_queue)


# -- policy with per-queue targets ----------------------------------------------------------------------------------
def _q(name: str, rate: float, queued: int = 0, started: int = 0, forecast: float | None = None) -> QueueState:
    return QueueState(name, queued=queued, started=started, arrival_rate=rate, completion_rate=rate,
                      mean_service_s=10.0, rate_window_s=300, recent_arrival_rate=rate, recent_window_s=60,
                      forecast_rate=forecast)


def _obs(*queues: QueueState, instances: tuple[InstanceState, ...] = (), pool: int = 0) -> Observation:
    return Observation(now=NOW, observed_at=NOW, desired=len(instances), queues=queues, instances=instances,
                       warm_pool_ready=pool)


def test_a_tight_high_queue_and_a_loose_low_queue_need_fewer_slots_than_tight_for_both() -> None:
    tight = PolicyConfig(max_instances=100, target_wait_s=5, boot_time_s=90, idle_hold_s=90)
    split = PolicyConfig(max_instances=100, target_wait_s=300, queue_targets=(("high", 5.0),), boot_time_s=90,
                         idle_hold_s=90)
    o = _obs(_q("high", 0.2), _q("low", 1.0))
    both, mixed = decide(o, tight), decide(o, split)
    assert mixed.needed_slots < both.needed_slots
    assert "for queue high" in both.reason or "for queue low" in both.reason
    # one queue and one target: exactly the single-class M/M/m answer; a high class alone needs less
    assert steady_slots(0.5, 10, 0, classes=((0.5, 5.0),)) == steady_slots(0.5, 10, 5)
    assert steady_slots(1.2, 10, 0, classes=((0.2, 5.0), (1.2, 300.0))) < steady_slots(1.2, 10, 5)


def test_per_queue_backlog_sizes_for_the_queue_whose_target_would_be_missed() -> None:
    split = PolicyConfig(max_instances=100, target_wait_s=300, queue_targets=(("high", 5.0),), boot_time_s=60,
                         idle_hold_s=60)
    urgent = decide(_obs(_q("high", 0.0, queued=40), _q("low", 0.0, queued=0)), split)
    patient = decide(_obs(_q("high", 0.0, queued=0), _q("low", 0.0, queued=40)), split)
    assert urgent.desired > patient.desired and "queue high" in urgent.reason


def test_target_zero_gives_every_queued_job_a_slot_and_keeps_a_spare() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=0, boot_time_s=90, idle_hold_s=90)
    assert decide(_obs(_q("default", 0.0, queued=30, started=2)), cfg).desired == 32
    idle_rate = decide(_obs(_q("default", 0.2)), cfg).needed_slots
    assert idle_rate > steady_slots(0.2, 10, 30)  # more headroom than a 30 s target for the same load


def test_forecast_raises_the_rate_only_ahead_of_load() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=30, boot_time_s=90, idle_hold_s=90)
    quiet = decide(_obs(_q("default", 0.01)), cfg)
    ahead = decide(_obs(_q("default", 0.01, forecast=1.0)), cfg)
    assert ahead.desired > quiet.desired and "forecast" in ahead.reason
    assert decide(_obs(_q("default", 1.0, forecast=0.0)), cfg).desired == decide(_obs(_q("default", 1.0)), cfg).desired


def test_a_ready_warm_pool_shortens_the_backlog_horizon() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=30, boot_time_s=90, idle_hold_s=90, warm_boot_time_s=15)
    cold = decide(_obs(_q("default", 0.0, queued=60)), cfg)
    warm = decide(_obs(_q("default", 0.0, queued=60), pool=10), cfg)
    assert warm.inputs["boot_next_s"] == 15 and cold.inputs["boot_next_s"] == 90
    assert warm.desired >= cold.desired  # each new instance gets less pre-ready work, so more of them


@st.composite
def per_queue_scenarios(draw: st.DrawFn) -> tuple[Observation, PolicyConfig]:
    mx = draw(st.integers(1, 30))
    names_ = draw(st.lists(st.sampled_from(["high", "default", "low"]), min_size=1, max_size=3, unique=True))
    targets = tuple((n, draw(st.sampled_from([0.0, 1.0, 5.0, 30.0, 300.0]))) for n in names_)
    cfg = PolicyConfig(max_instances=mx, min_instances=draw(st.integers(0, mx)), target_wait_s=draw(st.floats(0, 600)),
                       queue_targets=targets, boot_time_s=draw(st.floats(0, 300)), idle_hold_s=draw(st.floats(0, 300)),
                       warm_boot_time_s=draw(st.floats(0, 60)), slots_per_instance=draw(st.integers(1, 3)))
    queues = tuple(QueueState(n, queued=draw(st.integers(0, 300)), started=draw(st.integers(0, 20)),
                              arrival_rate=draw(st.floats(0, 5)), completion_rate=draw(st.floats(0, 5)),
                              mean_service_s=draw(st.none() | st.floats(0.1, 300)), rate_window_s=300,
                              recent_arrival_rate=draw(st.none() | st.floats(0, 5)), recent_window_s=60,
                              forecast_rate=draw(st.none() | st.floats(0, 5))) for n in names_)
    instances = tuple(InstanceState(f"i{k}", cfg.slots_per_instance, busy=(b := draw(st.integers(0, 1))),
                                    launched_at=NOW - draw(st.floats(0, 500)), ready=True,
                                    idle_since=None if b else NOW - draw(st.floats(0, 500)),
                                    warm=draw(st.booleans()))
                      for k in range(draw(st.integers(0, mx))))
    return Observation(now=NOW, observed_at=NOW, desired=len(instances), queues=queues, instances=instances,
                       warm_pool_ready=draw(st.integers(0, 5))), cfg


@settings(max_examples=150, deadline=None)
@given(per_queue_scenarios())
def test_per_queue_invariants(case: tuple[Observation, PolicyConfig]) -> None:
    o, cfg = case
    d = decide(o, cfg)
    assert cfg.min_instances <= d.desired <= cfg.max_instances
    assert d.desired >= o.busy_instances
    assert not {i.id for i in o.instances if i.busy} & set(d.drain)
    if o.queued:
        assert d.desired >= min(cfg.max_instances, 1)
    # loosening every target never asks for more slots
    loose = PolicyConfig(**{**cfg.__dict__, "queue_targets": tuple((q, t + 60) for q, t in cfg.queue_targets),
                            "target_wait_s": cfg.target_wait_s + 60})
    assert decide(o, loose).needed_slots <= d.needed_slots


# -- warm-pool sizing ------------------------------------------------------------------------------------------------
SIZE = {"slots": 1, "service_s": 12.0, "cold_boot_s": 82.5, "warm_boot_s": 17.5}


def test_no_bursts_no_pool_and_learning_keeps_the_initial_size() -> None:
    cfg = WarmPoolConfig(max_size=50, initial=7, learn_s=3600)
    assert warm_pool_size([], 1800, cfg, **SIZE) == 7
    assert warm_pool_size([], 7200, cfg, **SIZE) == 0
    assert warm_pool_size([1, 1, 1], 7200, cfg, **SIZE) == 0  # single launches are not bursts


def test_pool_covers_bursts_that_pay_for_their_stopped_instances() -> None:
    cfg = WarmPoolConfig(max_size=100, wait_cost=10, learn_s=0, stopped_cost_ratio=0.105)
    assert warm_pool_size([40, 60], 7200, cfg, **SIZE) == 60
    assert warm_pool_size([40, 60], 7200, WarmPoolConfig(max_size=30, learn_s=0), **SIZE) == 30
    # waiting worth little: no stopped instance pays for itself
    assert warm_pool_size([40, 60], 7200, WarmPoolConfig(max_size=100, wait_cost=0.1, learn_s=0), **SIZE) == 0
    # a warm start no faster than a boot: no pool
    assert warm_pool_size([40], 3600, cfg, slots=1, service_s=12, cold_boot_s=20, warm_boot_s=20) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=20), st.floats(0, 86400), st.floats(0, 50), st.integers(0, 200))
def test_pool_size_is_bounded_and_monotone_in_the_cost_of_waiting(
    bursts: list[int], history: float, wait_cost: float, cap: int
) -> None:
    low = warm_pool_size(bursts, history, WarmPoolConfig(max_size=cap, wait_cost=wait_cost, learn_s=0), **SIZE)
    high = warm_pool_size(bursts, history, WarmPoolConfig(max_size=cap, wait_cost=wait_cost * 2, learn_s=0), **SIZE)
    assert 0 <= low <= high <= min(cap, max(bursts, default=0))


def test_bad_warm_pool_config_lists_every_problem() -> None:
    with pytest.raises(ValueError, match=r"max_size=-1.*min_burst=0"):
        WarmPoolConfig(max_size=-1, min_burst=0)


# -- windows ---------------------------------------------------------------------------------------------------------
def _feed(forecast: SeasonalForecast, days: int, rate_at: object, step: float = 30.0) -> float:
    seen, t = 0.0, 0.0
    while t < days * 86400:
        forecast.add(t, seen)
        seen += rate_at(t) * step  # type: ignore[operator]
        t += step
    return t


def test_seasonal_forecast_sees_a_daily_ramp_ahead_and_nothing_without_a_period() -> None:
    def working_day(t: float) -> float:
        return 1.0 if 8 <= (t % 86400) / 3600 < 18 else 0.0

    f = SeasonalForecast()
    assert f.forecast(0, 90) is None
    end = _feed(f, 2, working_day)
    # 90 s before the ramp, asking about the moment a new instance would be ready: half of it, then all
    assert 0.2 < (f.forecast(end + 8 * 3600 - 90, 90) or 0) < 0.7
    # the whole day's rate, less one Poisson standard deviation of the ~270 arrivals it saw in the window
    assert 0.8 < (f.forecast(end + 8 * 3600 + 60, 90) or 0) < 1 - 1 / 300**0.5
    assert f.forecast(end + 3 * 3600, 90) == 0.0  # night
    young = SeasonalForecast()
    _feed(young, 1, working_day)
    assert young.forecast(86400 + 9 * 3600, 90) is None  # one day is not a period yet


def test_a_one_off_burst_yesterday_is_not_forecast() -> None:
    def burst_on_day_two(t: float) -> float:
        return 5.0 if 86400 + 3600 <= t < 86400 + 3700 else 0.0

    f = SeasonalForecast()
    end = _feed(f, 2, burst_on_day_two, step=10)
    assert f.forecast(end + 3600 - 60, 60) == 0.0


def test_burst_history_and_peak_window() -> None:
    h = BurstHistory(seconds=3600)
    for t, n in ((0, 5), (3, 10), (6, 1), (500, 2), (4000, 3)):
        h.add(t, n)
    assert h.bursts(4000, within_s=90) == [2, 3]  # the first ones fell out of the hour
    h2 = BurstHistory()
    for t, n in ((0, 5), (3, 10), (6, 1), (500, 2)):
        h2.add(t, n)
    assert h2.bursts(500, within_s=90) == [16, 2] and h2.span_s(500) == 500


def test_target_zero_on_one_queue_gives_slots_to_its_jobs_only() -> None:
    cfg = PolicyConfig(max_instances=100, target_wait_s=300, queue_targets=(("high", 0.0),), boot_time_s=90,
                       idle_hold_s=90)
    d = decide(_obs(_q("high", 0.0, queued=3), _q("low", 0.0, queued=50)), cfg)
    assert 3 <= d.desired < 53
