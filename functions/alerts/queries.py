"""The SQL the alert evaluation runs: two of the project's named queries (``functions/analytics/queries``), with the
parameters the alerts need, so no query exists twice. Used at synth (the texts go into the Lambda's environment) and
by the local run (DuckDB); the Lambda itself never reads query files.

- ``silent_devices`` with ``silent_minutes=0`` lists every device heard from in the lookback with when it was last
  heard from (arrival time of its newest heartbeat or inference event; the evaluation decides who is silent, so it
  also sees who came back);
- ``mask_compliance_by_device_hour`` with enough ``days`` to cover the window, per device and UTC hour, and
  ``hours`` = the window + 1 (where the window can start) as a ``ts`` lower bound, so Athena skips the row groups
  of the two days' files that lie before the window (Parquet min/max statistics) instead of reading them all.
"""
from __future__ import annotations


from functions.analytics import queries

HEARTBEATS, COMPLIANCE = "silent_devices", "mask_compliance_by_device_hour"
# Partitions the heartbeat query reads: at least one full day before today. The episode state keeps a device that
# stays silent longer than that alerted; a shorter lookback keeps each run's scan (and cost, docs/operations.md) small.
LOOKBACK_DAYS = 2
MAX_SILENT_MINUTES = (LOOKBACK_DAYS - 1) * 24 * 60


def compliance_days(window_hours: int) -> int:
    """``days`` for the compliance query (``dt > current_date - days``) so that its partitions cover the window,
    which starts up to ``window_hours + 1`` hours before now."""
    return (window_hours + 1) // 24 + 2


def compliance_hours(window_hours: int) -> int:
    """``hours`` for the compliance query (``ts >= now - hours``): the window starts at
    ``floor_hour(now - window_hours)``, at most ``window_hours + 1`` hours ago."""
    return window_hours + 1


def parameters(window_hours: int) -> dict[str, dict[str, str]]:
    return {HEARTBEATS: {"silent_minutes": "0", "lookback_days": str(LOOKBACK_DAYS)},
            COMPLIANCE: {"days": str(compliance_days(window_hours)), "hours": str(compliance_hours(window_hours))}}


def alert_queries(database: str, window_hours: int) -> dict[str, str]:
    """name -> Athena SQL for ``database``."""
    by_name = {q.name: q for q in queries.load(queries.QUERIES_DIR)}
    return {name: by_name[name].render(database, **params) for name, params in parameters(window_hours).items()}
