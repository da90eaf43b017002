"""The operations stack (issue 15): operator topic, one alarm per failure mode on AWS's own metrics, the device-alert
function and its least-privilege role, the operations dashboard."""
from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from functions.analytics import layout
from infra.constructs.operator_topic import OperatorTopic
from infra.settings import Settings
from tests.conftest import cdk_json_context

PROJECT = "maskcam"
RULES = [layout.rule_name(PROJECT, "$aws/things/+/infer"), layout.rule_name(PROJECT, "maskcam/+/infer")]
FUNCTIONS = ["wifi-ingest", "cloud-classifier", "athena-views", "device-alerts"]
QUEUES = ["wifi-ingest", "cloud-classifier"]


@pytest.fixture(scope="module")
def ops(project) -> Template:
    return Template.from_stack(project.stacks.operations)


@pytest.fixture(scope="module")
def alarms(ops) -> dict:
    """alarm name -> properties"""
    found = ops.find_resources("AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in found}


def topic_ref(ops) -> dict:
    (logical_id,) = ops.find_resources("AWS::SNS::Topic")
    return {"Ref": logical_id}


def metric_of(alarm: dict) -> dict:
    """namespace, name, dimensions and statistic of a single-metric alarm (plain or MetricStat form)."""
    if "MetricName" in alarm:
        return {"namespace": alarm["Namespace"], "name": alarm["MetricName"], "statistic": alarm.get("Statistic"),
                "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
                "period": alarm["Period"]}
    (query,) = [q for q in alarm["Metrics"] if q.get("ReturnData", True)]
    if "MetricStat" in query:
        stat = query["MetricStat"]
        return {"namespace": stat["Metric"]["Namespace"], "name": stat["Metric"]["MetricName"],
                "statistic": stat["Stat"], "period": stat["Period"],
                "dimensions": {d["Name"]: d["Value"] for d in stat["Metric"].get("Dimensions", [])}}
    return {"expression": query["Expression"], "period": query.get("Period")}


# -- topic -----------------------------------------------------------------------------------------------------------
def test_topic_is_encrypted_with_a_rotating_key_that_cloudwatch_may_use(ops):
    (key_id,) = ops.find_resources("AWS::KMS::Key")
    ops.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    key = ops.find_resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
               and set(s["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"} for s in statements)


def test_topic_refuses_plain_http_and_admits_only_this_accounts_alarms(ops):
    (policy,) = ops.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert ":alarm:*" in json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])


def test_no_subscription_by_default(ops):
    assert ops.find_resources("AWS::SNS::Subscription") == {}


def test_each_configured_address_gets_an_email_subscription():
    settings = Settings.from_mapping({**cdk_json_context(), "alarm_emails": "ops@example.com, oncall@example.org"})
    stack = cdk.Stack(cdk.App(), "T")
    OperatorTopic(stack, "Operators", display_name="t", emails=settings.alarm_emails)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::SNS::Subscription", 2)
    for address in ("ops@example.com", "oncall@example.org"):
        template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": address})


# -- alarms ----------------------------------------------------------------------------------------------------------
def expected_alarm_names() -> set:
    names = {f"{PROJECT}-iot-{r}-{kind}" for r in RULES for kind in ("action-failures", "error-action-failures",
                                                                       "throttled")}
    names |= {f"{PROJECT}-firehose-{k}" for k in ("delivery-to-s3", "data-freshness", "format-conversion")}
    names |= {f"{PROJECT}-lambda-{f}-{k}" for f in FUNCTIONS for k in ("errors", "throttles")}
    names |= {f"{PROJECT}-lambda-device-alerts-not-running", f"{PROJECT}-wifi-rejected-rows",
              f"{PROJECT}-wifi-unusable-files"}
    names |= {f"{PROJECT}-dlq-{q}" for q in QUEUES}
    return names


def test_the_expected_alarms_exist_and_all_notify_the_topic_on_alarm_and_ok(ops, alarms):
    assert set(alarms) == expected_alarm_names()
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic_ref(ops)], name
        assert alarm["OKActions"] == [topic_ref(ops)], name
        assert alarm["TreatMissingData"] in ("notBreaching", "breaching"), name


@pytest.mark.parametrize("rule", RULES)
def test_iot_rule_alarms(alarms, rule):
    failure = metric_of(alarms[f"{PROJECT}-iot-{rule}-action-failures"])
    assert failure["expression"] == (f"SELECT SUM(Failure) FROM SCHEMA(\"AWS/IoT\", ActionType, RuleName) "
                                     f"WHERE RuleName = '{rule}'")
    error_action = metric_of(alarms[f"{PROJECT}-iot-{rule}-error-action-failures"])
    assert "SUM(ErrorActionFailure)" in error_action["expression"] and f"'{rule}'" in error_action["expression"]
    throttled = metric_of(alarms[f"{PROJECT}-iot-{rule}-throttled"])
    assert throttled == {"namespace": "AWS/IoT", "name": "RuleMessageThrottled", "statistic": "Sum",
                         "dimensions": {"RuleName": rule}, "period": 300}
    for kind in ("action-failures", "error-action-failures", "throttled"):
        alarm = alarms[f"{PROJECT}-iot-{rule}-{kind}"]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["TreatMissingData"] == "notBreaching"


def test_firehose_alarms(project, alarms):
    stream = project.stacks.operations.resolve(project.stacks.analytics.delivery.stream_name)
    cases = {"delivery-to-s3": ("DeliveryToS3.Success", "Average", "LessThanThreshold", 1),
             "data-freshness": ("DeliveryToS3.DataFreshness", "Maximum", "GreaterThanThreshold", 1800),
             "format-conversion": ("FailedConversion.Records", "Sum", "GreaterThanThreshold", 0)}
    for slug, (name, statistic, comparison, threshold) in cases.items():
        alarm = alarms[f"{PROJECT}-firehose-{slug}"]
        metric = metric_of(alarm)
        assert (metric["namespace"], metric["name"], metric["statistic"]) == ("AWS/Firehose", name, statistic)
        assert list(metric["dimensions"]) == ["DeliveryStreamName"]
        assert json.dumps(metric["dimensions"]["DeliveryStreamName"]) == json.dumps(stream) or \
            "DeliveryStream" in json.dumps(metric["dimensions"]["DeliveryStreamName"])
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == (comparison, threshold)
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("label", FUNCTIONS)
def test_lambda_alarms(alarms, label):
    for kind, name in (("errors", "Errors"), ("throttles", "Throttles")):
        alarm = alarms[f"{PROJECT}-lambda-{label}-{kind}"]
        metric = metric_of(alarm)
        assert (metric["namespace"], metric["name"], metric["statistic"]) == ("AWS/Lambda", name, "Sum")
        assert list(metric["dimensions"]) == ["FunctionName"]
        assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == \
            ("GreaterThanThreshold", 0, "notBreaching")


def test_the_alert_evaluator_not_running_is_an_alarm(alarms):
    alarm = alarms[f"{PROJECT}-lambda-device-alerts-not-running"]
    metric = metric_of(alarm)
    assert (metric["name"], metric["statistic"], metric["period"]) == ("Invocations", "Sum", 15 * 60)
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == \
        ("LessThanThreshold", 1, "breaching")


@pytest.mark.parametrize("label", QUEUES)
def test_dead_letter_queue_alarms(alarms, label):
    alarm = alarms[f"{PROJECT}-dlq-{label}"]
    metric = metric_of(alarm)
    assert (metric["namespace"], metric["name"], metric["statistic"]) == \
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    assert list(metric["dimensions"]) == ["QueueName"]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_wifi_reject_share_alarm_on_log_metric_filters(ops, alarms):
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
               for f in ops.find_resources("AWS::Logs::MetricFilter").values()}
    assert filters["RowsIn"]["FilterPattern"] == '{ $.message = "ingested" }'
    assert filters["RowsIn"]["MetricTransformations"][0]["MetricValue"] == "$.rows_in"
    assert filters["RowsRejected"]["MetricTransformations"][0]["MetricValue"] == "$.rows_rejected"
    assert filters["FilesUnusable"]["FilterPattern"] == '{ $.message = "unusable file" }'
    assert {f["MetricTransformations"][0]["MetricNamespace"] for f in filters.values()} == {"maskcam/WifiIngest"}
    assert "wifi" in json.dumps(filters["RowsIn"]["LogGroupName"]).lower()

    alarm = alarms[f"{PROJECT}-wifi-rejected-rows"]
    (expression,) = [q for q in alarm["Metrics"] if q.get("ReturnData", True)]
    assert expression["Expression"] == "IF(rows_in > 0, 100 * rejected / rows_in, 0)"
    used = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in alarm["Metrics"] if "MetricStat" in q}
    assert used == {"rows_in": "RowsIn", "rejected": "RowsRejected"}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 10)


def test_thresholds_and_periods_come_from_settings(tmp_path):
    from tests.conftest import synth_project

    stacks, _ = synth_project(tmp_path, alarm_period_minutes="10", firehose_freshness_alarm_seconds="2400",
                              wifi_reject_alarm_percent="25")
    alarms = {a["Properties"]["AlarmName"]: a["Properties"]
              for a in Template.from_stack(stacks.operations).find_resources("AWS::CloudWatch::Alarm").values()}
    freshness = alarms[f"{PROJECT}-firehose-data-freshness"]
    assert freshness["Threshold"] == 2400 and metric_of(freshness)["period"] == 600
    assert alarms[f"{PROJECT}-wifi-rejected-rows"]["Threshold"] == 25
    assert metric_of(alarms[f"{PROJECT}-dlq-wifi-ingest"])["period"] == 600


# -- device alerts ---------------------------------------------------------------------------------------------------
def alert_function(ops) -> tuple:
    functions = ops.find_resources("AWS::Lambda::Function",
                                   {"Properties": {"Handler": "functions.alerts.handler.handler"}})
    (logical_id, function), = functions.items()
    return logical_id, function["Properties"]


def test_alert_function_runs_on_a_schedule_without_retries(ops):
    logical_id, function = alert_function(ops)
    ops.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(5 minutes)", "State": "ENABLED",
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [logical_id, "Arn"]},
                                       "RetryPolicy": {"MaximumRetryAttempts": 0}})]})
    ops.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 0})
    assert function["Timeout"] < 5 * 60   # done before the next run


def test_alert_function_runs_the_named_queries_with_the_alert_parameters(ops):
    _, function = alert_function(ops)
    env = function["Environment"]["Variables"]
    assert "FROM awskrug.inference_results" in env["HEARTBEATS_SQL"]
    assert "INTERVAL '0' MINUTE" in env["HEARTBEATS_SQL"] and "INTERVAL '2' DAY" in env["HEARTBEATS_SQL"]
    assert "compliance_rate" in env["COMPLIANCE_SQL"] and "INTERVAL '2' DAY" in env["COMPLIANCE_SQL"]
    assert (env["SILENT_MINUTES"], env["COMPLIANCE_MIN"], env["MIN_FACES"], env["WINDOW_HOURS"]) == \
        ("30", "0.7", "20", "1")
    assert env["WORKGROUP"] == "maskcam-analytics" and env["SEND_RECOVERY"] == "true"
    assert env["COMPLIANCE_MARGIN"] == "0.05"       # compliance_recovery_margin_percent, 5 points
    assert "INTERVAL '2' HOUR" in env["COMPLIANCE_SQL"]   # ts bound: the 1-hour window + 1
    assert "max(ingest_ts)" in env["HEARTBEATS_SQL"] and "'inference'" in env["HEARTBEATS_SQL"]
    assert len(json.dumps(env)) < 4096      # Lambda's limit on the environment


def test_episode_table_is_on_demand_encrypted_and_recoverable(ops):
    ops.has_resource_properties("AWS::DynamoDB::Table", {
        "BillingMode": "PAY_PER_REQUEST", "SSESpecification": {"SSEEnabled": True},
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]})


def alert_statements(ops) -> list:
    _, function = alert_function(ops)
    role = function["Role"]["Fn::GetAtt"][0]
    return [s for p in ops.find_resources("AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"] for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_alert_permissions_are_scoped(ops):
    statements = alert_statements(ops)

    def resources_of(action: str) -> str:
        found = [s["Resource"] for s in statements if action in (s["Action"] if isinstance(s["Action"], list)
                                                                 else [s["Action"]])]
        assert found, f"{action} is not granted"
        return json.dumps(found)

    for action in ("athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"):
        assert resources_of(action).count("workgroup/maskcam-analytics") == 1
    for action in ("glue:GetTable", "glue:GetPartitions"):
        assert "table/awskrug/inference_results" in resources_of(action)
    assert "database/awskrug" in resources_of("glue:GetDatabase")
    for action in ("dynamodb:Scan", "dynamodb:PutItem"):
        assert "Episodes" in resources_of(action)
    assert "OperatorsTopic" in resources_of("sns:Publish")
    assert "OperatorsKey" in resources_of("kms:GenerateDataKey")
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all("*" not in a for a in actions), s
        assert not any(("Delete" in a) or a.startswith("athena:Stop") for a in actions), s
        for resource in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]):
            text = json.dumps(resource)
            assert resource != "*", s
            if "*" in text:   # object wildcards only under the two prefixes
                assert text.endswith('/inference/*"]]}') or text.endswith('/athena-results/*"]]}'), s


# -- dashboard -------------------------------------------------------------------------------------------------------
def dashboard_body(project) -> str:
    stack = project.stacks.operations
    (dashboard,) = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


def test_dashboard_shows_every_hop_and_the_alarm_states(project, ops):
    body = dashboard_body(project)
    for needle in ('\\"AWS/IoT\\",\\"TopicMatch\\"', "SUM(Failure)", "SUM(ErrorActionFailure)",
                   "RuleMessageThrottled", '\\"AWS/Firehose\\",\\"IncomingRecords\\"', "IncomingBytes",
                   "DeliveryToS3.Records", "DeliveryToS3.Bytes", "DeliveryToS3.DataFreshness",
                   "FailedConversion.Records", '\\"AWS/Lambda\\",\\"Invocations\\"', "\\\"Errors\\\"",
                   '\\"AWS/Lambda\\",\\"Duration\\"', "ApproximateNumberOfMessagesVisible",
                   'MetricName=\\\\\\"ProcessedBytes\\\\\\" WorkGroup=\\\\\\"maskcam-analytics\\\\\\"',
                   '\\"type\\":\\"alarm\\"'):
        assert needle in body, needle
    for rule in RULES:
        assert rule in body
    for logical_id in ops.find_resources("AWS::CloudWatch::Alarm"):   # the alarm status widget lists every alarm
        assert f'"{logical_id}", "Arn"' in body, logical_id


def test_the_workgroup_publishes_the_metrics_the_dashboard_reads(project):
    Template.from_stack(project.stacks.storage).has_resource_properties("AWS::Athena::WorkGroup", {
        "WorkGroupConfiguration": Match.object_like({"PublishCloudWatchMetricsEnabled": True})})


# -- the Wi-Fi ingest's log line is what the metric filters read ---------------------------------------------------
def test_wifi_ingest_logs_the_fields_the_metric_filters_read(monkeypatch):
    """The handler's own log calls, rendered by a Powertools logger as in Lambda (JSON, extra keys at the top)."""
    import io
    import logging

    import boto3
    from aws_lambda_powertools import Logger
    from moto import mock_aws

    from functions.wifi_ingest import handler as wifi_handler
    from functions.wifi_ingest import sample
    from tests.test_wifi_ingest_lambda import BUCKET, KEY, eventbridge_event

    out = io.StringIO()
    monkeypatch.setattr(wifi_handler, "logger", Logger(service="wifi-ingest-log-contract",
                                                       logger_handler=logging.StreamHandler(out)))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TABLE_PREFIX", "tables/free_wifi_standard_data/")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        recs = sample.records(20, seed=3)
        recs[2]["latitude"] = "북위37"
        put = s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample.file_bytes(recs))
        wifi_handler.ingest(s3, wifi_handler.raw_objects(
            eventbridge_event(BUCKET, KEY, put["VersionId"], put["ETag"]))[0])
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    (ingested,) = [line for line in lines if line.get("message") == "ingested"]
    assert isinstance(ingested["rows_in"], int) and isinstance(ingested["rows_rejected"], int)
    assert (ingested["rows_in"], ingested["rows_rejected"]) == (20, 1)
