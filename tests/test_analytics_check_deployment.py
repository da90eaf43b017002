"""The post-deploy check against moto: passes on a matching deployment, names each missing or disabled part."""
import boto3
import pytest
from moto import mock_aws

from functions.analytics import check_deployment, layout, queries

REGION = "us-east-1"


@pytest.fixture
def session():
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def deploy(session, *, columns=layout.COLUMNS, projection=True, disabled_rule=None, with_stream=True):
    glue = session.client("glue")
    glue.create_database(DatabaseInput={"Name": "awskrug"})
    params = {"projection.enabled": "true", "projection.dt.type": "date"} if projection else {}
    glue.create_table(DatabaseName="awskrug", TableInput={
        "Name": layout.TABLE, "Parameters": params,
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t, _ in columns]}})
    session.client("athena").create_work_group(Name="maskcam-analytics", Configuration={
        "EnforceWorkGroupConfiguration": True, "BytesScannedCutoffPerQuery": 1024 ** 3,
        "ResultConfiguration": {"OutputLocation": "s3://data/athena-results/"}})
    iot = session.client("iot")
    for rule in check_deployment.expected_rules("maskcam"):
        iot.create_topic_rule(ruleName=rule, topicRulePayload={
            "sql": "SELECT * FROM 'x/+/infer'", "actions": [], "ruleDisabled": rule == disabled_rule})
    if with_stream:
        session.client("firehose").create_delivery_stream(
            DeliveryStreamName="inference", ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose", "BucketARN": "arn:aws:s3:::data"})


def test_a_matching_deployment_passes(session, capsys):
    deploy(session)
    assert check_deployment.main(["--stream", "inference"], session=session) == 0
    assert "ok: awskrug.inference_results" in capsys.readouterr().out


def test_nothing_deployed_lists_every_missing_part(session):
    problems = check_deployment.check(session, project="maskcam", database="awskrug", stream="inference")
    text = "\n".join(problems)
    assert "Glue table awskrug.inference_results does not exist" in text
    assert "Athena workgroup maskcam-analytics does not exist" in text
    assert "IoT rule maskcam_inference_deeplens does not exist" in text
    assert "IoT rule maskcam_inference_devices does not exist" in text
    assert "delivery stream inference does not exist" in text


def test_disabled_rule_wrong_columns_and_no_projection_are_reported(session, capsys):
    deploy(session, columns=layout.COLUMNS[:-1], projection=False, disabled_rule="maskcam_inference_devices")
    assert check_deployment.main([], session=session) == 1
    err = capsys.readouterr().err
    assert "IoT rule maskcam_inference_devices is disabled" in err
    assert "columns differ" in err and "source_topic" in err
    assert "has no partition projection" in err


def test_create_views_starts_each_view_ddl_in_the_workgroup(session):
    deploy(session)
    ids = check_deployment.create_views(session, project="maskcam", database="awskrug")
    views = [q for q in queries.load() if q.is_view]
    assert len(ids) == len(views) >= 1
    athena = session.client("athena")
    started = [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    assert {e["WorkGroup"] for e in started} == {"maskcam-analytics"}
    assert sorted(e["Query"] for e in started) == sorted(v.render("awskrug") for v in views)
