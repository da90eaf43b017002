"""The operations settings: parsed from cdk.json types and `-c` strings, refused with the key, the value and what is
allowed (infra/settings.py)."""
from __future__ import annotations

import pytest

from functions.alerts.queries import LOOKBACK_DAYS, MAX_SILENT_MINUTES
from functions.analytics.layout import FLUSH_SECONDS
from infra.settings import Settings, SettingsError
from tests.conftest import cdk_json_context


def parse(**overrides) -> Settings:
    return Settings.from_mapping({**cdk_json_context(), **overrides})


def test_defaults():
    s = parse()
    assert s.alarm_emails == ()
    assert (s.alarm_period_minutes, s.firehose_freshness_alarm_seconds, s.wifi_reject_alarm_percent) == (5, 1800, 10)
    assert (s.silent_device_minutes, s.compliance_min_percent, s.compliance_min_faces) == (30, 70, 20)
    assert (s.compliance_window_hours, s.alert_schedule_minutes, s.alert_recovery) == (1, 5, True)
    assert s.compliance_recovery_margin_percent == 5 == Settings().compliance_recovery_margin_percent


@pytest.mark.parametrize("raw, expected", [
    ("ops@example.com", ("ops@example.com",)),
    ("ops@example.com, oncall@example.org", ("ops@example.com", "oncall@example.org")),
    ("a@example.com;b@example.com  a@EXAMPLE.com", ("a@example.com", "b@example.com")),
    (["ops@example.com", "x.y+tag@sub.example.co.kr"], ("ops@example.com", "x.y+tag@sub.example.co.kr")),
    ([], ()), ("", ()),
])
def test_alarm_emails_from_a_list_or_one_string(raw, expected):
    assert parse(alarm_emails=raw).alarm_emails == expected


@pytest.mark.parametrize("key, raw, says", [
    ("alarm_emails", "ops@example.com,not-an-address", "'not-an-address' is not an e-mail address"),
    ("alarm_emails", "ops@@example.com", "is not an e-mail address"),
    ("alarm_emails", "a@b", "is not an e-mail address"),
    ("alarm_period_minutes", "0", "1-60"),
    ("alarm_period_minutes", "2.5", "whole number"),
    ("alarm_period_minutes", True, "1-60"),
    ("firehose_freshness_alarm_seconds", FLUSH_SECONDS, "buffering interval"),
    ("silent_device_minutes", FLUSH_SECONDS // 60, "buffering interval"),
    ("silent_device_minutes", MAX_SILENT_MINUTES + 1, f"at most {MAX_SILENT_MINUTES}"),
    ("wifi_reject_alarm_percent", "0", "above 0 and below 100"),
    ("compliance_min_percent", "100", "above 0 and below 100"),
    ("compliance_min_percent", "lots", "percentage"),
    ("compliance_min_faces", "0", "1-1000000"),
    ("compliance_recovery_margin_percent", "-1", "at least 0 and below 100"),
    ("compliance_recovery_margin_percent", "wide", "percentage points"),
    ("compliance_recovery_margin_percent", "31", "at most 30 points with compliance_min_percent 70"),
    ("compliance_window_hours", "25", "1-24"),
    ("alert_schedule_minutes", "61", "1-60"),
    ("alert_recovery", "maybe", "true or false"),
])
def test_bad_values_name_the_key_and_what_is_allowed(key, raw, says):
    with pytest.raises(SettingsError) as err:
        parse(**{key: raw})
    assert err.value.key == key and f"'{key}'" in str(err.value) and says in str(err.value)


def test_strings_from_the_command_line_are_accepted():
    s = parse(alarm_period_minutes="10", compliance_min_percent="65.5%", alert_recovery="false",
              silent_device_minutes="16")
    assert (s.alarm_period_minutes, s.compliance_min_percent, s.alert_recovery, s.silent_device_minutes) == \
        (10, 65.5, False, 16)


def test_the_silent_threshold_fits_the_heartbeat_query_lookback():
    """A device must still be in the heartbeat query (dt > current_date - LOOKBACK_DAYS) when it crosses the
    threshold, whatever the time of day: at least LOOKBACK_DAYS - 1 full days are read."""
    assert MAX_SILENT_MINUTES <= (LOOKBACK_DAYS - 1) * 24 * 60
