"""The business-alert evaluation (functions/alerts/evaluate.py): fires on a silent device and on low compliance, stays
quiet otherwise, once per episode, recovers; untrusted rows and clock jumps never raise."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.alerts import messages
from functions.alerts.evaluate import (FIRING, LOW_COMPLIANCE, MINUTE_MS, RECOVERED, SILENT, Rows, State,
                                       Thresholds, epoch_ms, evaluate, messages as grouped, window_start_ms)

pytestmark = pytest.mark.property

T = Thresholds(silent_minutes=30, compliance_min=0.7, min_faces=20, window_hours=1)
NOW = 1_795_000_000_000                      # 2026-11-18 (a plain epoch-ms int)
HOUR = 3_600_000


def hb(device: str, ms: int) -> dict:
    return {"device_id": device, "last_heartbeat": ms, "minutes_silent": None}


def athena_hb(device: str, ms: int) -> dict:
    """A heartbeat row as Athena returns it: every value a string."""
    text = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return {"device_id": device, "last_heartbeat": text, "minutes_silent": "3"}


def hour_row(device: str, hour_ms, faces, masked, unmasked=None) -> dict:
    """A compliance row; ``unmasked`` defaults to the faces not masked (no unknown faces)."""
    if unmasked is None:
        try:
            unmasked = faces - masked
        except TypeError:
            unmasked = faces
    return {"device_id": device, "hour": hour_ms, "frames": 10, "faces": faces, "masked": masked,
            "unmasked": unmasked, "compliance_rate": None}


def fired(outcome) -> set:
    return {(a.kind, a.device_id) for a in outcome.alerts if a.status == FIRING and a.notify}


def recovered(outcome) -> set:
    return {(a.kind, a.device_id) for a in outcome.alerts if a.status == RECOVERED and a.notify}


# -- examples --------------------------------------------------------------------------------------------------------
def test_a_silent_device_fires_once_and_says_since_when():
    last = NOW - 45 * MINUTE_MS
    rows = Rows(heartbeats=[athena_hb("cam-002", last), athena_hb("cam-001", NOW - MINUTE_MS)])
    first = evaluate(rows, State(), NOW, T)
    assert fired(first) == {(SILENT, "cam-002")}
    (alert,) = first.alerts
    assert alert.episode.since_ms == last and alert.figure == pytest.approx(45)
    assert "cam-002 silent since" in messages.headline(alert) and "45 min" in messages.headline(alert)
    later = evaluate(rows, first.state, NOW + 5 * MINUTE_MS, T)
    assert later.alerts == []                              # same episode: nothing more


def test_a_silent_device_recovers_on_a_newer_heartbeat_and_can_go_silent_again():
    first = evaluate(Rows(heartbeats=[hb("cam", NOW - 40 * MINUTE_MS)]), State(), NOW, T)
    back = evaluate(Rows(heartbeats=[hb("cam", NOW + 4 * MINUTE_MS)]), first.state, NOW + 5 * MINUTE_MS, T)
    assert recovered(back) == {(SILENT, "cam")}
    again = evaluate(Rows(heartbeats=[hb("cam", NOW + 4 * MINUTE_MS)]), back.state, NOW + 60 * MINUTE_MS, T)
    assert fired(again) == {(SILENT, "cam")}
    versions = [e.version for e in (first.state.episodes[(SILENT, "cam")], back.state.episodes[(SILENT, "cam")],
                                    again.state.episodes[(SILENT, "cam")])]
    assert versions == [1, 2, 3]


def test_low_compliance_fires_with_enough_faces_and_not_with_few():
    hour = window_start_ms(NOW, 1) + HOUR
    rows = Rows(compliance=[hour_row("low", hour, 50, 20), hour_row("few", hour, 10, 0),
                            hour_row("fine", hour, 50, 45)])
    outcome = evaluate(rows, State(), NOW, T)
    assert fired(outcome) == {(LOW_COMPLIANCE, "low")}
    (alert,) = outcome.alerts
    assert alert.figure == pytest.approx(0.4) and alert.faces == 50
    assert alert.episode.since_ms == window_start_ms(NOW, 1)
    assert "40% of 50 faces" in messages.headline(alert)


def test_faces_the_classifier_could_not_label_count_for_neither_side():
    hour = window_start_ms(NOW, 1)
    # 40 faces, 15 unknown: 10 masked of 25 classified = 40%; 25 classified >= 20
    outcome = evaluate(Rows(compliance=[hour_row("cam", hour, 40, 10, 15)]), State(), NOW, T)
    (alert,) = outcome.alerts
    assert alert.figure == pytest.approx(0.4) and alert.faces == 25
    # 40 faces, 25 unknown: 15 classified < 20, too few to judge
    assert evaluate(Rows(compliance=[hour_row("cam", hour, 40, 0, 15)]), State(), NOW, T).alerts == []
    # more masked + unmasked than faces is inconsistent
    assert evaluate(Rows(compliance=[hour_row("cam", hour, 10, 8, 8)]), State(), NOW, T).ignored == 1


def test_compliance_outside_the_window_is_not_counted():
    old = window_start_ms(NOW, 1) - HOUR
    outcome = evaluate(Rows(compliance=[hour_row("cam", old, 100, 0)]), State(), NOW, T)
    assert outcome.alerts == []


def test_compliance_recovers_and_few_faces_keep_the_episode():
    hour = window_start_ms(NOW, 1)
    low = evaluate(Rows(compliance=[hour_row("cam", hour, 40, 4)]), State(), NOW, T)
    quiet = evaluate(Rows(compliance=[hour_row("cam", hour + 2 * HOUR, 3, 3)]), low.state, NOW + 2 * HOUR, T)
    assert quiet.alerts == [] and quiet.state.episodes[(LOW_COMPLIANCE, "cam")].open
    good = evaluate(Rows(compliance=[hour_row("cam", hour + 3 * HOUR, 40, 39)]), quiet.state, NOW + 3 * HOUR, T)
    assert recovered(good) == {(LOW_COMPLIANCE, "cam")}


def test_recovery_can_be_kept_quiet_but_is_still_recorded():
    quiet_t = Thresholds(30, 0.7, 20, 1, send_recovery=False)
    first = evaluate(Rows(heartbeats=[hb("cam", NOW - 40 * MINUTE_MS)]), State(), NOW, quiet_t)
    back = evaluate(Rows(heartbeats=[hb("cam", NOW)]), first.state, NOW + MINUTE_MS, quiet_t)
    assert recovered(back) == set() and [a.notify for a in back.alerts] == [False]
    assert not back.state.episodes[(SILENT, "cam")].open


def test_a_clock_behind_the_last_run_decides_nothing():
    first = evaluate(Rows(heartbeats=[hb("cam", NOW - 40 * MINUTE_MS)]), State(), NOW, T)
    earlier = evaluate(Rows(heartbeats=[hb("cam", NOW - 40 * MINUTE_MS)]), first.state, NOW - HOUR, T)
    assert earlier.alerts == [] and earlier.skipped and earlier.state is first.state


def test_a_heartbeat_from_the_future_is_not_silence():
    outcome = evaluate(Rows(heartbeats=[hb("cam", NOW + 10 * HOUR)]), State(), NOW, T)
    assert outcome.alerts == []


def test_hostile_rows_are_ignored_and_counted():
    hour = window_start_ms(NOW, 1)
    rows = Rows(
        heartbeats=[{"device_id": None, "last_heartbeat": NOW}, {"device_id": "x" * 500, "last_heartbeat": NOW},
                    {"device_id": "cam", "last_heartbeat": "yesterday"}, {"device_id": 7, "last_heartbeat": NOW},
                    {"last_heartbeat": NOW - 10 * HOUR}, "not a mapping", None,
                    {"device_id": "ok", "last_heartbeat": float("nan")}],
        compliance=[hour_row("neg", hour, -5, 0), hour_row("more-masked", hour, 20, 30),
                    hour_row("text", hour, "lots", "1"), hour_row("inf", hour, math.inf, 1),
                    hour_row("bool", hour, True, False), hour_row("frac", hour, 20.5, 1)])
    outcome = evaluate(rows, State(), NOW, T)
    assert outcome.alerts == [] and outcome.ignored == 14


@pytest.mark.parametrize("text, expected", [
    ("2026-11-27 10:00:00.000 UTC", 1_795_773_600_000),
    ("2026-11-27 10:00:00.5 UTC", 1_795_773_600_500),
    ("2026-11-27T10:00:00Z", 1_795_773_600_000),
    ("2026-11-27 19:00:00.000 +09:00", 1_795_773_600_000),
    ("2026-11-27 10:00", 1_795_773_600_000),
    ("2026-13-27 10:00:00", None), ("1970-01-01 00:00:00", None), ("", None), ("now", None),
])
def test_timestamps_as_athena_and_duckdb_give_them(text, expected):
    assert epoch_ms(text) == expected


def test_subjects_are_short_printable_ascii():
    first = evaluate(Rows(heartbeats=[hb("카메라-" + "é" * 120, NOW - 40 * MINUTE_MS)]), State(), NOW, T)
    (alert,) = first.alerts
    subject = messages.subject(alert, "maskcam")
    assert len(subject) < 100 and subject.isascii() and subject.isprintable()


def test_the_body_headline_is_filtered_like_the_subject():
    first = evaluate(Rows(heartbeats=[hb("카메라-é", NOW - 40 * MINUTE_MS)]), State(), NOW, T)
    (alert,) = first.alerts
    headline = messages.body(alert, T, "maskcam").splitlines()[0]
    assert headline.isascii() and headline.isprintable() and headline.startswith("???-? silent since")


def test_a_share_just_above_the_minimum_keeps_the_episode_open_until_min_plus_margin():
    hour = window_start_ms(NOW, 1)
    low = evaluate(Rows(compliance=[hour_row("cam", hour, 100, 60)]), State(), NOW, T)
    assert fired(low) == {(LOW_COMPLIANCE, "cam")}
    near = evaluate(Rows(compliance=[hour_row("cam", hour + HOUR, 100, 72)]), low.state, NOW + HOUR, T)
    assert near.alerts == [] and near.state.episodes[(LOW_COMPLIANCE, "cam")].open      # 72 % < 70 + 5
    back = evaluate(Rows(compliance=[hour_row("cam", hour + 2 * HOUR, 100, 75)]), near.state, NOW + 2 * HOUR, T)
    assert recovered(back) == {(LOW_COMPLIANCE, "cam")}
    with pytest.raises(ValueError):
        Thresholds(30, 0.97, 20, 1, compliance_margin=0.05)     # could never close


def silent_fleet(silent: int, healthy: int):
    rows = [hb(f"cam-{i:03d}", NOW - 45 * MINUTE_MS) for i in range(silent)]
    rows += [hb(f"ok-{i:03d}", NOW - MINUTE_MS) for i in range(healthy)]
    return evaluate(Rows(heartbeats=rows), State(), NOW, T)


@pytest.mark.parametrize("silent, healthy, fleet", [(3, 2, True), (3, 3, False), (2, 0, False), (4, 0, True),
                                                    (10, 9, True), (1, 5, False)])
def test_many_devices_silent_in_one_run_are_one_fleet_message(silent, healthy, fleet):
    """More than half of the known devices, and at least three: one message listing them; otherwise one each."""
    outcome = silent_fleet(silent, healthy)
    assert outcome.known_devices == silent + healthy and len(fired(outcome)) == silent
    groups = grouped(outcome, T)
    assert sorted(len(g) for g in groups) == ([silent] if fleet else [1] * silent)
    if fleet:
        body = messages.fleet_body(groups[0], outcome.known_devices, T, "maskcam")
        assert all(f"cam-{i:03d} silent since" in body for i in range(silent))
        subject = messages.fleet_subject(groups[0], outcome.known_devices, "maskcam")
        assert subject.startswith(f"[maskcam] ALERT {silent} of {silent + healthy} devices silent")


def test_a_fleet_wide_recovery_is_one_message_too_and_episodes_stay_per_device():
    first = silent_fleet(4, 1)
    back = evaluate(Rows(heartbeats=[hb(f"cam-{i:03d}", NOW + MINUTE_MS) for i in range(4)]
                         + [hb("ok-000", NOW + MINUTE_MS)]), first.state, NOW + 2 * MINUTE_MS, T)
    (group,) = grouped(back, T)
    assert {a.device_id for a in group} == {f"cam-{i:03d}" for i in range(4)} and {a.status for a in group} == {
        RECOVERED}
    assert all(not back.state.episodes[(SILENT, f"cam-{i:03d}")].open for i in range(4))
    low = evaluate(Rows(compliance=[hour_row("x", window_start_ms(NOW, 1), 40, 4)]), first.state, NOW + 1, T)
    assert [len(g) for g in grouped(low, T)] == [1]        # other kinds are never grouped


# -- properties ------------------------------------------------------------------------------------------------------
devices = st.sampled_from(["cam-000", "cam-001", "cam-002", "lobby:1"])
silence = st.integers(min_value=0, max_value=24 * 60)            # minutes since the last heartbeat
hostile = st.one_of(st.none(), st.integers(-10**6, 10**15), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=40), st.booleans(), st.datetimes(timezones=st.just(timezone.utc)))


@given(st.dictionaries(devices, silence, min_size=1))
def test_fires_exactly_for_devices_silent_longer_than_the_threshold(minutes):
    rows = Rows(heartbeats=[hb(d, NOW - m * MINUTE_MS) for d, m in minutes.items()])
    outcome = evaluate(rows, State(), NOW, T)
    assert fired(outcome) == {(SILENT, d) for d, m in minutes.items() if m > T.silent_minutes}
    assert recovered(outcome) == set()


@given(st.dictionaries(devices, st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=1),
       st.integers(0, 59))
def test_fires_exactly_for_low_compliance_with_enough_faces(counts, minute):
    now = window_start_ms(NOW, 1) + HOUR + minute * MINUTE_MS
    rows = Rows(compliance=[hour_row(d, window_start_ms(now, 1) + HOUR, max(a, b), min(a, b))
                            for d, (a, b) in counts.items()])
    outcome = evaluate(rows, State(), now, T)
    expected = {(LOW_COMPLIANCE, d) for d, (a, b) in counts.items()
                if max(a, b) >= T.min_faces and min(a, b) / max(a, b) < T.compliance_min}
    assert fired(outcome) == expected


@settings(max_examples=60)
@given(st.lists(st.dictionaries(devices, silence), min_size=2, max_size=12))
def test_once_per_episode_over_many_runs(runs):
    """Alerts for one device alternate firing / recovered, start with firing, and each firing is the start of a
    run of silence longer than the threshold."""
    state, now, history = State(), NOW, {}
    last_seen = {}
    for minutes in runs:
        now += 5 * MINUTE_MS
        for d, m in minutes.items():    # heartbeats only move forward, as the table's max(ts) does
            last_seen[d] = max(last_seen.get(d, 0), now - m * MINUTE_MS)
        rows = Rows(heartbeats=[hb(d, ts) for d, ts in last_seen.items()])
        outcome = evaluate(rows, state, now, T)
        for alert in outcome.alerts:
            history.setdefault(alert.device_id, []).append(alert.status)
        state = outcome.state
    for statuses in history.values():
        assert statuses[0] == FIRING
        assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False)), statuses


@given(st.lists(st.fixed_dictionaries({"device_id": hostile | devices, "last_heartbeat": hostile,
                                       "minutes_silent": hostile}), max_size=8),
       st.lists(st.fixed_dictionaries({"device_id": hostile | devices, "hour": hostile, "faces": hostile,
                                       "masked": hostile}), max_size=8),
       st.integers(-10**13, 10**13))
def test_hostile_rows_and_clock_jumps_never_raise(heartbeats, compliance, jump):
    warm = evaluate(Rows(heartbeats=[hb("cam-000", NOW - HOUR)]), State(), NOW, T)
    outcome = evaluate(Rows(heartbeats=heartbeats, compliance=compliance), warm.state, NOW + jump, T)
    if jump < 0:
        assert outcome.skipped and outcome.alerts == []
    for alert in outcome.alerts:
        assert messages.subject(alert, "maskcam").isascii()
        messages.body(alert, T, "maskcam")


def test_counts_as_duckdb_sums_them_are_used():
    """DuckDB returns sum() over integers as HUGEINT, which Arrow hands over as Decimal."""
    from decimal import Decimal

    hour = window_start_ms(NOW, 1)
    outcome = evaluate(Rows(compliance=[hour_row("cam", datetime.fromtimestamp(hour / 1000, tz=timezone.utc),
                                                 Decimal(40), Decimal(4))]), State(), NOW, T)
    assert fired(outcome) == {(LOW_COMPLIANCE, "cam")}
    assert evaluate(Rows(compliance=[hour_row("cam", hour, Decimal("NaN"), 1)]), State(), NOW, T).ignored == 1


@settings(max_examples=80)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=30), st.floats(0.5, 0.9))
def test_no_flapping_for_a_share_oscillating_within_the_margin(wiggles, minimum):
    """A masked share moving anywhere within [min - 1 face, min + margin) opens at most one episode and never closes
    it: without the hysteresis every dip below the minimum and back would be two messages."""
    t = Thresholds(30, minimum, 20, 1, compliance_margin=0.05)
    state, now, faces = State(), NOW, 1000
    changes = []
    low = int(minimum * faces) - 1
    high = int((minimum + 0.05) * faces) - 1               # masked share < min + margin
    for wiggle in wiggles:
        now += HOUR
        masked = low + round(wiggle * (high - low))
        outcome = evaluate(Rows(compliance=[hour_row("cam", window_start_ms(now, 1) + HOUR, faces, masked)]),
                           state, now, t)
        changes += [a.status for a in outcome.alerts]
        state = outcome.state
    assert changes in ([], [FIRING])
