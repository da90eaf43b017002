"""The QuickSight post-deploy check. Data sources run against moto; moto 5.2 has no DescribeDataSet (it answers
"Not yet implemented"), so the dataset part runs against botocore's Stubber, which checks every request and
response against the real QuickSight API model."""
from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from functions.analytics import chart_spec, check_dashboard, datasets

REGION = "us-east-1"
ACCOUNT = "123456789012"   # moto's default account
PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/ops"


@pytest.fixture
def session():
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def create_source(session, *, workgroup="maskcam-analytics", source_type="ATHENA"):
    session.client("quicksight").create_data_source(
        AwsAccountId=ACCOUNT, DataSourceId="maskcam-athena", Name="maskcam Athena", Type=source_type,
        DataSourceParameters={"AthenaParameters": {"WorkGroup": workgroup}},
        Permissions=[{"Principal": PRINCIPAL, "Actions": ["quicksight:DescribeDataSource"]}])


def test_a_matching_data_source_passes(session):
    create_source(session)
    assert check_dashboard.check_data_source(session.client("quicksight"), ACCOUNT, project="maskcam") == []


def test_missing_data_source_is_named_and_main_exits_1(session, capsys):
    assert check_dashboard.main(["--project", "maskcam"], session=session) == 1
    err = capsys.readouterr().err
    assert "QuickSight data source maskcam-athena does not exist" in err


def test_wrong_workgroup_is_a_problem(session):
    create_source(session, workgroup="primary")
    problems = check_dashboard.check_data_source(session.client("quicksight"), ACCOUNT, project="maskcam")
    assert problems == ["data source maskcam-athena uses workgroup 'primary', not maskcam-analytics"]


def described(spec, mode=None, columns=None):
    """As deployed with quicksight_import_mode=SPICE (the silent-devices dataset is always direct query)."""
    mode = mode or spec.import_mode("SPICE")
    columns = [{"Name": n, "Type": t} for n, t in (columns if columns is not None else spec.columns)]
    arn = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:datasource/maskcam-athena"
    if spec.sql:
        physical = {"CustomSql": {"DataSourceArn": arn, "Name": spec.key, "SqlQuery": spec.sql, "Columns": columns}}
    else:
        physical = {"RelationalTable": {"DataSourceArn": arn, "Catalog": "AwsDataCatalog", "Schema": "awskrug",
                                        "Name": spec.table, "InputColumns": columns}}
    return {"DataSet": {"DataSetId": spec.dataset_id("maskcam"), "ImportMode": mode,
                        "PhysicalTableMap": {spec.key: physical}}, "Status": 200}


def stubbed():
    client = boto3.client("quicksight", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_datasets_as_deployed_pass():
    client, stub = stubbed()
    for spec in datasets.all_datasets("awskrug"):
        stub.add_response("describe_data_set", described(spec),
                          {"AwsAccountId": ACCOUNT, "DataSetId": spec.dataset_id("maskcam")})
    with stub:
        assert check_dashboard.check_data_sets(client, ACCOUNT, project="maskcam", database="awskrug",
                                               import_mode="SPICE") == []
    stub.assert_no_pending_responses()


def test_missing_dataset_wrong_mode_and_wrong_columns_are_each_named():
    compliance, wifi, _ = datasets.all_datasets("awskrug")
    client, stub = stubbed()
    stub.add_client_error("describe_data_set", "ResourceNotFoundException", "not found", 404)
    wrong = [c if c[0] != "latitude" else ("latitude", "STRING") for c in wifi.columns]
    stub.add_response("describe_data_set", described(wifi, mode="DIRECT_QUERY", columns=wrong))
    stub.add_response("describe_data_set", described(datasets.device_silence("awskrug"), mode="SPICE"))
    with stub:
        problems = check_dashboard.check_data_sets(client, ACCOUNT, project="maskcam", database="awskrug",
                                                   import_mode="SPICE")
    assert problems == [
        "QuickSight dataset maskcam-mask-compliance-hourly does not exist",
        "dataset maskcam-free-wifi imports DIRECT_QUERY, expected SPICE",
        "dataset maskcam-free-wifi columns differ: missing [('latitude', 'DECIMAL')], extra [('latitude', 'STRING')]",
        "dataset maskcam-device-silence imports SPICE, expected DIRECT_QUERY",
    ]


SHEETS = [{"SheetId": s.id, "Name": s.title} for s in chart_spec.sheets()]


def test_a_successful_analysis_and_dashboard_with_the_spec_sheets_pass():
    client, stub = stubbed()
    stub.add_response("describe_analysis", {"Analysis": {"AnalysisId": "maskcam-analysis",
                                                         "Status": "CREATION_SUCCESSFUL", "Sheets": SHEETS}},
                      {"AwsAccountId": ACCOUNT, "AnalysisId": "maskcam-analysis"})
    stub.add_response("describe_dashboard", {"Dashboard": {"DashboardId": "maskcam-dashboard", "Version": {
        "Status": "UPDATE_SUCCESSFUL", "Sheets": SHEETS, "VersionNumber": 2}}},
                      {"AwsAccountId": ACCOUNT, "DashboardId": "maskcam-dashboard"})
    with stub:
        assert check_dashboard.check_analysis_and_dashboard(client, ACCOUNT, project="maskcam") == []


def test_quicksights_own_errors_a_failed_version_and_a_missing_analysis_are_named():
    client, stub = stubbed()
    stub.add_client_error("describe_analysis", "ResourceNotFoundException", "not found", 404)
    stub.add_response("describe_dashboard", {"Dashboard": {"DashboardId": "maskcam-dashboard", "Version": {
        "Status": "CREATION_FAILED", "Sheets": SHEETS[:1],
        "Errors": [{"Type": "COLUMN_TYPE_MISMATCH", "Message": "minutes_silent is not numeric"}]}}})
    with stub:
        problems = check_dashboard.check_analysis_and_dashboard(client, ACCOUNT, project="maskcam")
    assert problems == [
        "QuickSight analysis maskcam-analysis does not exist",
        "dashboard maskcam-dashboard is CREATION_FAILED",
        "dashboard maskcam-dashboard reports COLUMN_TYPE_MISMATCH: minutes_silent is not numeric",
        "dashboard maskcam-dashboard has sheets ['free-wifi'], the chart spec ['free-wifi', 'cameras']",
    ]
