"""The device-alert Lambda (functions/alerts/handler.py) against moto (DynamoDB state, SNS -> SQS to read what was
sent, Athena with queued results) and botocore's Stubber where moto cannot play Athena's part (paging, failures)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.core import DEFAULT_ACCOUNT_ID

from functions.alerts import handler as alerts
from functions.alerts.evaluate import HOUR_MS, MINUTE_MS, window_start_ms
from functions.alerts.queries import COMPLIANCE, HEARTBEATS, alert_queries

REGION = "us-east-1"
TABLE = "maskcam-alert-episodes"
WORKGROUP = "maskcam-analytics"
NOW = 1_795_000_000_000
HEARTBEAT_COLUMNS = ["device_id", "last_seen", "minutes_silent"]
COMPLIANCE_COLUMNS = ["device_id", "hour", "frames", "faces", "masked", "unmasked", "compliance_rate"]


def athena_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def cloud(monkeypatch):
    """moto with the table, the topic (and a queue subscribed to it, to read messages) and the workgroup; the
    Lambda's environment as the construct sets it."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="maskcam-operators")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        athena = boto3.client("athena", region_name=REGION)
        athena.create_work_group(Name=WORKGROUP, Configuration={
            "ResultConfiguration": {"OutputLocation": "s3://maskcam-data/athena-results/"}})
        queries = alert_queries("awskrug", 1)
        env = {"WORKGROUP": WORKGROUP, "STATE_TABLE": TABLE, "TOPIC_ARN": topic, "PROJECT": "maskcam",
               "HEARTBEATS_SQL": queries[HEARTBEATS], "COMPLIANCE_SQL": queries[COMPLIANCE],
               "SILENT_MINUTES": "30", "COMPLIANCE_MIN": "0.7", "MIN_FACES": "20", "WINDOW_HOURS": "1",
               "SEND_RECOVERY": "true"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)

        def inbox() -> list:
            out = []
            while True:
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    return out
                for message in got:
                    out.append(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

        yield SimpleNamespace(ddb=ddb, sns=sns, athena=athena, topic=topic, inbox=inbox,
                              config=alerts.Config.from_env())


def queue_results(heartbeats=(), compliance=()):
    """What Athena answers to this run's two queries, in order (moto executes no SQL); values as strings."""
    backend = athena_backends[DEFAULT_ACCOUNT_ID][REGION]
    for columns, rows in ((HEARTBEAT_COLUMNS, heartbeats), (COMPLIANCE_COLUMNS, compliance)):
        data = [{"Data": [{"VarCharValue": c} for c in columns]}]
        data += [{"Data": [({"VarCharValue": str(v)} if v is not None else {}) for v in row]} for row in rows]
        backend.query_results_queue.append(QueryResults(rows=data, column_info=[{"Name": c, "Type": "varchar"}
                                                                                 for c in columns]))


def run(cloud, now=NOW, sns=None, table=None):
    return alerts.run(cloud.config, query=alerts.AthenaRows(cloud.athena, WORKGROUP, sleep=lambda s: None),
                      table=table or alerts.EpisodeTable(cloud.ddb, TABLE), sns=sns or cloud.sns, now_ms=now)


def items(cloud) -> dict:
    return {i["pk"]["S"]: i for i in cloud.ddb.scan(TableName=TABLE)["Items"]}


def silent_row(device="cam-002", minutes=45, now=NOW):
    return (device, athena_time(now - minutes * MINUTE_MS), str(minutes))


def test_a_silent_device_is_published_once_with_device_since_and_figure(cloud):
    queue_results(heartbeats=[silent_row(), ("cam-001", athena_time(NOW - MINUTE_MS), "1")])
    result = run(cloud)
    (message,) = cloud.inbox()
    assert message["Subject"].startswith("[maskcam] ALERT cam-002 silent since ")
    assert "45 min" in message["Subject"]
    facts = json.loads(message["Message"].splitlines()[-1])
    assert (facts["device_id"], facts["kind"], facts["status"]) == ("cam-002", "silent", "firing")
    assert facts["since_ms"] == NOW - 45 * MINUTE_MS
    assert len(result["sent"]) == 1
    state = items(cloud)
    assert state["silent#cam-002"]["open"] == {"BOOL": True} and state["silent#cam-002"]["version"] == {"N": "1"}
    assert state[alerts.META_KEY]["evaluated_ms"] == {"N": str(NOW)}

    queue_results(heartbeats=[silent_row(minutes=50, now=NOW + 5 * MINUTE_MS)])
    assert run(cloud, now=NOW + 5 * MINUTE_MS)["sent"] == []       # same episode, next period: nothing
    assert cloud.inbox() == []


def test_recovery_and_low_compliance(cloud):
    queue_results(heartbeats=[silent_row()])
    run(cloud)
    cloud.inbox()
    later = NOW + 10 * MINUTE_MS
    hour = window_start_ms(later, 1) + HOUR_MS
    queue_results(heartbeats=[("cam-002", athena_time(later - MINUTE_MS), "1")],
                  compliance=[("cam-002", athena_time(hour), "30", "60", "15", "45", "0.25")])
    run(cloud, now=later)
    subjects = sorted(m["Subject"] for m in cloud.inbox())
    assert len(subjects) == 2
    assert "ALERT cam-002 mask compliance 25% of 60 faces" in subjects[0]
    assert "OK cam-002 heard again" in subjects[1]
    assert items(cloud)["silent#cam-002"]["open"] == {"BOOL": False}


def test_nothing_sent_when_every_device_is_fine(cloud):
    hour = window_start_ms(NOW, 1) + HOUR_MS
    queue_results(heartbeats=[("cam-001", athena_time(NOW - MINUTE_MS), "1")],
                  compliance=[("cam-001", athena_time(hour), "30", "60", "59", "1", "0.98"),
                              ("cam-009", None, None, "-4", None, None, None)])
    result = run(cloud)
    assert result["sent"] == [] and result["ignored_rows"] == 1 and cloud.inbox() == []


class FailingOnce:
    """An SNS client whose first publish fails as the service would (e.g. KMS throttling)."""

    def __init__(self, client):
        self.client, self.failed = client, False

    def publish(self, **kwargs):
        if not self.failed:
            self.failed = True
            raise ClientError({"Error": {"Code": "KMSThrottling", "Message": "slow down"}}, "Publish")
        return self.client.publish(**kwargs)


def test_a_failed_publish_is_undone_and_sent_by_the_next_run(cloud):
    queue_results(heartbeats=[silent_row()])
    with pytest.raises(alerts.AlertRunError, match="could not be published"):
        run(cloud, sns=FailingOnce(cloud.sns))
    assert cloud.inbox() == []
    assert items(cloud)["silent#cam-002"]["open"] == {"BOOL": False}      # the claim was undone
    queue_results(heartbeats=[silent_row(minutes=50, now=NOW + 5 * MINUTE_MS)])
    run(cloud, now=NOW + 5 * MINUTE_MS)
    (message,) = cloud.inbox()
    assert "ALERT cam-002 silent" in message["Subject"]
    queue_results(heartbeats=[silent_row(minutes=55, now=NOW + 10 * MINUTE_MS)])
    run(cloud, now=NOW + 10 * MINUTE_MS)
    assert cloud.inbox() == []


class StaleTable(alerts.EpisodeTable):
    """A run that read the state before another run changed it (two overlapping invocations)."""

    def __init__(self, client, table, snapshot):
        super().__init__(client, table)
        self._snapshot = snapshot

    def load(self):
        return self._snapshot


def test_overlapping_runs_send_one_message(cloud):
    snapshot = alerts.EpisodeTable(cloud.ddb, TABLE).load()
    queue_results(heartbeats=[silent_row()])
    run(cloud)
    queue_results(heartbeats=[silent_row(minutes=46, now=NOW + MINUTE_MS)])
    result = run(cloud, now=NOW + MINUTE_MS, table=StaleTable(cloud.ddb, TABLE, snapshot))
    assert result["sent"] == []
    assert len(cloud.inbox()) == 1


def test_a_run_with_the_clock_behind_sends_nothing(cloud):
    queue_results(heartbeats=[silent_row()])
    run(cloud)
    cloud.inbox()
    queue_results(heartbeats=[silent_row(device="cam-007")])
    result = run(cloud, now=NOW - HOUR_MS)
    assert result["skipped"] and cloud.inbox() == []
    assert items(cloud)[alerts.META_KEY]["evaluated_ms"] == {"N": str(NOW)}


def test_unreadable_state_items_are_skipped(cloud):
    cloud.ddb.put_item(TableName=TABLE, Item={"pk": {"S": "silent#broken"}, "kind": {"S": "silent"}})
    cloud.ddb.put_item(TableName=TABLE, Item={"pk": {"S": "weird#x"}, "kind": {"S": "weird"}})
    queue_results(heartbeats=[silent_row()])
    assert len(run(cloud)["sent"]) == 1


def test_handler_entry_point_reads_its_environment(cloud, monkeypatch):
    monkeypatch.setattr(alerts.time, "time", lambda: NOW / 1000)
    queue_results(heartbeats=[silent_row()])
    result = alerts.handler({"source": "aws.events"}, SimpleNamespace(get_remaining_time_in_millis=lambda: 50_000))
    assert len(result["sent"]) == 1 and len(cloud.inbox()) == 1
    executions = athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions.values()
    assert {e.workgroup.name if hasattr(e.workgroup, "name") else e.workgroup for e in executions} == {WORKGROUP}
    assert [e.query for e in executions][-2:] == [cloud.config.heartbeats_sql, cloud.config.compliance_sql]


# -- Athena paging and failures (Stubber) ----------------------------------------------------------------------------
def test_results_are_read_across_pages_without_the_header_row():
    client = boto3.client("athena", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q1"},
                          {"QueryString": "SELECT 1", "WorkGroup": WORKGROUP})
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}})
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}})
        meta = {"ColumnInfo": [{"Name": "device_id", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}]}
        stub.add_response("get_query_results", {"NextToken": "t", "ResultSet": {"ResultSetMetadata": meta, "Rows": [
            {"Data": [{"VarCharValue": "device_id"}, {"VarCharValue": "n"}]},
            {"Data": [{"VarCharValue": "cam-1"}, {"VarCharValue": "3"}]}]}}, {"QueryExecutionId": "q1"})
        stub.add_response("get_query_results", {"ResultSet": {"ResultSetMetadata": meta, "Rows": [
            {"Data": [{"VarCharValue": "cam-2"}, {}]}]}}, {"QueryExecutionId": "q1", "NextToken": "t"})
        rows = alerts.AthenaRows(client, WORKGROUP, sleep=lambda s: None)("SELECT 1")
    assert rows == [{"device_id": "cam-1", "n": "3"}, {"device_id": "cam-2", "n": None}]


def test_a_failed_query_or_one_that_outlasts_the_run_raises():
    client = boto3.client("athena", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q1"}, {"QueryString": ANY, "WorkGroup": ANY})
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
            "State": "FAILED", "StateChangeReason": "Query exhausted resources: bytes scanned cutoff"}}})
        with pytest.raises(RuntimeError, match="cutoff"):
            alerts.AthenaRows(client, WORKGROUP, sleep=lambda s: None)("SELECT 1")
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q2"}, {"QueryString": ANY, "WorkGroup": ANY})
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "QUEUED"}}})
        with pytest.raises(TimeoutError):
            alerts.AthenaRows(client, WORKGROUP, remaining_ms=lambda: 5_000, sleep=lambda s: None)("SELECT 1")


class NoAnswer:
    """An SNS client that never gets an answer: botocore raises BotoCoreError, not ClientError."""

    def __init__(self, error):
        self.error, self.calls = error, 0

    def publish(self, **kwargs):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
    ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
])
def test_a_publish_without_an_answer_is_undone_too(cloud, error):
    """After the claim, a network failure must not leave the episode claimed but unsent (the next run would
    see it open and never send it)."""
    queue_results(heartbeats=[silent_row()])
    sns = NoAnswer(error)
    with pytest.raises(alerts.AlertRunError, match="could not be published"):
        run(cloud, sns=sns)
    assert sns.calls == 1 and items(cloud)["silent#cam-002"]["open"] == {"BOOL": False}
    queue_results(heartbeats=[silent_row(minutes=50, now=NOW + 5 * MINUTE_MS)])
    run(cloud, now=NOW + 5 * MINUTE_MS)
    (message,) = cloud.inbox()
    assert "ALERT cam-002 silent" in message["Subject"]


def test_a_publish_through_botocore_that_cannot_connect_is_undone():
    """The same through botocore itself: a real SNS client (the Lambda's CLIENT_CONFIG) whose requests never
    connect, and DynamoDB on a Stubber that expects the claim, then the undo (conditional on the claimed
    version), then the run's time mark."""
    config = alerts.Config(workgroup=WORKGROUP, table=TABLE, topic_arn="arn:aws:sns:us-east-1:123456789012:ops",
                           project="maskcam", heartbeats_sql="H", compliance_sql="C",
                           thresholds=alerts.Thresholds(30, 0.7, 20, 1))
    ddb = boto3.client("dynamodb", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION, config=alerts.CLIENT_CONFIG)
    sns.meta.events.register_first("before-send.sns.Publish", _refuse_connection)
    rows = {"H": [{"device_id": "cam-002", "last_seen": NOW - 45 * MINUTE_MS}], "C": []}
    with Stubber(ddb) as db:
        db.add_response("scan", {"Items": []}, {"TableName": TABLE, "ConsistentRead": True})
        db.add_response("put_item", {}, {"TableName": TABLE, "Item": ANY,
                                         "ConditionExpression": "attribute_not_exists(pk)"})          # claim
        db.add_response("put_item", {}, {"TableName": TABLE, "Item": ANY, "ConditionExpression": "version = :v",
                                         "ExpressionAttributeValues": {":v": {"N": "1"}}})             # undo
        db.add_response("put_item", {}, {"TableName": TABLE, "Item": ANY, "ConditionExpression": ANY,
                                         "ExpressionAttributeValues": ANY})                           # time mark
        with pytest.raises(alerts.AlertRunError):
            alerts.run(config, query=rows.__getitem__, table=alerts.EpisodeTable(ddb, TABLE), sns=sns, now_ms=NOW)
        db.assert_no_pending_responses()


def _refuse_connection(request, **kwargs):
    raise EndpointConnectionError(endpoint_url=request.url)


def test_no_episode_is_claimed_with_too_little_time_left(cloud):
    """Left to the next run rather than claimed and then cut off by the Lambda's timeout."""
    queue_results(heartbeats=[silent_row()])
    result = alerts.run(cloud.config, query=alerts.AthenaRows(cloud.athena, WORKGROUP, sleep=lambda s: None),
                        table=alerts.EpisodeTable(cloud.ddb, TABLE), sns=cloud.sns, now_ms=NOW,
                        remaining_ms=lambda: alerts.CLAIM_MARGIN_MS - 1)
    assert result["sent"] == [] and len(result["deferred"]) == 1 and cloud.inbox() == []
    assert "silent#cam-002" not in items(cloud)
    queue_results(heartbeats=[silent_row(minutes=50, now=NOW + 5 * MINUTE_MS)])
    assert len(run(cloud, now=NOW + 5 * MINUTE_MS)["sent"]) == 1 and len(cloud.inbox()) == 1


def test_a_pipeline_outage_is_one_fleet_message_and_each_episode_is_kept(cloud):
    queue_results(heartbeats=[silent_row(device=f"cam-{i:03d}") for i in range(4)]
                  + [("cam-100", athena_time(NOW - MINUTE_MS), "1")])
    result = run(cloud)
    (message,) = cloud.inbox()
    assert message["Subject"].startswith("[maskcam] ALERT 4 of 5 devices silent at once")
    assert all(f"cam-{i:03d} silent since" in message["Message"] for i in range(4))
    assert len(result["sent"]) == 4
    state = items(cloud)
    assert all(state[f"silent#cam-{i:03d}"]["open"] == {"BOOL": True} for i in range(4))
    queue_results(heartbeats=[silent_row(device=f"cam-{i:03d}", minutes=50, now=NOW + 5 * MINUTE_MS)
                              for i in range(4)])
    assert run(cloud, now=NOW + 5 * MINUTE_MS)["sent"] == [] and cloud.inbox() == []   # once per episode
