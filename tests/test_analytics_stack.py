"""CDK assertions for <project>-analytics: IoT rules, Firehose conversion/partitioning, Glue table, named queries,
the deploy-time views resource and its handler's IAM."""
import json

import pytest
from aws_cdk.assertions import Match, Template

from functions.analytics import datasets, layout, queries
from maskcam import schema
from infra.constructs.inference_delivery import PARTITION_JQ
from infra.constructs.inference_rules import rule_sql

STACK = "maskcam-analytics"


@pytest.fixture(scope="module")
def analytics(templates):
    return templates[STACK]


def resources(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_one_rule_per_inference_topic_with_device_id_from_the_topic_and_ingest_time(analytics):
    rules = {r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]
             for r in resources(analytics, "AWS::IoT::TopicRule").values()}
    assert set(rules) == {"maskcam_inference_deeplens", "maskcam_inference_devices"}
    deeplens, devices = rules["maskcam_inference_deeplens"], rules["maskcam_inference_devices"]
    assert deeplens["Sql"].endswith("FROM '$aws/things/+/infer'")
    assert devices["Sql"].endswith("FROM 'maskcam/+/infer'")
    assert ", topic(3) AS device_id," in deeplens["Sql"]
    assert ", topic(2) AS device_id," in devices["Sql"]
    for payload in rules.values():
        assert payload["AwsIotSqlVersion"] == "2016-03-23"
        assert "timestamp() AS ingest_ts" in payload["Sql"] and "topic() AS source_topic" in payload["Sql"]
        selected = payload["Sql"][len("SELECT "):payload["Sql"].index(" FROM ")]
        for name in schema.COLUMN_NAMES:
            assert name in selected
        (action,) = payload["Actions"]
        assert (action["Firehose"]["BatchMode"], action["Firehose"]["Separator"]) == (False, "\n")
        assert payload["ErrorAction"]["S3"]["Key"].startswith(layout.IOT_ERRORS_PREFIX)


def test_rule_sql_needs_a_device_level():
    with pytest.raises(ValueError, match="no '\\+' level"):
        rule_sql("maskcam/infer")


def test_firehose_converts_to_parquet_against_the_glue_table_and_partitions_by_event_day(analytics):
    (stream,) = resources(analytics, "AWS::KinesisFirehose::DeliveryStream").values()
    props = stream["Properties"]
    assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    dest = props["ExtendedS3DestinationConfiguration"]
    conversion = dest["DataFormatConversionConfiguration"]
    assert conversion["Enabled"] is True
    assert conversion["OutputFormatConfiguration"] == {"Serializer": {"ParquetSerDe": {}}}
    assert "OpenXJsonSerDe" in conversion["InputFormatConfiguration"]["Deserializer"]
    (table_id,) = resources(analytics, "AWS::Glue::Table")
    assert conversion["SchemaConfiguration"]["TableName"] == {"Ref": table_id}
    assert dest["BufferingHints"]["SizeInMBs"] >= 64
    assert dest["Prefix"] == "inference/dt=!{partitionKeyFromQuery:dt}/"
    assert dest["ErrorOutputPrefix"].startswith(layout.FIREHOSE_ERRORS_PREFIX + "!{firehose:error-output-type}/")
    assert dest["DynamicPartitioningConfiguration"] == {"Enabled": True}
    (processor,) = dest["ProcessingConfiguration"]["Processors"]
    query = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}["MetadataExtractionQuery"]
    assert query == '{"dt":%s}' % PARTITION_JQ


def test_glue_table_columns_are_the_schema_plus_ingest_columns_with_partition_projection(analytics):
    (table,) = resources(analytics, "AWS::Glue::Table").values()
    table_input = table["Properties"]["TableInput"]
    columns = [(c["Name"], c["Type"]) for c in table_input["StorageDescriptor"]["Columns"]]
    assert columns == [(n, t) for n, t, _ in schema.COLUMNS] + [(n, t) for n, t, _ in layout.INGEST_COLUMNS]
    assert [(k["Name"], k["Type"]) for k in table_input["PartitionKeys"]] == [("dt", "string")]
    params = table_input["Parameters"]
    assert params["projection.enabled"] == "true"
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == layout.PARTITION_FORMAT
    assert params["projection.dt.range"] == ",".join(layout.PROJECTION_RANGE)
    assert (params["projection.dt.interval"], params["projection.dt.interval.unit"]) == ("1", "DAYS")
    template = json.dumps(params["storage.location.template"])
    assert "/inference/dt=${dt}/" in template
    assert table_input["TableType"] == "EXTERNAL_TABLE"
    assert "ParquetHiveSerDe" in table_input["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]


def test_no_crawler_and_no_partition_resources(analytics):
    assert not resources(analytics, "AWS::Glue::Crawler")
    assert not resources(analytics, "AWS::Glue::Partition")


def test_every_select_file_is_a_named_query_in_the_project_workgroup(analytics):
    named = {r["Properties"]["Name"]: r["Properties"] for r in resources(analytics, "AWS::Athena::NamedQuery").values()}
    files = {q.name: q for q in queries.load(queries.QUERIES_DIR) if not q.is_view}
    assert set(named) == set(files) >= {"mask_compliance_by_device_hour", "unmasked_by_day", "busiest_hours",
                                        "silent_devices"}
    for name, props in named.items():
        assert props["Database"] == "awskrug"
        assert props["QueryString"] == files[name].render("awskrug")
        assert "${" not in props["QueryString"]
        assert "Fn::GetStackOutput" in props["WorkGroup"]  # the storage stack's workgroup (Ref = its name)


def views_resource(analytics):
    ((logical_id, resource),) = resources(analytics, "Custom::AthenaViews").items()
    return logical_id, resource


def test_views_are_created_at_deploy_time_after_the_table_from_the_view_files(analytics):
    _, resource = views_resource(analytics)
    props = resource["Properties"]
    (table_id,) = resources(analytics, "AWS::Glue::Table")
    assert table_id in resource["DependsOn"]
    assert (props["WorkGroup"], props["Database"]) == ("maskcam-analytics", "awskrug")
    files = [q for q in queries.load(queries.QUERIES_DIR) if q.is_view]
    assert props["Views"] == [{"Name": datasets.view_name(q), "Ddl": datasets.view_ddl(q, "awskrug")} for q in files]
    assert [v["Name"] for v in props["Views"]] == ["device_last_heartbeat", "mask_compliance_hourly"]
    # the provider framework's function is the service token; it invokes the Python handler
    token = props["ServiceToken"]["Fn::GetAtt"][0]
    framework = analytics["Resources"][token]["Properties"]
    handler_id = framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]["Fn::GetAtt"][0]
    handler = analytics["Resources"][handler_id]["Properties"]
    assert handler["Handler"] == "functions.athena_views.handler.on_event"
    assert handler["Runtime"].startswith("python3.")
    assert handler["Timeout"] == 300
    assert framework["Timeout"] > handler["Timeout"]


def _statements(analytics, role_id):
    (policy,) = [p["Properties"] for p in resources(analytics, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    return {s.get("Sid", s["Action"] if isinstance(s["Action"], str) else s["Action"][0]): s
            for s in policy["PolicyDocument"]["Statement"]}


def _tail(value):
    return json.dumps(value).rsplit(":", 1)[-1].rstrip('"]}')


def test_views_handler_role_is_least_privilege(analytics):
    handler = next(r["Properties"] for r in resources(analytics, "AWS::Lambda::Function").values()
                   if r["Properties"].get("Handler") == "functions.athena_views.handler.on_event")
    by_sid = _statements(analytics, handler["Role"]["Fn::GetAtt"][0])
    results = "s3:AbortMultipartUpload"   # the workgroup's grant_query_results: no Sids, keyed by first action
    assert set(by_sid) == {"logs:CreateLogStream", "RunInWorkGroup", "ManageViews", "ReadViewSource", results,
                           "s3:ListBucket", "s3:GetBucketLocation"}
    assert by_sid["logs:CreateLogStream"]["Resource"] == {"Fn::GetAtt": [handler["LoggingConfig"]["LogGroup"]["Ref"],
                                                                          "Arn"]}
    assert sorted(by_sid["RunInWorkGroup"]["Action"]) == ["athena:GetQueryExecution", "athena:StartQueryExecution"]
    assert _tail(by_sid["RunInWorkGroup"]["Resource"]) == "workgroup/maskcam-analytics"
    assert sorted(by_sid["ManageViews"]["Action"]) == ["glue:CreateTable", "glue:DeleteTable", "glue:GetDatabase",
                                                       "glue:GetTable", "glue:UpdateTable"]
    assert sorted(_tail(r) for r in by_sid["ManageViews"]["Resource"]) == [
        "catalog", "database/awskrug", "table/awskrug/device_last_heartbeat", "table/awskrug/mask_compliance_hourly"]
    assert by_sid["ReadViewSource"]["Action"] == "glue:GetTable"
    assert _tail(by_sid["ReadViewSource"]["Resource"]) == f"table/awskrug/{layout.TABLE}"
    assert sorted(by_sid[results]["Action"]) == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    assert json.dumps(by_sid[results]["Resource"]).endswith('"/athena-results/*"]]}')
    assert by_sid["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": ["athena-results/*"]}}
    assert "Fn::GetStackOutput" in by_sid["s3:GetBucketLocation"]["Resource"]   # the data bucket itself, no objects


def test_provider_framework_role_has_no_managed_policy_and_invokes_only_the_handler(analytics):
    logical_id, resource = views_resource(analytics)
    framework = analytics["Resources"][resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]]["Properties"]
    role_id = framework["Role"]["Fn::GetAtt"][0]
    assert "ManagedPolicyArns" not in analytics["Resources"][role_id]["Properties"]
    by_sid = _statements(analytics, role_id)
    handler_id = framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]["Fn::GetAtt"][0]
    assert by_sid["lambda:InvokeFunction"]["Resource"] == [
        {"Fn::GetAtt": [handler_id, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [handler_id, "Arn"]}, ":*"]]}]
    assert by_sid["logs:CreateLogStream"]["Resource"] == {"Fn::GetAtt": [framework["LoggingConfig"]["LogGroup"]["Ref"],
                                                                          "Arn"]}


def test_workgroup_enforces_encrypted_results_and_the_scan_cutoff(templates):
    Template.from_json(templates["maskcam-storage"]).has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": "maskcam-analytics",
        "WorkGroupConfiguration": Match.object_like({
            "EnforceWorkGroupConfiguration": True,
            "BytesScannedCutoffPerQuery": 1024 * 1024 * 1024,
            "PublishCloudWatchMetricsEnabled": True,
            "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
            "ResultConfiguration": Match.object_like({"EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}}),
        }),
    })


def test_data_bucket_expires_rejected_events_and_query_results(templates):
    buckets = resources(templates["maskcam-storage"], "AWS::S3::Bucket").values()
    rules = [r for b in buckets for r in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])]
    by_prefix = {r.get("Prefix"): r for r in rules if "ExpirationInDays" in r}
    assert by_prefix[layout.ERRORS_PREFIX]["ExpirationInDays"] == 90
    assert by_prefix["athena-results/"]["ExpirationInDays"] == 30


def test_iam_policies_name_their_resources(analytics):
    for policy in resources(analytics, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Resource"] != "*", statement
