"""CDK assertions on the cloud classifier wiring in <project>-device: the EventBridge rule on frames/ of the data
bucket, exact permissions, reserved concurrency (setting), the dead-letter queue, the dependency layer."""
import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from infra.constructs.edge_code import CLOUD_PRUNE
from infra.constructs.python_function import ROOT, prune_tree
from infra.settings import Settings, SettingsError
from tests.cfn_lint import lint_errors
from tests.conftest import synth_project


@pytest.fixture(scope="module")
def device(templates):
    return templates["maskcam-device"]


@pytest.fixture(scope="module")
def storage(templates):
    return templates["maskcam-storage"]


def one(template, kind):
    found = [(k, r) for k, r in template["Resources"].items() if r["Type"] == kind]
    assert len(found) == 1, (kind, [k for k, _ in found])
    return found[0]


def storage_value(storage, value):
    """A weak cross-stack reference (Fn::GetStackOutput) -> what the storage stack exports under that name."""
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:
        ref = value["Fn::GetStackOutput"]
        assert ref["StackName"] == "maskcam-storage"
        return storage["Outputs"][ref["OutputName"]]["Value"]
    return value


def data_bucket(storage, attribute):
    logical = next(k for k, r in storage["Resources"].items()
                   if r["Type"] == "AWS::S3::Bucket" and k.startswith("DataBucket"))
    return {"Fn::GetAtt": [logical, attribute]} if attribute != "Ref" else {"Ref": logical}


def statements(device):
    policy = next(r for r in device["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                  and "DeepLensRole" in json.dumps(r["Properties"]["Roles"]))
    return policy["Properties"]["PolicyDocument"]["Statement"]


def actions_of(statement):
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_rule_sends_frames_uploads_of_the_data_bucket_to_the_function_with_a_dlq(device, storage):
    _, rule = one(device, "AWS::Events::Rule")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "frames/"}]}
    bucket_name, = pattern["detail"]["bucket"]["name"]
    assert storage_value(storage, bucket_name) == data_bucket(storage, "Ref")
    target, = rule["Properties"]["Targets"]
    function_id, _ = one(device, "AWS::Lambda::Function")
    queue_id, _ = one(device, "AWS::SQS::Queue")
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600}
    rule_id, _ = one(device, "AWS::Events::Rule")
    Template.from_json(device).has_resource_properties("AWS::Lambda::Permission", {
        "Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com",
        "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]}, "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}})
    # no S3 notification from the storage stack (that would be a cross-stack cycle): EventBridge delivery only
    notification = storage["Resources"][data_bucket(storage, "Ref")["Ref"]]["Properties"]["NotificationConfiguration"]
    assert notification == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_failed_invocations_go_to_an_encrypted_tls_only_queue(device):
    queue_id, queue = one(device, "AWS::SQS::Queue")
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    _, config = one(device, "AWS::Lambda::EventInvokeConfig")
    assert config["Properties"]["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id,
                                                                                                       "Arn"]}}}
    assert config["Properties"]["MaximumRetryAttempts"] == 2
    _, policy = one(device, "AWS::SQS::QueuePolicy")
    deny = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_role_reads_only_frames_writes_only_error_records_and_publishes_only_inference_topics(device, storage):
    data_arn = data_bucket(storage, "Arn")
    by_action = {}
    for s in statements(device):
        assert s["Effect"] == "Allow"
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for action in actions_of(s):
            by_action.setdefault(action, []).append((resources, s.get("Condition")))

    def object_arn(resource):
        parts = resource["Fn::Join"][1]
        return [storage_value(storage, p) for p in parts]

    data_objects = {(action, object_arn(r)[1]) for action, entries in by_action.items() if action.startswith("s3:")
                    for rs, _ in entries for r in rs if "Fn::Join" in r and object_arn(r)[0] == data_arn}
    assert data_objects == {("s3:GetObject", "/frames/*"), ("s3:GetObjectVersion", "/frames/*"),
                            ("s3:PutObject", "/errors/frames/*"), ("s3:GetObject", "/errors/frames/.outcomes/*")}
    list_data = [(rs, c) for rs, c in by_action["s3:ListBucket"] if storage_value(storage, rs[0]) == data_arn]
    assert list_data == [([list_data[0][0][0]], {"StringLike": {"s3:prefix": ["frames/*",
                                                                              "errors/frames/.outcomes/*"]}})]
    model_get = [rs for rs, _ in by_action["s3:GetObject"] if "models/" in json.dumps(rs)]
    assert len(model_get) == 1 and '"/models/mask-classifier/1/*"]]}' in json.dumps(model_get[0])
    (topics, _), = by_action["iot:Publish"]
    assert sorted(t["Fn::Join"][1][-1] for t in topics) == [":topic/$aws/things/*/infer", ":topic/maskcam/*/infer"]
    queue_id, _ = one(device, "AWS::SQS::Queue")
    assert by_action["sqs:SendMessage"] == [([{"Fn::GetAtt": [queue_id, "Arn"]}], None)]
    assert not [a for a in by_action if a.startswith("s3:Delete") or a.endswith("*")]


def test_function_configuration_layer_and_reserved_concurrency(device):
    layer_id, layer = one(device, "AWS::Lambda::LayerVersion")
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    Template.from_json(device).has_resource_properties("AWS::Lambda::Function", {
        "Handler": "greengrassHelloWorld.function_handler",
        "Layers": [{"Ref": layer_id}],
        "ReservedConcurrentExecutions": Match.absent(),   # unreserved unless set (tests/aws_rules)
        "Environment": {"Variables": {
            "MASKCAM_CLOUD_MODEL_BUCKET": {"Fn::Join": ["", ["deeplens-maskcam-models-", {"Ref": "AWS::AccountId"},
                                                             "-", {"Ref": "AWS::Region"}]]},
            "MASKCAM_CLOUD_MODEL_PREFIX": "models/mask-classifier/1/",
            "MASKCAM_CLOUD_TOPIC": "maskcam/+/infer",
            "MASKCAM_CLOUD_FRAMES_PREFIX": "frames/",
            "MASKCAM_CLOUD_ERRORS_PREFIX": "errors/frames/"}},
        "Timeout": Match.any_value()})


def test_settings_change_concurrency_topic_and_model_and_stay_nag_and_lint_clean(tmp_path):
    _, assembly = synth_project(tmp_path, cloud_reserved_concurrency="12", inference_topic="cams/+/events",
                                model_version="7")  # gates on
    template = assembly.get_stack_by_name("maskcam-device").template
    _, function = one(template, "AWS::Lambda::Function")
    props = function["Properties"]
    assert props["ReservedConcurrentExecutions"] == 12
    assert props["Environment"]["Variables"]["MASKCAM_CLOUD_TOPIC"] == "cams/+/events"
    assert props["Environment"]["Variables"]["MASKCAM_CLOUD_MODEL_PREFIX"] == "models/mask-classifier/7/"
    assert lint_errors(template) == []


def test_an_older_runtime_setting_synthesizes_with_the_gates_on(tmp_path):
    """Every function and the layer follow lambda_runtime; nag's L1 (not the newest runtime) is acknowledged once
    per function because the setting chose it."""
    stacks, _ = synth_project(tmp_path, lambda_runtime="python3.13")  # gates on: raises on any finding
    Template.from_stack(stacks.wifi).has_resource_properties("AWS::Lambda::Function", {"Runtime": "python3.13"})
    template = Template.from_stack(stacks.device)
    template.has_resource_properties("AWS::Lambda::LayerVersion", {"CompatibleRuntimes": ["python3.13"]})
    template.has_resource_properties("AWS::Lambda::Function", {"Runtime": "python3.13"})


@pytest.mark.parametrize("raw", ["0", "1001", "-3", "five"])
def test_reserved_concurrency_setting_rejects_bad_values(raw):
    with pytest.raises(SettingsError, match="cloud_reserved_concurrency"):
        Settings.from_mapping({"cloud_reserved_concurrency": raw})
    assert Settings.from_mapping({"cloud_reserved_concurrency": "40"}).cloud_reserved_concurrency == 40
    assert Settings().cloud_reserved_concurrency is None


def test_prune_removes_matches_and_refuses_a_pattern_that_matches_nothing(tmp_path):
    (tmp_path / "cv2/data").mkdir(parents=True)
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml", "haarcascade_fullbody.xml"):
        (tmp_path / "cv2/data" / name).write_text("x")
    (tmp_path / "numpy/_core/tests").mkdir(parents=True)
    prune_tree(tmp_path, ["cv2/data/haarcascade_*eye*.xml", "cv2/data/haarcascade_*body.xml", "numpy/**/tests"])
    assert sorted(p.name for p in (tmp_path / "cv2/data").iterdir()) == ["haarcascade_frontalface_default.xml"]
    assert not (tmp_path / "numpy/_core/tests").exists()
    with pytest.raises(FileNotFoundError, match="'onnxruntime/tools' matches nothing"):
        prune_tree(tmp_path, ["onnxruntime/tools"])
    assert not any("frontalface_default" in p for p in CLOUD_PRUNE)  # the detector's cascade stays
    assert Path(ROOT / "functions/cloud_classifier_layer/requirements.txt").is_file()
