from aws_cdk.assertions import Match, Template


def storage(project) -> Template:
    return Template.from_stack(project.stacks.storage)


def test_every_bucket_is_encrypted_private_and_retained(project):
    template = storage(project)
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}, logical_id
        assert bucket["DeletionPolicy"] == "Retain", logical_id


def test_every_bucket_denies_plain_http(project):
    template = storage(project)
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_model_bucket_name_starts_with_deeplens(project):
    template = storage(project)
    template.has_resource_properties("AWS::S3::Bucket", {
        "BucketName": {"Fn::Join": ["", Match.array_with(["deeplens-maskcam-models-"])]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": Match.object_like({"LogFilePrefix": "modelbucket/"}),
    })


def test_glue_database_is_awskrug(project):
    storage(project).has_resource_properties("AWS::Glue::Database", {
        "DatabaseInput": Match.object_like({"Name": "awskrug"}),
    })


def test_athena_workgroup_enforces_encrypted_results_cutoff_and_engine_v3(project):
    storage(project).has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": "maskcam-analytics",
        "WorkGroupConfiguration": Match.object_like({
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": 1024 * 1024 * 1024,
            "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
            "ResultConfiguration": Match.object_like({
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            }),
        }),
    })


def test_settings_flow_into_the_stack(tmp_path):
    from tests.conftest import synth_project

    stacks, _ = synth_project(tmp_path, glue_database="maskdb", athena_bytes_scanned_cutoff_mb="100",
                              project="lobby")
    template = Template.from_stack(stacks.storage)
    template.has_resource_properties("AWS::Glue::Database", {"DatabaseInput": Match.object_like({"Name": "maskdb"})})
    template.has_resource_properties("AWS::Athena::WorkGroup", {
        "Name": "lobby-analytics",
        "WorkGroupConfiguration": Match.object_like({"BytesScannedCutoffPerQuery": 100 * 1024 * 1024})})
    assert stacks.storage.stack_name == "lobby-storage"
    assert stacks.storage.region == "us-east-1"


def test_old_versions_of_raw_uploads_never_expire(templates):
    """raw/ is the only copy of what people uploaded: no lifecycle rule may expire any version under it, while every
    prefix the system writes has its old versions expire."""
    from functions.wifi_ingest.layout import RAW_PREFIX
    from infra.stacks.storage_stack import ATHENA_RESULTS_PREFIX, DERIVED_PREFIXES

    buckets = [r for r in templates["maskcam-storage"]["Resources"].values() if r["Type"] == "AWS::S3::Bucket"]
    data = next(b for b in buckets if any(rule.get("Prefix") == ATHENA_RESULTS_PREFIX
                                          for rule in b["Properties"].get("LifecycleConfiguration", {})
                                          .get("Rules", [])))
    rules = data["Properties"]["LifecycleConfiguration"]["Rules"]
    covering_raw = [r for r in rules if RAW_PREFIX.startswith(r.get("Prefix", ""))]
    assert covering_raw == [], covering_raw
    assert {r["Prefix"] for r in rules if "NoncurrentVersionExpiration" in r} == set(DERIVED_PREFIXES)
