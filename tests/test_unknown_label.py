"""The `unknown` label end to end (issue 17): a face whose top class probability is below the threshold is reported
as unknown by the pipeline, counted in the event's ``unknown`` (neither masked nor unmasked), carried by the schema
into the IoT rule's SQL, the Glue/lake columns and the Parquet files, and left out of the compliance rate by the
queries. Events from devices older than the label (no ``unknown`` field) stay valid and count as 0."""
import json
from datetime import datetime, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest

from functions.analytics import layout, queries, runner
from functions.analytics.writer import ingest_lines
from maskcam import schema
from maskcam.faces import Box
from maskcam.pipeline import FramePipeline, check_classes
from infra.constructs.inference_rules import rule_sql

T0 = 1_795_000_000_000          # 2026-11-18 08:26:40 UTC
AS_OF = datetime.fromtimestamp(T0 / 1000 + 60, timezone.utc)


class Faces:
    def __init__(self, n):
        self.n = n

    def detect(self, frame):
        return [Box(10 * i, 0, 10 * i + 8, 8, 0.9) for i in range(self.n)]


class Probabilities:
    """A classifier answering fixed rows of [p(mask), p(no_mask)]."""
    name, version, classes = "m", "1", ["mask", "no_mask"]

    def __init__(self, rows):
        self.rows = np.array(rows, np.float32)

    def prepare(self, crops):
        return crops

    def predict(self, inputs):
        return self.rows[:len(inputs)]


def event_for(rows, min_confidence=0.7, device="cam-u", ts=T0):
    pipeline = FramePipeline(Faces(len(rows)), Probabilities(rows), min_confidence=min_confidence)
    result = pipeline.process(np.zeros((16, 80, 3), np.uint8))
    return schema.validate(pipeline.event(device, result, ts))


def test_below_the_threshold_a_face_is_unknown_not_masked_or_unmasked():
    event = event_for([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5], [0.31, 0.69]])
    assert [d["label"] for d in event["detections"]] == ["mask", "unknown", "no_mask", "unknown", "unknown"]
    assert [d["probability"] for d in event["detections"]] == pytest.approx([0.95, 0.6, 0.8, 0.5, 0.69])
    assert (event["faces"], event["masked"], event["unmasked"], event["unknown"]) == (5, 1, 1, 3)


def test_the_threshold_is_configurable_and_checked():
    rows = [[0.6, 0.4], [0.45, 0.55]]
    assert event_for(rows, min_confidence=0.5)["unknown"] == 0
    assert event_for(rows, min_confidence=0.0)["masked"] == 1
    assert event_for(rows, min_confidence=1.0)["unknown"] == 2
    with pytest.raises(ValueError, match="min_confidence"):
        FramePipeline(Faces(1), Probabilities(rows), min_confidence=1.5)
    from maskcam.app import ConfigError, check
    with pytest.raises(ConfigError, match="min-confidence"):
        check({"model": "deeplens:x", "source": "0", "min_confidence": "2"})


def test_a_broken_probability_is_unknown():
    assert schema.label_for([float("nan"), float("nan")], ["mask", "no_mask"]) == ("unknown", 0.0)
    assert schema.label_for([1.5, -0.5], ["mask", "no_mask"]) == ("unknown", 0.0)


def test_unknown_is_the_pipelines_label_never_a_model_class():
    with pytest.raises(ValueError, match="not event labels"):
        check_classes(["mask", "unknown"])
    check_classes(["mask", "no_mask"])


def test_the_schema_keeps_the_counts_honest():
    event = event_for([[0.6, 0.4], [0.9, 0.1]])
    legacy = dict(event, detections=[d for d in event["detections"] if d["label"] != "unknown"], faces=1)
    del legacy["unknown"]
    assert schema.problems(legacy) == []                       # a device older than the label
    no_count = dict(event)
    del no_count["unknown"]
    assert "detections labelled unknown but no unknown count" in schema.problems(no_count)
    assert schema.problems(dict(event, unknown=0)) == ["faces/masked/unmasked/unknown do not match detections"]
    assert "unknown must be an integer" in " ".join(schema.problems(dict(event, unknown="1")))
    assert schema.compliance(3, 1) == 0.75 and schema.compliance(0, 0) is None


def test_the_column_reaches_the_iot_rule_the_glue_table_and_the_lake_schema():
    assert "unknown" in schema.COLUMN_NAMES and "unknown" in layout.COLUMN_NAMES
    assert "unknown AS unknown" in rule_sql("maskcam/+/infer") or ", unknown," in rule_sql("maskcam/+/infer")
    from functions.analytics.arrow_schema import EVENT_SCHEMA
    assert str(EVENT_SCHEMA.field("unknown").type) == "int32"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """One device, one hour: 2 masked, 1 unmasked, 3 unknown over three frames, plus a legacy event (no field)."""
    events = [event_for([[0.9, 0.1], [0.65, 0.35]], ts=T0),
              event_for([[0.2, 0.8], [0.55, 0.45], [0.95, 0.05]], ts=T0 + 1000),
              event_for([[0.5, 0.5]], ts=T0 + 2000)]
    legacy = event_for([[0.99, 0.01]], ts=T0 + 3000, device="cam-old")
    del legacy["unknown"]
    lines = [("dev.jsonl", n, json.dumps(e)) for n, e in enumerate(events + [legacy], start=1)]
    path = tmp_path_factory.mktemp("lake")
    report = ingest_lines(lines, path, now_ms=T0 + 60_000)
    return path, report, events


def test_the_lake_stores_the_unknown_count(lake):
    path, report, events = lake
    assert (report.read, report.accepted, report.rejected) == (4, 4, 0)
    files = sorted(path.rglob("*.parquet"))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    got = {(r["device_id"], r["ts"]): r["unknown"] for r in rows}
    assert got == {("cam-u", T0): 1, ("cam-u", T0 + 1000): 1, ("cam-u", T0 + 2000): 1, ("cam-old", T0 + 3000): None}


def test_the_queries_count_unknown_apart_and_leave_it_out_of_compliance(lake):
    path, _, _ = lake
    results = {r.name: r for r in runner.run_queries(path, queries.load(), as_of=AS_OF)}
    hourly = results["mask_compliance_by_device_hour"]
    rows = {r[hourly.columns.index("device_id")]: dict(zip(hourly.columns, r, strict=True)) for r in hourly.rows}
    cam = rows["cam-u"]
    assert [int(cam[k]) for k in ("frames", "faces", "masked", "unmasked", "unknown")] == [3, 6, 2, 1, 3]
    assert cam["compliance_rate"] == pytest.approx(round(2 / 3, 4))      # not 2/6: unknown faces are left out
    old = rows["cam-old"]
    assert [int(old[k]) for k in ("faces", "masked", "unmasked", "unknown")] == [1, 1, 0, 0]
    assert old["compliance_rate"] == 1.0
    daily = results["unmasked_by_day"]
    day = dict(zip(daily.columns, daily.rows[-1], strict=True))
    assert (int(day["faces"]), int(day["unmasked"]), int(day["unknown"])) == (7, 1, 3)
