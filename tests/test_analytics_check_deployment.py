"""The post-deploy check against moto: passes on a matching deployment, names each missing or disabled part (the
views included, which the analytics stack's deploy creates)."""
import boto3
import pytest
from moto import mock_aws

from functions.analytics import check_deployment, datasets, layout

REGION = "us-east-1"


@pytest.fixture
def session():
    with mock_aws():
        yield boto3.Session(region_name=REGION)


VIEWS = [datasets.view_name(q) for q in datasets.view_queries()]


def deploy(session, *, columns=layout.COLUMNS, projection=True, disabled_rule=None, with_stream=True,
           views=VIEWS, view_type="VIRTUAL_VIEW"):
    glue = session.client("glue")
    glue.create_database(DatabaseInput={"Name": "awskrug"})
    params = {"projection.enabled": "true", "projection.dt.type": "date"} if projection else {}
    glue.create_table(DatabaseName="awskrug", TableInput={
        "Name": layout.TABLE, "Parameters": params,
        "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t, _ in columns]}})
    for view in views:   # what Athena's CREATE VIEW leaves in Glue
        glue.create_table(DatabaseName="awskrug", TableInput={
            "Name": view, "TableType": view_type, "ViewOriginalText": "/* Presto View: ... */"})
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


def test_missing_views_and_a_table_in_place_of_a_view_are_reported(session):
    assert VIEWS == ["device_last_heartbeat", "mask_compliance_hourly"]
    deploy(session, views=VIEWS[:1], view_type="EXTERNAL_TABLE")
    problems = check_deployment.check(session, project="maskcam", database="awskrug", stream="inference")
    assert problems == [
        "awskrug.device_last_heartbeat is not a view: TableType 'EXTERNAL_TABLE', not VIRTUAL_VIEW",
        "view awskrug.mask_compliance_hourly does not exist (the analytics stack's deploy creates it)",
    ]


def test_views_are_no_longer_a_manual_step(session, capsys):
    deploy(session)
    with pytest.raises(SystemExit):
        check_deployment.main(["--create-views"], session=session)
    assert "unrecognized arguments: --create-views" in capsys.readouterr().err
