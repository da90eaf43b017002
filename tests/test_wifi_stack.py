"""The Wi-Fi stack: Glue table per the seed DDL, ingest Lambda and its trigger, least privilege, named queries."""
from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from functions.analytics import queries
from functions.wifi_ingest.layout import QUERIES_DIR
from infra.constructs.python_function import _LocalPipBundling, pip_install_command, python_version, ROOT
from tests.conftest import make_app

SEED_DDL = [("name", "string"), ("detail", "string"), ("city", "string"), ("gungu", "string"),
            ("facility", "string"), ("service_provider", "string"), ("wifi_ssid", "string"),
            ("installed_at", "date"), ("road_name_address", "string"), ("parcel_address", "string"),
            ("management_agency", "string"), ("management_agency_phone", "string"), ("latitude", "float"),
            ("longitude", "float"), ("created_at", "date")]


def wifi(project) -> Template:
    return Template.from_stack(project.stacks.wifi)


def test_stack_is_part_of_the_app(templates):
    assert "maskcam-wifi" in templates


def test_glue_table_has_the_seed_columns_and_reads_parquet_from_the_table_prefix(project):
    tables = wifi(project).find_resources("AWS::Glue::Table")
    assert len(tables) == 1
    table = next(iter(tables.values()))["Properties"]
    descriptor = table["TableInput"]["StorageDescriptor"]
    assert table["TableInput"]["Name"] == "free_wifi_standard_data"
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == SEED_DDL
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == \
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert json.dumps(descriptor["Location"]).endswith('"/tables/free_wifi_standard_data/"]]}')


def test_function_runtime_handler_and_failure_destination(project):
    template = wifi(project)
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.13",
        "Handler": "functions.wifi_ingest.handler.handler",
        "Architectures": ["x86_64"],
        "Environment": {"Variables": Match.object_like({"TABLE_PREFIX": "tables/free_wifi_standard_data/"})},
    })
    template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}},
    })
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})


def test_trigger_is_an_eventbridge_rule_on_raw_uploads_with_a_dead_letter_queue(project):
    rules = wifi(project).find_resources("AWS::Events::Rule")
    assert len(rules) == 1
    rule = next(iter(rules.values()))["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "raw/"}]}
    assert "DeadLetterConfig" in rule["Targets"][0]
    # the storage stack turns EventBridge delivery on for the data bucket (no notification custom resource)
    storage = Template.from_stack(project.stacks.storage)
    storage.has_resource_properties("AWS::S3::Bucket", {
        "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}})
    assert not storage.find_resources("Custom::S3BucketNotifications")


def test_permissions_are_least_privilege(project):
    policies = wifi(project).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_suffix = {}
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all("*" not in a for a in actions), s
        assert not any(a.startswith("s3:Delete") for a in actions), s
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for r in resources:
            text = json.dumps(r)
            suffix = text.rsplit('"/', 1)[1].rstrip('"]}') if '"/' in text else "bucket-or-other"
            by_suffix.setdefault(suffix, set()).update(actions)
    assert by_suffix["raw/*"] == {"s3:GetObject", "s3:GetObjectVersion"}
    assert by_suffix["tables/free_wifi_standard_data/*"] == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert by_suffix["quarantine/*"] == {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    listing = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing and listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["quarantine/*"]}}
    roles = wifi(project).find_resources("AWS::IAM::Role")
    assert all("ManagedPolicyArns" not in r["Properties"] for r in roles.values())


def test_one_named_query_per_chart_in_the_project_workgroup(project):
    named = wifi(project).find_resources("AWS::Athena::NamedQuery")
    got = {q["Properties"]["Name"]: q["Properties"] for q in named.values()}
    assert set(got) == {q.name for q in queries.load(QUERIES_DIR)} == {"wifi_count_by_city",
                                                                  "wifi_count_by_service_provider"}
    for q in queries.load(QUERIES_DIR):
        props = got[q.name]
        assert props["QueryString"] == q.render("awskrug")
        assert "awskrug.free_wifi_standard_data" in props["QueryString"]
        assert props["Database"] == "awskrug"
        assert "Fn::GetStackOutput" in props["WorkGroup"]  # the storage stack's workgroup (Ref = its name)


def test_runtime_follows_the_setting(tmp_path):
    from infra.app_stacks import build_stacks
    from infra.settings import Settings
    app = make_app(tmp_path, lambda_runtime="python3.12")
    stacks = build_stacks(app, Settings.from_context(app.node.try_get_context))
    Template.from_stack(stacks.wifi).has_resource_properties("AWS::Lambda::Function", {"Runtime": "python3.12"})


def test_local_bundling_copies_the_package_with_its_import_path(tmp_path):
    from aws_cdk import aws_lambda as lambda_
    assert python_version(lambda_.Runtime.PYTHON_3_14) == "3.14"
    command = pip_install_command(ROOT / "functions/wifi_ingest/requirements.txt", "/out", "3.14")
    assert command[command.index("--python-version") + 1] == "3.14"
    assert {"--only-binary=:all:", "manylinux2014_x86_64"} <= set(command)
    bundler = _LocalPipBundling(ROOT / "functions/wifi_ingest", None, "3.14")  # no requirements: no pip run
    assert bundler.try_bundle(str(tmp_path)) is True
    assert (tmp_path / "functions/__init__.py").exists()
    assert (tmp_path / "functions/wifi_ingest/handler.py").exists()
    assert (tmp_path / "functions/wifi_ingest/queries/wifi_count_by_city.sql").exists()
    assert not list(tmp_path.rglob("__pycache__"))
