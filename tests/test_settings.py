"""Settings: typed values, clear errors naming the variable."""

from __future__ import annotations

import pytest

from jobfleet.settings import SettingsError, load_settings, settings_table


def test_defaults_are_valid() -> None:
    s = load_settings({})
    assert s.queues == ("high", "default", "low")
    assert s.redis_url is None
    assert s.idle_hold_seconds == s.boot_time


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOBFLEET_JOB_TIMEOUT": "-5"}, "JOBFLEET_JOB_TIMEOUT='-5': must be >= 1"),
        ({"JOBFLEET_JOB_TIMEOUT": "soon"}, "JOBFLEET_JOB_TIMEOUT='soon': expected a whole number"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL='http://x': expected a URL starting with redis://"),
        ({"JOBFLEET_QUEUES": " , "}, "JOBFLEET_QUEUES"),
        ({"JOBFLEET_QUEUES": "a,a"}, "must be unique"),
        ({"JOBFLEET_QUEUES": "bad queue"}, "may only hold"),
        ({"JOBFLEET_DRY_RUN": "maybe"}, "JOBFLEET_DRY_RUN='maybe': expected one of"),
        ({"JOBFLEET_MIN_INSTANCES": "5", "JOBFLEET_MAX_INSTANCES": "2"}, "is above JOBFLEET_MAX_INSTANCES"),
        ({"JOBFLEET_AUTOSCALER_BACKEND": "gcp"}, "expected one of local, aws"),
        ({"JOBFLEET_AUTOSCALER_BACKEND": "aws"}, "JOBFLEET_ASG_NAME is required"),
        ({"JOBFLEET_IDLE_HOLD": "-1"}, "JOBFLEET_IDLE_HOLD"),
        ({"JOBFLEET_TARGET_WAIT": "nan"}, "finite"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert message in str(err.value)


def test_table_lists_every_variable() -> None:
    table = settings_table()
    assert "`REDIS_URL`" in table and "`JOBFLEET_QUEUES`" in table
