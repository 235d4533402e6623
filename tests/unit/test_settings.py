"""Settings from the environment: the batch knobs."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError


def test_agents_take_batches_by_default() -> None:
    s = Settings.from_env({})
    assert (s.batch_max, s.batch_wait_ms, s.linger_ms) == (500, 5, 5)


def test_batch_settings_come_from_the_environment() -> None:
    env = {"PULSE_BATCH_MAX": "1", "PULSE_BATCH_WAIT_MS": "20", "PULSE_LINGER_MS": "0"}
    s = Settings.from_env(env)
    assert (s.batch_max, s.batch_wait_ms, s.linger_ms) == (1, 20, 0)


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("PULSE_BATCH_MAX", "0", "PULSE_BATCH_MAX='0' must be at least 1"),
        ("PULSE_BATCH_MAX", "many", "PULSE_BATCH_MAX='many' is not an integer number of records"),
        ("PULSE_BATCH_WAIT_MS", "0", "PULSE_BATCH_WAIT_MS='0' must be at least 1"),
        ("PULSE_LINGER_MS", "-1", "PULSE_LINGER_MS='-1' must be at least 0"),
    ],
)
def test_a_bad_batch_setting_is_refused_by_name(name: str, raw: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.from_env({name: raw})
