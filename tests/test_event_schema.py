import ast
import json
from pathlib import Path

import pytest

from maskcam import schema

T0 = 1_764_000_000_000


def face(label="mask", prob=0.9):
    return {"label": label, "probability": prob, "box": [10, 20, 110, 140]}


def test_built_events_are_valid_and_counts_follow_detections():
    event = schema.inference_event("cam-1", T0, "squeezenet-mask", "3", [face(), face("no_mask", 0.8)], 12.5)
    assert schema.problems(event) == []
    assert (event["faces"], event["masked"], event["unmasked"]) == (2, 1, 1)
    assert json.loads(schema.to_json(event)) == event
    for other in (schema.heartbeat_event("cam-1", T0, "m", "1", 9.5, 100, 2, 0),
                  schema.error_event("cam-1", T0, "m", "1", "camera read failed")):
        assert schema.problems(other) == []


def test_every_problem_is_named():
    bad = {"schema_version": 2, "event_type": "inference", "ts": "yesterday", "model_name": "m",
           "model_version": "1", "faces": 1, "masked": 1, "unmasked": 0, "latency_ms": 3.0, "color": "red",
           "detections": [{"label": "hat", "probability": 1.5, "box": [1, 2, 3]}]}
    found = " | ".join(schema.problems(bad))
    for expected in ("missing device_id", "unknown field(s) color", "ts must be an integer",
                     "schema_version 2", "label 'hat'", "probability 1.5", "box [1, 2, 3]"):
        assert expected in found
    with pytest.raises(schema.SchemaError) as err:
        schema.validate(bad)
    assert err.value.problems == schema.problems(bad)


@pytest.mark.parametrize("prob, valid", [
    (0.0, True), (1.0, True), (0, True), (1, True), (0.5, True),
    (None, False), (True, False), (False, False), ("0.5", False), ([0.5], False), (-0.01, False), (1.01, False),
    (float("nan"), False), (float("inf"), False)])
def test_a_probability_is_a_number_in_0_1_and_anything_else_is_a_problem_not_a_crash(prob, valid):
    event = schema.inference_event("cam-1", T0, "m", "1", [face()], 1.0)
    event["detections"][0]["probability"] = prob
    assert (schema.problems(event) == []) is valid
    assert any("probability" in p for p in schema.problems(event)) is not valid
    del event["detections"][0]["probability"]  # absent: a problem too
    assert any("probability" in p for p in schema.problems(event))


def test_counts_must_match_detections():
    event = schema.inference_event("cam-1", T0, "m", "1", [face()], 1.0)
    event["masked"] = 0
    assert "faces/masked/unmasked/unknown do not match detections" in schema.problems(event)


def test_worst_case_payload_stays_far_below_the_iot_limit():
    many = [face() for _ in range(500)]
    event = schema.inference_event("cam-" + "x" * 120, T0, "m" * 64, "v" * 32, many, 1.0)
    assert event["faces"] == schema.MAX_DETECTIONS
    assert len(schema.to_json(event)) < schema.MAX_PAYLOAD_BYTES / 10


def test_schema_module_parses_as_python_37():
    source = Path(schema.__file__).read_text()
    ast.parse(source, feature_version=(3, 7))


def test_an_event_type_that_is_not_a_string_is_a_problem_not_a_crash():
    from maskcam import schema

    for value in ({"a": 1}, ["inference"], 3):
        found = schema.problems({"schema_version": 1, "event_type": value, "device_id": "d", "ts": 1764547200000,
                                 "model_name": "m", "model_version": "1"})
        assert any("event_type" in p for p in found)
