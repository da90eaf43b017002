"""Deploy-time views: the custom resource handler against moto (Athena there always SUCCEEDS) and botocore's Stubber
(FAILED, CANCELLED, still running), the Trino type inference of the view outputs, and the views on the local lake."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.athena.models import athena_backends

from functions.analytics import datasets, runner
from functions.athena_views import handler

REGION = "us-east-1"
VIEWS = [{"Name": "a", "Ddl": "CREATE OR REPLACE VIEW db.a AS SELECT 1 AS x"},
         {"Name": "b", "Ddl": "CREATE OR REPLACE VIEW db.b AS SELECT 2 AS y"}]


class Context:
    def get_remaining_time_in_millis(self):
        return 300_000


def event(kind, views=VIEWS, **extra):
    return {"RequestType": kind, "ResourceProperties": {"WorkGroup": "wg", "Database": "db", "Views": views},
            **extra}


@pytest.fixture
def athena():
    with mock_aws():
        client = boto3.client("athena", region_name=REGION)
        client.create_work_group(Name="wg")
        yield client


def started_queries(athena):
    """(query, workgroup, database) of every execution, in the order started."""
    ids = athena_backends["123456789012"][REGION].executions   # insertion order; the API's listing has none
    executions = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    return [(e["Query"], e["WorkGroup"], e["QueryExecutionContext"]["Database"]) for e in executions]


def test_create_runs_every_view_ddl_in_the_workgroup_and_database(athena):
    result = handler.on_event(event("Create"), Context(), athena=athena)
    assert result["PhysicalResourceId"] == "athena-views/db"
    assert started_queries(athena) == [(v["Ddl"], "wg", "db") for v in VIEWS]


def test_update_keeps_the_physical_id_and_reports_views_no_longer_defined(athena, caplog):
    caplog.set_level(logging.WARNING, logger=handler.__name__)
    result = handler.on_event(event("Update", views=VIEWS[:1], PhysicalResourceId="athena-views/db",
                                    OldResourceProperties=event("Create")["ResourceProperties"]),
                              Context(), athena=athena)
    assert result["PhysicalResourceId"] == "athena-views/db"   # a new id would make CloudFormation delete (drop)
    assert [q for q, _, _ in started_queries(athena)] == [VIEWS[0]["Ddl"]]
    assert "views no longer defined, left in db: b" in caplog.text


def test_delete_drops_each_view(athena):
    handler.on_event(event("Delete", PhysicalResourceId="athena-views/db"), Context(), athena=athena)
    assert started_queries(athena) == [(f"DROP VIEW IF EXISTS db.{v}", "wg", "db") for v in ("a", "b")]


def stubbed():
    client = boto3.client("athena", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def status(state, reason=None):
    s = {"State": state, **({"StateChangeReason": reason} if reason else {})}
    return {"QueryExecution": {"QueryExecutionId": "q1", "Status": s}}


def expect_start(stub, sql=ANY):
    stub.add_response("start_query_execution", {"QueryExecutionId": "q1"},
                      {"QueryString": sql, "WorkGroup": "wg", "QueryExecutionContext": {"Database": "db"}})


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_refused_ddl_raises_with_the_view_name_and_athenas_reason(state):
    client, stub = stubbed()
    expect_start(stub, VIEWS[0]["Ddl"])
    stub.add_response("get_query_execution", status("RUNNING"), {"QueryExecutionId": "q1"})
    stub.add_response("get_query_execution", status(state, "Unsupported Hive type: timestamp with time zone"))
    with stub, pytest.raises(handler.ViewError) as err:
        handler.on_event(event("Create"), Context(), athena=client)
    assert str(err.value) == (f"view db.a: Athena query q1 {state}: "
                              "Unsupported Hive type: timestamp with time zone")
    stub.assert_no_pending_responses()   # the second view was not started


def test_a_ddl_still_running_at_the_deadline_raises_a_clear_timeout():
    client, stub = stubbed()
    expect_start(stub)
    for _ in range(3):
        stub.add_response("get_query_execution", status("RUNNING"))
    clock = iter([0, 5, 10]).__next__
    with stub, pytest.raises(handler.ViewError, match="view db.a: Athena query q1 still RUNNING when the time"):
        handler.run_and_wait(client, "CREATE ...", name="a", workgroup="wg", database="db", deadline=10,
                             clock=clock, sleep=lambda _: None)


def test_the_deadline_leaves_the_safety_margin_before_lambdas_timeout(monkeypatch):
    seen = {}
    monkeypatch.setattr(handler.time, "monotonic", lambda: 1000.0)
    monkeypatch.setattr(handler, "create_views", lambda *a, deadline, **k: seen.setdefault("deadline", deadline))
    handler.on_event(event("Create"), Context(), athena=object())
    assert seen["deadline"] == 1000 + 300 - handler.SAFETY_MARGIN_SECONDS


def test_a_failed_drop_is_logged_not_raised(caplog):
    client, stub = stubbed()
    stub.add_client_error("start_query_execution", "InvalidRequestException", "no such workgroup")
    expect_start(stub, "DROP VIEW IF EXISTS db.b")
    stub.add_response("get_query_execution", status("SUCCEEDED"))
    with stub:
        handler.on_event(event("Delete"), Context(), athena=client)
    assert "could not drop view db.a" in caplog.text
    stub.assert_no_pending_responses()


# --- what the views return ---------------------------------------------------------------------------------------

def types(select):
    return dict(datasets.output_types(f"SELECT {select} FROM awskrug.inference_results", "awskrug"))


@pytest.mark.parametrize("expr, trino_type", [
    ("from_unixtime(ts / 1e3)", "timestamp(3) with time zone"),          # sqlglot alone: timestamp
    ("current_timestamp", "timestamp(3) with time zone"),
    ("now()", "timestamp(3) with time zone"),
    ("date_trunc('hour', from_unixtime(ts / 1e3))", "timestamp(3) with time zone"),  # sqlglot alone: unknown
    ("date_add('hour', 1, from_unixtime(ts / 1e3))", "timestamp(3) with time zone"),
    ("current_timestamp - INTERVAL '1' HOUR", "timestamp(3) with time zone"),
    ("date_add('millisecond', ts % 1000, TIMESTAMP '1970-01-01 00:00:00.000')", "timestamp(3)"),
    ("date_trunc('hour', date_add('day', 1, TIMESTAMP '1970-01-01 00:00:00'))", "timestamp(0)"),
    ("date_add('day', 1, current_date)", "date"),
    ("max_by(fps, ts)", "double"),
])
def test_output_types_are_trinos(expr, trino_type):
    assert types(f"{expr} AS x") == {"x": trino_type}


def test_view_outputs_have_no_time_zone():
    for query in datasets.view_queries():
        for name, kind in datasets.output_types(datasets.view_select(query, "awskrug"), "awskrug"):
            assert "time zone" not in kind, (query.name, name)
    hourly = next(q for q in datasets.view_queries() if q.name == "view_mask_compliance_hourly")
    assert dict(datasets.output_types(datasets.view_select(hourly, "awskrug"), "awskrug"))["hour"] == "timestamp(3)"


def test_view_ddl_is_the_file_without_comment_lines():
    (query,) = [q for q in datasets.view_queries() if q.name == "view_device_last_heartbeat"]
    ddl = datasets.view_ddl(query, "awskrug")
    assert ddl.startswith("CREATE OR REPLACE VIEW awskrug.device_last_heartbeat AS\nSELECT dt,")
    assert "--" not in ddl and "${" not in ddl
    assert datasets.split_view(ddl) == ("awskrug", "device_last_heartbeat", datasets.view_select(query, "awskrug"))


def test_the_local_views_convert_epoch_ms_to_utc_like_python():
    """Hour and day edges, milliseconds kept: the tz-free form gives the UTC wall clock from_unixtime would."""
    import duckdb

    stamps = [1_700_000_123_456, 1_700_003_599_999, 1_700_006_400_000, 1_699_999_199_600, 86_399_999]
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA awskrug")
    # ingest_ts: the arrival a second later (the heartbeat view's last_seen is judged on it)
    rows = ", ".join(f"('d', '{i}', '{kind}', {ts}, {ts + 1000}, 1, 1, 0, 0, 3.0, 1, 0, 0)"
                     for i, ts in enumerate(stamps) for kind in ("inference", "heartbeat"))
    conn.execute(f"CREATE VIEW awskrug.inference_results AS SELECT * FROM (VALUES {rows}) "
                 "t(dt, device_id, event_type, ts, ingest_ts, faces, masked, unmasked, unknown, fps, frames, errors, "
                 "dropped)")
    runner.run_queries(None, datasets.view_queries(), conn=conn)

    def utc(ts):
        return datetime.fromtimestamp(ts / 1000, timezone.utc).replace(tzinfo=None)

    hourly = conn.execute("SELECT device_id, hour, typeof(hour) FROM awskrug.mask_compliance_hourly").fetchall()
    assert {d: (h, t) for d, h, t in hourly} == {
        str(i): (utc(ts).replace(minute=0, second=0, microsecond=0), "TIMESTAMP") for i, ts in enumerate(stamps)}
    last = conn.execute("SELECT device_id, last_heartbeat FROM awskrug.device_last_heartbeat").fetchall()
    assert dict(last) == {str(i): utc(ts) for i, ts in enumerate(stamps)}
    seen = conn.execute("SELECT device_id, last_seen, last_seen_ms FROM awskrug.device_last_heartbeat").fetchall()
    assert {d: (s, ms) for d, s, ms in seen} == {str(i): (utc(ts + 1000), ts + 1000) for i, ts in enumerate(stamps)}
