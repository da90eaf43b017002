"""Where and how inference events are stored: the contract shared by the CDK stack (Glue table, Firehose prefixes,
IoT rules) and the local lake writer/runner. Dependency-free so the CDK app can import it.

Columns come from the event schema module (``maskcam.schema.COLUMNS``); the IoT rule adds
``INGEST_COLUMNS``. Events are partitioned by their own UTC day (``dt=yyyy-MM-dd``, derived from ``ts``), not by
arrival time, so a day's dashboard query reads exactly that day's partition even when a device uploads late.
"""
from maskcam import schema

TABLE = "inference_results"
DATA_PREFIX = "inference/"                 # s3://<data bucket>/inference/dt=2026-11-27/<file>.parquet
ERRORS_PREFIX = "errors/"                  # everything rejected anywhere in the pipeline lands below here
FIREHOSE_ERRORS_PREFIX = ERRORS_PREFIX + "firehose/"
IOT_ERRORS_PREFIX = ERRORS_PREFIX + "iot-rule/"
LOCAL_ERRORS_PREFIX = ERRORS_PREFIX + "local-ingest/"

# Added on the way in (IoT rule), never sent by a device.
INGEST_COLUMNS = (
    ("ingest_ts", "bigint", "time the IoT rule (or the local lake writer) received the event, UTC epoch ms"),
    ("source_topic", "string", "MQTT topic the event arrived on (null for local JSON-lines ingest)"),
)
COLUMNS = tuple(schema.COLUMNS) + INGEST_COLUMNS
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)

PARTITION_KEY = ("dt", "string", "event day, UTC, yyyy-MM-dd (from ts)")
PARTITION_FORMAT = "yyyy-MM-dd"            # Java SimpleDateFormat, for Athena partition projection
PARTITION_STRFTIME = "%Y-%m-%d"            # the same format for jq (Firehose) and Python
PROJECTION_FUTURE_DAYS = 1
PROJECTION_RANGE = ("2020-01-01", f"NOW+{PROJECTION_FUTURE_DAYS}DAYS")
DAY_MS = 86_400_000
PROJECTION_MIN_MS = 1_577_836_800_000      # PROJECTION_RANGE[0], 2020-01-01T00:00:00Z
# 2100-01-01T00:00:00Z, the schema's own upper bound; also keeps jq's strftime away from years past 9999, where
# jq 1.6 aborts instead of raising an error.
LATEST_TS_MS = 4_102_444_800_000

# Firehose writes one file per buffer flush (at most 900 s or 128 MiB); the local writer mimics it.
FLUSH_SECONDS = 900


def partition_problem(ts, now_ms):
    """Why an event with this ``ts``, received at ``now_ms`` (its ``ingest_ts``), would land in a partition the
    table's projection cannot see (None when it is fine): before the projection's first day, or after the last day
    ``NOW+<n>DAYS`` covers. Firehose's partition query applies the same rule (``infra.constructs.inference_delivery``);
    such events go to the error output."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return f"ts {ts!r} is not a number of epoch milliseconds"
    if isinstance(now_ms, bool) or not isinstance(now_ms, (int, float)):
        return f"ingest_ts {now_ms!r} is not a number of epoch milliseconds"
    if ts < PROJECTION_MIN_MS:
        return f"ts {ts!r} is before {PROJECTION_RANGE[0]} (seconds instead of milliseconds, or a clock not set?)"
    if ts >= min(LATEST_TS_MS, (now_ms // DAY_MS + PROJECTION_FUTURE_DAYS + 1) * DAY_MS):
        return (f"ts {ts!r} is more than {PROJECTION_FUTURE_DAYS} day(s) ahead of the receiving clock "
                "(microseconds instead of milliseconds, or a device clock ahead?)")
    return None


def partition_path(day: str) -> str:
    return f"{DATA_PREFIX}{PARTITION_KEY[0]}={day}/"


def location_template(bucket_name: str) -> str:
    """``storage.location.template`` for partition projection."""
    return f"s3://{bucket_name}/{DATA_PREFIX}{PARTITION_KEY[0]}=${{{PARTITION_KEY[0]}}}/"


def rule_name(project: str, topic_filter: str) -> str:
    """IoT rule name for one topic filter (rule names allow only [A-Za-z0-9_])."""
    kind = "deeplens" if topic_filter.startswith("$aws/things/") else "devices"
    return f"{project.replace('-', '_')}_inference_{kind}"


def device_topic_level(topic_filter: str):
    """1-based level of the first '+' in the filter (the device id the IoT ``topic(n)`` function returns), or
    None when the filter names no device level."""
    levels = topic_filter.split("/")
    return levels.index("+") + 1 if "+" in levels else None
