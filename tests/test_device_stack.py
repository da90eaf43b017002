"""CDK assertions on <project>-device: the deeplens_lambda role, the Lambda (handler, name, runtime, version, alias),
the Greengrass V2 component recipe, device identity, and the deployment with and without a thing group."""
import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra.constructs.edge_code import EDGE_DIR, EDGE_EXCLUDES
from infra.settings import Settings, SettingsError
from infra.stacks.device_stack import component_skip_message
from tests.cfn_lint import lint_errors


@pytest.fixture(scope="module")
def device(templates):
    return templates["maskcam-device"]


def resources(template, kind):
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def flatten(value):
    """An Fn::Join'ed string with its tokens shown as <token>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(flatten(v) for v in value["Fn::Join"][1])
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return "<token>"


def recipe_of(template):
    component, = resources(template, "AWS::GreengrassV2::ComponentVersion")
    return json.loads(flatten(component["Properties"]["InlineRecipe"]))


def test_role_is_deeplens_lambda_with_least_privilege(device):
    t = Template.from_json(device)
    t.has_resource_properties("AWS::IAM::Role", {
        "RoleName": "deeplens_lambda",
        "AssumeRolePolicyDocument": {"Statement": [Match.object_like(
            {"Principal": {"Service": "lambda.amazonaws.com"}})]}})
    role = next(r for r in resources(device, "AWS::IAM::Role") if r["Properties"].get("RoleName") == "deeplens_lambda")
    assert "ManagedPolicyArns" not in role["Properties"]  # no AWSLambdaFullAccess or any managed policy
    policy = next(p for p in resources(device, "AWS::IAM::Policy")
                  if "DeepLens" in json.dumps(p["Properties"]["Roles"]))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket", "iot:Publish", "logs:CreateLogStream", "logs:PutLogEvents",
                       # the cloud classifier (tests/test_cloud_classifier_stack.py): frames/, errors/frames/, DLQ
                       "s3:GetObjectVersion", "s3:PutObject", "sqs:SendMessage", "sqs:GetQueueAttributes",
                       "sqs:GetQueueUrl"}
    publish, = [s for s in statements if s["Action"] == "iot:Publish"]
    topics = sorted(flatten(r) for r in publish["Resource"])
    assert topics == ["arn:aws:iot:us-east-1:<token>:topic/$aws/things/*/infer",
                      "arn:aws:iot:us-east-1:<token>:topic/maskcam/*/infer"]
    get, = [s for s in statements if s["Action"] == "s3:GetObject" and "models" in json.dumps(s["Resource"])]
    model = [r for r in get["Resource"] if "ModelBucket" in json.dumps(r)]   # the storage stack's model bucket
    assert [flatten(r) for r in model] == ["<token>/models/mask-classifier/1/*"]


def test_lambda_handler_name_runtime_version_and_alias(device):
    t = Template.from_json(device)
    t.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "greengrassHelloWorld.function_handler",
        "FunctionName": "deeplens-mask-classifier",
        "Runtime": "python3.13"})
    t.resource_count_is("AWS::Lambda::Version", 1)
    t.has_resource_properties("AWS::Lambda::Alias", {"Name": "live"})
    function, = resources(device, "AWS::Lambda::Function")
    assert "Ref" in function["Properties"]["LoggingConfig"]["LogGroup"]   # the stack's own group, named by CFN


def test_component_recipe_runs_the_same_application_with_code_and_model_artifacts(full_project):
    recipe = recipe_of(full_project.templates["maskcam-device"])
    assert recipe["ComponentName"] == "com.maskcam.EdgeClassifier"
    manifest, = manifest_of(recipe)
    uris = [a["Uri"] for a in manifest["Artifacts"]]
    assert len(uris) == 2 and all(a["Unarchive"] == "ZIP" for a in manifest["Artifacts"])
    assert all(u.startswith("s3://cdk-hnb659fds-assets-${AWS::AccountId}-us-east-1/") and u.endswith(".zip")
               for u in uris)
    code_dir, model_dir = (u.rsplit("/", 1)[1][:-len(".zip")] for u in uris)
    component = full_project.stacks.device.component
    assert (code_dir, model_dir) == (component.code_asset.asset_hash, component.model_asset.asset_hash)
    run = manifest["Lifecycle"]["Run"]
    assert run.startswith("cd {artifacts:decompressedPath}/%s && exec {work:path}/venv/bin/python -u -m maskcam "
                          % code_dir)
    for flag in ("--model {artifacts:decompressedPath}/%s " % model_dir, "--publisher ipc",
                 "--topic 'maskcam/{iot:thingName}/infer'"):
        assert flag in run
    install = manifest["Lifecycle"]["Install"]["Script"]
    assert "python3 -m venv {work:path}/venv" in install and "python3-venv" in install
    assert "{work:path}/venv/bin/python -m pip install" in install and "requirements.txt" in install
    acl = recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]["aws.greengrass.ipc.mqttproxy"]
    policy, = acl.values()
    assert policy["operations"] == ["aws.greengrass#PublishToIoTCore"] and policy["resources"] == ["maskcam/*/infer"]


def manifest_of(recipe):
    return recipe["Manifests"]


def test_the_model_artifact_holds_only_what_the_device_loads(full_project, placeholder_export):
    assert (placeholder_export / "mask-classifier-0000.params").exists()   # MXNet files: DeepLens only
    model_hash = full_project.stacks.device.component.model_asset.asset_hash
    asset_dir = Path(full_project.assembly.directory) / f"asset.{model_hash}"
    assert sorted(p.name for p in asset_dir.iterdir()) == ["manifest.json", "mask-classifier.onnx"]


def device_code_files(directory: Path) -> list:
    """What of the device application is deployed: its Python files and the core's requirements.txt."""
    candidates = [*directory.glob("*.py"), *(directory / "maskcam").rglob("*.py"), directory / "requirements.txt"]
    files = [p for p in candidates if "__pycache__" not in p.parts]
    return sorted(p.relative_to(directory).as_posix() for p in files)


def test_the_code_artifact_and_the_lambda_hold_only_the_device_code(full_project):
    """Not the packaging (pyproject.toml, maskcam.egg-info that `pip install -e` leaves), ruff.toml or caches: the
    Greengrass component's code artifact and the DeepLens Lambda's code are the same asset of the same files."""
    code_hash = full_project.stacks.device.component.code_asset.asset_hash
    asset_dir = Path(full_project.assembly.directory) / f"asset.{code_hash}"
    deployed = sorted(p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file())
    assert deployed == device_code_files(EDGE_DIR)
    assert "maskcam/faces.py" in deployed and "greengrassHelloWorld.py" in deployed
    function, = resources(full_project.templates["maskcam-device"], "AWS::Lambda::Function")
    assert function["Properties"]["Code"]["S3Key"] == f"{code_hash}.zip"


def test_build_and_lint_leftovers_do_not_change_the_code_asset_hash(tmp_path):
    """The asset hash (and so the component's content-derived version) depends on the code only: what `pip install
    -e` / a wheel build, the linters and a test run leave in functions/edge are excluded; a code change is not."""
    copy = tmp_path / "edge"
    shutil.copytree(EDGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))

    def fingerprint():
        return cdk.FileSystem.fingerprint(str(copy), exclude=EDGE_EXCLUDES)

    before = fingerprint()
    leftovers = ["maskcam.egg-info/PKG-INFO", "build/lib/maskcam/schema.py", "dist/maskcam-0.1.0-py3-none-any.whl",
                 ".ruff_cache/0.17.6/123", "maskcam/.ruff_cache/x", ".mypy_cache/3.11/x.json", ".pytest_cache/v/x",
                 "maskcam/__pycache__/faces.cpython-311.pyc", "maskcam/adapters/__pycache__/aws.cpython-37.pyc"]
    for name in leftovers:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(b"left over")
    (copy / "pyproject.toml").write_text((copy / "pyproject.toml").read_text() + "\n# edited\n")
    (copy / "ruff.toml").write_text((copy / "ruff.toml").read_text() + "\n# edited\n")
    assert fingerprint() == before
    schema = copy / "maskcam" / "schema.py"
    schema.write_text(schema.read_text() + "\n# a code change\n")
    assert fingerprint() != before


def test_no_component_without_a_model_export(device, templates):
    assert resources(device, "AWS::GreengrassV2::ComponentVersion") == []
    assert "model_export" in component_skip_message(Settings())
    assert component_skip_message(Settings(model_export="/x")) is None


def test_the_export_must_be_a_real_export_matching_the_model_settings(tmp_path, placeholder_export):
    with pytest.raises(SettingsError, match="model_export.*no manifest.json"):
        Settings.from_mapping({"model_export": str(tmp_path)})
    with pytest.raises(SettingsError, match="set -c model_version=1"):
        Settings.from_mapping({"model_export": str(placeholder_export), "model_version": "2"})
    with pytest.raises(SettingsError, match="greengrass_thing_group.*model_export"):
        Settings.from_mapping({"greengrass_thing_group": "cams"})


def test_device_identity_limits_each_thing_to_its_own_topics(device):
    aliases = sorted(a["Properties"]["RoleAlias"] for a in resources(device, "AWS::IoT::RoleAlias"))
    assert aliases == ["maskcam-frame-uploader", "maskcam-greengrass-tes"]
    roles = [r for r in resources(device, "AWS::IAM::Role")
             if "credentials.iot.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]
    assert len(roles) == 2
    policy = next(p for p in resources(device, "AWS::IoT::Policy")
                  if p["Properties"]["PolicyName"] == "maskcam-greengrass-core")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    publish = next(s for s in statements if "iot:Publish" in s["Action"])
    topics = [flatten(r) for r in publish["Resource"]]
    assert all("${iot:Connection.Thing.ThingName}" in t for t in topics)
    assert any(t.endswith(":topic/maskcam/${iot:Connection.Thing.ThingName}/infer") for t in topics)
    connect = next(s for s in statements if s["Action"] == "iot:Connect")
    assert [flatten(r).rsplit(":client/", 1)[1] for r in connect["Resource"]] == \
        ["${iot:Connection.Thing.ThingName}", "${iot:Connection.Thing.ThingName}#*"]


def test_no_deployment_without_a_thing_group(device):
    assert resources(device, "AWS::GreengrassV2::Deployment") == []


def test_deployment_to_the_thing_group_when_set(full_project):
    template = full_project.templates["maskcam-device"]
    deployment, = resources(template, "AWS::GreengrassV2::Deployment")
    props = deployment["Properties"]
    assert flatten(props["TargetArn"]).endswith(":thinggroup/lobby-cameras")
    assert list(props["Components"]) == ["com.maskcam.EdgeClassifier"]
    assert props["DeploymentPolicies"]["FailureHandlingPolicy"] == "ROLLBACK"
    assert lint_errors(template) == []
    assert full_project.stacks.device.component.deployment is not None


def test_device_settings_are_validated():
    settings = Settings.from_mapping({"model_name": "masks", "model_version": "2025-01"})
    assert settings.model_prefix == "models/masks/2025-01/"
    for key, value in (("model_name", "Bad Name"),
                       ("greengrass_component_name", "-x")):
        with pytest.raises(SettingsError, match=key):
            Settings.from_mapping({key: value})


def test_cameras_may_upload_frames_only_under_their_own_thing_name(device):
    uploader = next(p for p in resources(device, "AWS::IoT::Policy")
                    if p["Properties"]["PolicyName"] == "maskcam-frame-uploader")
    statement, = uploader["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "iot:AssumeRoleWithCertificate"
    assert flatten(statement["Resource"]).endswith(":rolealias/maskcam-frame-uploader")
    put = [s for p in resources(device, "AWS::IAM::Policy") for s in p["Properties"]["PolicyDocument"]["Statement"]
           if "FrameUploaders" in json.dumps(p["Properties"]["Roles"])]
    assert [(s["Action"], flatten(s["Resource"]).split("/", 1)[1]) for s in put] == \
        [("s3:PutObject", "frames/${credentials-iot:ThingName}/*")]
