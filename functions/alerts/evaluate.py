"""Business alerts, decided without any AWS call: which device went silent, whose mask compliance dropped, and which
of those episodes are new or over.

``evaluate(rows, state, now_ms, thresholds)`` takes the rows of two named queries (``silent_devices`` run with
``silent_minutes=0``, which lists when every device was last heard from, and ``mask_compliance_by_device_hour``), the
episode state kept between runs and the time of this run; it returns the episode changes (``Alert``; those with
``notify`` are sent) and the new state. An alert is sent when an episode opens and, with
``thresholds.send_recovery``, when it closes: never once per run.

- **silent**: the device was last heard from (``last_seen``: the arrival time, ``ingest_ts``, of its newest heartbeat
  or inference event) more than ``silent_minutes`` ago. It recovers only on an event newer than the one the episode
  started from, so neither a clock that jumps back nor a device dropping out of the query's lookback ends an episode
  by accident.
- **low_compliance**: over the hour buckets that start at or after ``floor_hour(now - window_hours)`` (so the last
  ``window_hours`` to ``window_hours + 1`` hours), at least ``min_faces`` faces were classified (masked or not) and
  the masked share of them is below ``compliance_min``. Fewer faces decide nothing: the episode stays as it is. An
  open episode closes only at ``compliance_min + compliance_margin`` or above (hysteresis), so a share hovering
  around the threshold does not open and close an episode every run.

``messages(outcome, thresholds)`` groups the changes to send into messages: one per change, except when more than
``fleet_share`` of the known devices (and at least ``fleet_min_devices``) go silent, or are heard again, in the same
run (a pipeline outage rather than N broken cameras): those go out as one fleet-wide message listing them. Each
device's episode is still its own (one state item, once per episode).

Rows are untrusted (a query result can hold nulls, negative or inconsistent counts, strings where numbers belong,
devices nobody registered): such rows are counted in ``Outcome.ignored`` and otherwise skipped. A run whose
``now_ms`` is earlier than the previous run's is skipped as a whole (``Outcome.skipped``), state unchanged.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from collections.abc import Iterable, Mapping

SILENT, LOW_COMPLIANCE = "silent", "low_compliance"
KINDS = (SILENT, LOW_COMPLIANCE)
FIRING, RECOVERED = "firing", "recovered"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
MAX_DEVICE_ID = 128            # an IoT thing name has at most 128 characters
# 2000-01-01 .. 2100-01-01: outside this a timestamp is a broken clock or unit, not an event
_EARLIEST_MS, _LATEST_MS = 946_684_800_000, 4_102_444_800_000
_TIMESTAMP_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)"
                           r"\s*(UTC|Z|[+-]\d{2}:?\d{2})?$")

Key = tuple[str, str]          # (kind, device_id)


@dataclass(frozen=True)
class Thresholds:
    silent_minutes: int
    compliance_min: float       # share of faces masked, 0..1
    min_faces: int
    window_hours: int
    send_recovery: bool = True
    compliance_margin: float = 0.05   # an open low-compliance episode closes at compliance_min + this (0..1)
    fleet_share: float = 0.5          # more than this share of known devices silent in one run: one fleet message
    fleet_min_devices: int = 3        # ... and at least this many

    def __post_init__(self) -> None:
        if not (self.silent_minutes > 0 and 0 < self.compliance_min < 1 and self.min_faces > 0
                and self.window_hours > 0 and 0 <= self.compliance_margin
                and self.compliance_min + self.compliance_margin <= 1
                and 0 < self.fleet_share < 1 and self.fleet_min_devices >= 2):
            raise ValueError(f"thresholds out of range: {self}")


@dataclass(frozen=True)
class Episode:
    """One device's episode of one kind. Closed episodes are kept so that the next one has a higher ``version``
    (the state store writes conditionally on it)."""
    kind: str
    device_id: str
    open: bool
    since_ms: int               # silent: the last heartbeat; low_compliance: start of the window it was found in
    figure: float               # silent: minutes silent; low_compliance: masked share, 0..1
    faces: int | None        # low_compliance: faces in the window
    changed_ms: int             # when it opened or closed
    version: int = 0

    @property
    def key(self) -> Key:
        return (self.kind, self.device_id)


@dataclass(frozen=True)
class State:
    evaluated_ms: int | None = None
    episodes: Mapping[Key, Episode] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    status: str                 # FIRING or RECOVERED
    episode: Episode            # the episode as it is after this run
    previous: Episode | None  # as it was before (None: never seen); the store's write condition
    at_ms: int
    figure: float               # the figure now (for a recovery: the current one, not the one it opened with)
    faces: int | None
    notify: bool = True         # False: a recovery with send_recovery off (the state change is still stored)

    @property
    def kind(self) -> str:
        return self.episode.kind

    @property
    def device_id(self) -> str:
        return self.episode.device_id


@dataclass(frozen=True)
class Outcome:
    alerts: list[Alert]
    state: State
    ignored: int = 0
    skipped: str | None = None
    known_devices: int = 0      # devices this run knows of: heard in the lookback, or with a silent episode


@dataclass(frozen=True)
class Rows:
    """Query results as mappings of column name -> value (strings from Athena, Python values from DuckDB)."""
    heartbeats: Iterable[Mapping[str, Any]] = ()
    compliance: Iterable[Mapping[str, Any]] = ()


# -- values ----------------------------------------------------------------------------------------------------------
def epoch_ms(value: Any) -> int | None:
    """A timestamp as UTC epoch milliseconds: a datetime (naive = UTC), an Athena timestamp text such as
    ``2026-11-27 10:00:00.000 UTC`` or an epoch-ms number; None for anything else or outside 2000..2100."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        ms = int(moment.timestamp() * 1000)
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        ms = int(value)
    elif isinstance(value, str):
        match = _TIMESTAMP_RE.match(value.strip())
        if not match:
            return None
        day, clock, zone = match.groups()
        zone = "+00:00" if zone in (None, "UTC", "Z") else zone
        zone = zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
        seconds, _, fraction = clock.partition(".")
        try:
            moment = datetime.fromisoformat(f"{day}T{seconds}{zone}")
        except ValueError:
            return None
        ms = int(moment.timestamp() * 1000) + int((fraction + "000")[:3] or 0)
    else:
        return None
    return ms if _EARLIEST_MS <= ms < _LATEST_MS else None


def count(value: Any) -> int | None:
    """A non-negative whole count (numbers, decimals as DuckDB sums give them, or their text); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, Decimal)):
        try:
            value = float(value.strip() if isinstance(value, str) else value)
        except (ValueError, ArithmeticError):
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def device(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_DEVICE_ID and value.isprintable() else None


# -- evaluation ------------------------------------------------------------------------------------------------------
def last_heartbeats(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], int]:
    """device -> when last heard from (ms; column ``last_seen``, or ``last_heartbeat`` in rows of the earlier
    query text), and how many rows were unusable."""
    latest: dict[str, int] = {}
    ignored = 0
    for row in rows:
        name = device(_get(row, "device_id"))
        seen = _get(row, "last_seen")
        ts = epoch_ms(seen if seen is not None else _get(row, "last_heartbeat"))
        if name is None or ts is None:
            ignored += 1
            continue
        latest[name] = max(ts, latest.get(name, ts))
    return latest, ignored


def window_start_ms(now_ms: int, window_hours: int) -> int:
    return (now_ms - window_hours * HOUR_MS) // HOUR_MS * HOUR_MS


def window_counts(rows: Iterable[Mapping[str, Any]], now_ms: int,
                  window_hours: int) -> tuple[dict[str, tuple[int, int]], int]:
    """device -> (classified faces, masked) over the hour buckets of the window, and how many rows were unusable.
    Classified = masked + unmasked: faces the classifier could not label (if it reports any) count for neither."""
    start = window_start_ms(now_ms, window_hours)
    totals: dict[str, tuple[int, int]] = {}
    ignored = 0
    for row in rows:
        name = device(_get(row, "device_id"))
        hour = epoch_ms(_get(row, "hour"))
        faces, masked, unmasked = (count(_get(row, k)) for k in ("faces", "masked", "unmasked"))
        if name is None or hour is None or masked is None or unmasked is None \
                or (faces is not None and masked + unmasked > faces) or (faces is None and _get(row, "faces")):
            ignored += 1
            continue
        if not start <= hour <= now_ms:
            continue
        seen, kept = totals.get(name, (0, 0))
        totals[name] = (seen + masked + unmasked, kept + masked)
    return totals, ignored


def evaluate(rows: Rows, state: State, now_ms: int, thresholds: Thresholds) -> Outcome:
    if isinstance(now_ms, bool) or not isinstance(now_ms, int):
        raise TypeError(f"now_ms must be epoch milliseconds (int), got {now_ms!r}")
    if state.evaluated_ms is not None and now_ms < state.evaluated_ms:
        return Outcome([], state, skipped=f"clock behind the previous run ({now_ms} < {state.evaluated_ms} ms): "
                                          "nothing decided, state kept")
    episodes = dict(state.episodes)
    alerts: list[Alert] = []
    heartbeats, bad_heartbeats = last_heartbeats(rows.heartbeats)
    counts, bad_counts = window_counts(rows.compliance, now_ms, thresholds.window_hours)

    for name, last in sorted(heartbeats.items()):
        silent_ms = max(0, now_ms - last)
        previous = episodes.get((SILENT, name))
        current = _if_open(previous)
        if silent_ms > thresholds.silent_minutes * MINUTE_MS and current is None:
            _open(episodes, alerts, previous, now_ms, Episode(SILENT, name, True, last, silent_ms / MINUTE_MS, None,
                                                             now_ms))
        elif current is not None and silent_ms <= thresholds.silent_minutes * MINUTE_MS and last > current.since_ms:
            _close(episodes, alerts, current, now_ms, silent_ms / MINUTE_MS, None, thresholds.send_recovery)

    start = window_start_ms(now_ms, thresholds.window_hours)
    for name, (faces, masked) in sorted(counts.items()):
        if faces < thresholds.min_faces:
            continue
        rate = masked / faces
        previous = episodes.get((LOW_COMPLIANCE, name))
        current = _if_open(previous)
        if rate < thresholds.compliance_min and current is None:
            _open(episodes, alerts, previous, now_ms, Episode(LOW_COMPLIANCE, name, True, start, rate, faces, now_ms))
        elif rate >= thresholds.compliance_min + thresholds.compliance_margin and current is not None:
            _close(episodes, alerts, current, now_ms, rate, faces, thresholds.send_recovery)

    known = set(heartbeats) | {name for (kind, name) in episodes if kind == SILENT}
    return Outcome(alerts, State(now_ms, episodes), ignored=bad_heartbeats + bad_counts, known_devices=len(known))


def is_fleet_wide(changed: int, known: int, thresholds: Thresholds) -> bool:
    """Whether ``changed`` devices out of ``known`` going silent (or coming back) at once is one fleet event."""
    return changed >= thresholds.fleet_min_devices and changed > thresholds.fleet_share * known


def messages(outcome: Outcome, thresholds: Thresholds) -> list[list[Alert]]:
    """The changes to send (``notify``), grouped into messages: a list of one alert, or for a fleet-wide silence
    (or recovery from one, ``is_fleet_wide``) one list of all the devices' silent alerts of that status."""
    sent = [a for a in outcome.alerts if a.notify]
    grouped: list[list[Alert]] = []
    for status in (FIRING, RECOVERED):
        silent = [a for a in sent if a.kind == SILENT and a.status == status]
        if is_fleet_wide(len(silent), outcome.known_devices, thresholds):
            grouped.append(silent)
    in_groups = {id(a) for group in grouped for a in group}
    return grouped + [[a] for a in sent if id(a) not in in_groups]


def _if_open(episode: Episode | None) -> Episode | None:
    """``episode`` if it is open, None if there is none or it is closed."""
    return episode if episode is not None and episode.open else None


def _open(episodes: dict, alerts: list, previous: Episode | None, now_ms: int, episode: Episode) -> None:
    episode = replace(episode, version=(previous.version + 1) if previous else 1)
    episodes[episode.key] = episode
    alerts.append(Alert(FIRING, episode, previous, now_ms, episode.figure, episode.faces))


def _close(episodes: dict, alerts: list, previous: Episode, now_ms: int, figure: float, faces: int | None,
           send: bool) -> None:
    closed = replace(previous, open=False, changed_ms=now_ms, version=previous.version + 1)
    episodes[closed.key] = closed
    alerts.append(Alert(RECOVERED, closed, previous, now_ms, figure, faces, notify=send))


def _get(row: Any, key: str) -> Any:
    try:
        return row.get(key)
    except AttributeError:
        return None
