"""Synthetic inference events for tests and benchmarks, generated day by day with numpy (vectorized).

Every device sends an inference event every ``interval_s`` seconds and a heartbeat every ``heartbeat_s`` seconds.
Faces per frame follow a Poisson law peaking at ``PEAK_HOUR`` UTC; each face is masked with ``masked_ratio``.
``silent_devices`` devices stop sending (both kinds) ``(k+1) * 45`` minutes before the end of the last day.
The first ``low_compliance_devices`` devices mask each face with ``low_masked_ratio`` instead (same random draws).
``malformed`` adds that many bad JSON lines of assorted kinds (only in ``json_lines``).
Each event has an ``ingest_ts`` as the IoT rule would stamp it on arrival: ``ts`` plus a delivery delay of
``INGEST_DELAY_MS`` (drawn from a stream of its own, so every other value stays as it was); ``json_lines(...,
ingest=True)`` writes it into the lines (the record as the rule forwards it), the default writes device lines only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from functions.analytics.arrow_schema import EVENT_SCHEMA
from maskcam import schema

PEAK_HOUR = 13
MODEL_NAME, MODEL_VERSION = "squeezenet-mask", "1.0.0"
SILENT_STEP_MINUTES = 45
DEVICE_FIELDS = tuple(schema.COLUMN_NAMES)
INGEST_DELAY_MS = (50, 2_000)   # device -> IoT Core delivery delay, low..high (uniform)


@dataclass(frozen=True)
class GeneratorConfig:
    devices: int = 3
    days: int = 2
    start: date = date(2026, 11, 1)
    interval_s: int = 5
    heartbeat_s: int = 60
    masked_ratio: float = 0.8
    silent_devices: int = 0
    low_compliance_devices: int = 0
    low_masked_ratio: float = 0.35
    unknown_ratio: float = 0.04   # faces the classifier was not sure of (schema label "unknown")
    malformed: int = 0
    seed: int = 7

    @property
    def device_ids(self) -> list[str]:
        return [f"cam-{i:03d}" for i in range(self.devices)]

    @property
    def end_ms(self) -> int:
        """Exclusive end: midnight UTC after the last day."""
        return _midnight_ms(self.start + timedelta(days=self.days))

    def silent_since_ms(self, device_index: int) -> int:
        """When device ``device_index`` stops sending (``end_ms`` for devices that never go silent)."""
        k = device_index - (self.devices - self.silent_devices)
        return self.end_ms if k < 0 else self.end_ms - (k + 1) * SILENT_STEP_MINUTES * 60_000


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)


def _device_times(cfg: GeneratorConfig, day_start: int, step_s: int, rng) -> tuple:
    """(device index, ts) of one event kind over one day; each device has its own phase within the step."""
    idx, stamps = [], []
    for d in range(cfg.devices):
        phase = int(rng.integers(0, step_s * 1000))
        ts = np.arange(day_start + phase, day_start + 86_400_000, step_s * 1000, dtype=np.int64)
        ts = ts[ts < cfg.silent_since_ms(d)]
        idx.append(np.full(ts.size, d, dtype=np.int32))
        stamps.append(ts)
    return np.concatenate(idx), np.concatenate(stamps)


def generate_day(cfg: GeneratorConfig, day_index: int) -> pa.Table:
    """All valid events of day ``day_index`` (0-based) as an Arrow table with ``EVENT_SCHEMA``, sorted by ts;
    ``ingest_ts`` is ``ts`` plus a delivery delay (``INGEST_DELAY_MS``), ``source_topic`` null."""
    rng = np.random.default_rng([cfg.seed, day_index])
    day_start = _midnight_ms(cfg.start + timedelta(days=day_index))
    devices = np.array(cfg.device_ids, dtype=object)

    dev, ts = _device_times(cfg, day_start, cfg.interval_s, rng)
    n = ts.size
    hour = (ts - day_start) / 3_600_000.0
    lam = 0.15 + 2.5 * np.exp(-((hour - PEAK_HOUR) / 3.0) ** 2)
    faces = np.minimum(rng.poisson(lam), schema.MAX_DETECTIONS).astype(np.int32)
    total = int(faces.sum())
    ratio: float | np.ndarray = cfg.masked_ratio
    if cfg.low_compliance_devices:
        ratio = np.where(np.repeat(dev, faces) < cfg.low_compliance_devices, cfg.low_masked_ratio, cfg.masked_ratio)
    is_mask = rng.random(total) < ratio
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(faces, out=offsets[1:])
    # a stream of its own, so the unknown label leaves every other generated value as it was
    is_unknown = np.random.default_rng([cfg.seed, day_index, 17]).random(total) < cfg.unknown_ratio
    is_mask &= ~is_unknown
    mask_count = np.concatenate([[0], np.cumsum(is_mask, dtype=np.int64)])
    unknown_count = np.concatenate([[0], np.cumsum(is_unknown, dtype=np.int64)])
    masked = (mask_count[offsets[1:]] - mask_count[offsets[:-1]]).astype(np.int32)
    unknown = (unknown_count[offsets[1:]] - unknown_count[offsets[:-1]]).astype(np.int32)
    xy = rng.integers(0, 600, size=(total, 2), dtype=np.int32)
    wh = rng.integers(20, 120, size=(total, 2), dtype=np.int32)
    boxes = np.column_stack([xy, xy + wh]).reshape(-1)
    detections = pa.ListArray.from_arrays(pa.array(offsets), pa.StructArray.from_arrays(
        [pa.array(np.where(is_unknown, schema.UNKNOWN, np.where(is_mask, "mask", "no_mask"))),
         pa.array(np.round(rng.uniform(0.5, 1.0, total), 4)),
         pa.ListArray.from_arrays(pa.array(np.arange(0, 4 * total + 1, 4, dtype=np.int32)), pa.array(boxes))],
        names=["label", "probability", "box"]))
    inference = {
        "event_type": np.full(n, "inference", dtype=object), "device_id": devices[dev], "ts": ts,
        "faces": faces, "masked": masked, "unmasked": faces - masked - unknown, "unknown": unknown,
        "detections": detections,
        "latency_ms": np.round(rng.gamma(9.0, 7.0, n), 3),
    }

    hdev, hts = _device_times(cfg, day_start, cfg.heartbeat_s, rng)
    m = hts.size
    since_start = (hts - _midnight_ms(cfg.start)) // 1000
    heartbeat = {
        "event_type": np.full(m, "heartbeat", dtype=object), "device_id": devices[hdev], "ts": hts,
        "fps": np.round(rng.normal(1.0 / cfg.interval_s * 5, 0.05, m).clip(0.01), 3),
        "frames": since_start // cfg.interval_s, "errors": np.zeros(m, np.int64), "dropped": np.zeros(m, np.int64),
    }
    table = pa.concat_tables([_table(inference, n), _table(heartbeat, m)]).sort_by("ts")
    delay = np.random.default_rng([cfg.seed, day_index, 29]).integers(*INGEST_DELAY_MS, size=n + m, endpoint=True)
    arrived = pa.array(table.column("ts").to_numpy() + delay, pa.int64())
    return table.set_column(table.schema.get_field_index("ingest_ts"), EVENT_SCHEMA.field("ingest_ts"), arrived)


def _table(columns: dict, rows: int) -> pa.Table:
    common = {"schema_version": np.full(rows, schema.SCHEMA_VERSION, np.int32),
              "model_name": np.full(rows, MODEL_NAME, dtype=object),
              "model_version": np.full(rows, MODEL_VERSION, dtype=object)}
    arrays = []
    for f in EVENT_SCHEMA:
        value = columns.get(f.name, common.get(f.name))
        arrays.append(pa.nulls(rows, f.type) if value is None else pa.array(value, type=f.type))
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)


def device_events(table: pa.Table, *, ingest: bool = False) -> Iterator[dict]:
    """Rows as the device would send them: only the schema's fields, nulls omitted; with ``ingest`` also
    ``ingest_ts``, as the IoT rule forwards them."""
    for row in table.select(list(DEVICE_FIELDS) + (["ingest_ts"] if ingest else [])).to_pylist():
        yield {k: v for k, v in row.items() if v is not None}


MALFORMED_KINDS = ("not_json", "missing_ts", "ts_string", "bad_event_type", "count_mismatch", "unknown_field")


def malformed_line(kind: str, base: dict) -> str:
    """One bad line of ``kind`` derived from a valid event ``base``."""
    event = dict(base)
    if kind == "not_json":
        return json.dumps(event)[:-7]
    if kind == "missing_ts":
        event.pop("ts")
    elif kind == "ts_string":
        event["ts"] = "yesterday"
    elif kind == "bad_event_type":
        event["event_type"] = "selfie"
    elif kind == "count_mismatch":
        event = dict(base, event_type="inference", faces=3, masked=3, unmasked=1, detections=[], latency_ms=1.0)
        for k in ("fps", "frames", "errors", "dropped"):
            event.pop(k, None)
    elif kind == "unknown_field":
        event["temperature"] = 36.6
    return json.dumps(event)


def json_lines(cfg: GeneratorConfig, *, ingest: bool = False) -> Iterator[str]:
    """Every event of ``cfg`` as one JSON line (device style; with ``ingest`` with its ``ingest_ts``, as the IoT rule
    forwards it), with ``cfg.malformed`` bad lines spread evenly."""
    produced = 0
    total_valid = sum(generate_day(cfg, d).num_rows for d in range(cfg.days)) if cfg.malformed else 0
    every = max(1, total_valid // cfg.malformed) if cfg.malformed else 0
    seen = 0
    for day in range(cfg.days):
        for event in device_events(generate_day(cfg, day), ingest=ingest):
            yield json.dumps(event, separators=(",", ":"), sort_keys=True)
            seen += 1
            if every and produced < cfg.malformed and seen % every == 0:
                yield malformed_line(MALFORMED_KINDS[produced % len(MALFORMED_KINDS)], event)
                produced += 1
