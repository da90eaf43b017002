"""`make preflight` (infra/ops/preflight.py) against moto, with hand-written cloud assemblies (and one real synth).

moto lacks lambda GetAccountSettings, QuickSight DescribeAccountSubscription / DescribeDataSet and all of Greengrass
V2: those calls are faked per test (a patched client method, or a botocore Stubber for a whole client). IoT thing
groups, IAM roles, S3 bucket encryption and KMS keys are moto's."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from infra.ops import preflight
from infra.ops.preflight import BLOCKER, OK, WARNING, Unresolved, resolve

ACCOUNT, REGION = "123456789012", "us-east-1"   # moto's default account
PRINCIPAL = f"arn:aws:quicksight:{REGION}:{ACCOUNT}:user/default/ops"
COMPONENT = "com.maskcam.EdgeClassifier"
COMPONENT_ARN = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:{COMPONENT}:versions:1.0.0"
GROUP = "maskcam-cores"
GROUP_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{GROUP}"
QS_ROLE = "aws-quicksight-service-role-v0"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ACCOUNT_REGION = ["-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}]


# --- a small, realistic cloud assembly ------------------------------------------------------------------------------

def storage_template() -> dict:
    return {"Resources": {
        "ModelBucketB33D855B": {"Type": "AWS::S3::Bucket", "Properties": {
            "BucketName": {"Fn::Join": ["", ["deeplens-maskcam-models", *ACCOUNT_REGION]]}}},
        "DataBucketE3889A50": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "DatabaseB269D8BB": {"Type": "AWS::Glue::Database", "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {"Name": "awskrug"}}},
        "WorkGroup9BE20B7A": {"Type": "AWS::Athena::WorkGroup", "Properties": {"Name": "maskcam-analytics"}},
    }, "Outputs": {"PublishOutputRefDatabaseB269D8BB9070B7F3": {"Value": {"Ref": "DatabaseB269D8BB"}}}}


def device_template(reserved: int | None = 5, thing_group: str | None = None) -> dict:
    function = {"FunctionName": "deeplens-mask-classifier", "Handler": "greengrassHelloWorld.function_handler",
                "Role": {"Fn::GetAtt": ["DeepLensRole63F76CC2", "Arn"]}, "Runtime": "python3.13"}
    if reserved is not None:
        function["ReservedConcurrentExecutions"] = reserved
    recipe = {"Fn::Join": ["", [
        ('{"RecipeFormatVersion":"2020-01-25","ComponentName":"com.maskcam.EdgeClassifier","ComponentVersion":"1.0.0",'
         '"Manifests":[{"Artifacts":[{"URI":"s3://'), {"Ref": "ModelBucket"}, '/edge/classifier.zip"}]}]}']]}
    return {"Resources": {
        "DeepLensLogsE9985AD7": {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": "/aws/lambda/deeplens-mask-classifier"}},
        "DeepLensRole63F76CC2": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "deeplens_lambda", "AssumeRolePolicyDocument": json.loads(TRUST)}},
        "DeepLensFunctionCEF3536C": {"Type": "AWS::Lambda::Function", "Properties": function},
        "GreengrassIdentityRoleAlias765403E0": {"Type": "AWS::IoT::RoleAlias", "Properties": {
            "RoleAlias": "maskcam-greengrass-tes", "RoleArn": {"Fn::GetAtt": ["TesRole", "Arn"]}}},
        "GreengrassIdentityCorePolicy05E2350F": {"Type": "AWS::IoT::Policy", "Properties": {
            "PolicyName": "maskcam-greengrass-core", "PolicyDocument": {}}},
        "EdgeClassifierComponent3BA5AF57": {"Type": "AWS::GreengrassV2::ComponentVersion", "Properties": {
            "InlineRecipe": recipe}},
        **({"EdgeClassifierDeploymentA6E50987": {"Type": "AWS::GreengrassV2::Deployment", "Properties": {
            "DeploymentName": "maskcam-edge-classifier",
            "Components": {COMPONENT: {"ComponentVersion": {
                "Fn::GetAtt": ["EdgeClassifierComponent3BA5AF57", "ComponentVersion"]}}},
            "TargetArn": {"Fn::Join": ["", [f"arn:aws:iot:{REGION}:", {"Ref": "AWS::AccountId"},
                                            f":thinggroup/{thing_group}"]]}}}} if thing_group else {}),
    }}


def analytics_template() -> dict:
    database = {"Fn::GetStackOutput": {"StackName": "maskcam-storage", "Region": REGION,
                                       "OutputName": "PublishOutputRefDatabaseB269D8BB9070B7F3"}}
    return {"Resources": {
        "InferenceTable0326A1BD": {"Type": "AWS::Glue::Table", "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseName": database,
            "TableInput": {"Name": "inference_results"}}},
        "DeliveryStreamD784C6F5": {"Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": {
            "DeliveryStreamName": {"Fn::Sub": "maskcam-inference-${AWS::Region}"}}},
        "Rulesmaskcaminferencedeeplens9A61BC0B": {"Type": "AWS::IoT::TopicRule", "Properties": {
            "RuleName": "maskcam_inference_deeplens", "TopicRulePayload": {}}},
        "ExtraLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {   # only known after deploy: a note
            "LogGroupName": {"Fn::Join": ["", ["/maskcam/", {"Fn::GetAtt": ["DeliveryStreamD784C6F5", "Arn"]}]]}}},
    }}


def dashboard_template() -> dict:
    permissions = [{"Principal": PRINCIPAL, "Actions": ["quicksight:DescribeDataSource"]}]
    return {"Resources": {
        "DataSource": {"Type": "AWS::QuickSight::DataSource", "Properties": {
            "AwsAccountId": {"Ref": "AWS::AccountId"}, "DataSourceId": "maskcam-athena", "Type": "ATHENA",
            "Permissions": permissions}},
        "DataSetHourly": {"Type": "AWS::QuickSight::DataSet", "Properties": {
            "AwsAccountId": {"Ref": "AWS::AccountId"}, "DataSetId": "maskcam-mask-compliance-hourly",
            "Permissions": permissions}},
        "ServiceRoleAccessPolicy275E6A16": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {   # imported role
            "Path": "/", "Roles": [QS_ROLE], "PolicyDocument": {"Version": "2012-10-17", "Statement": []}}},
    }}


def write_assembly(directory: Path, stacks: dict, environment: str = f"aws://unknown-account/{REGION}",
                   bootstrap_version: int = 6) -> Path:
    """A cloud assembly as `cdk synth` writes it: manifest.json with asset-manifest and stack artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, template in stacks.items():
        (directory / f"{name}.template.json").write_text(json.dumps(template))
        (directory / f"{name}.assets.json").write_text(json.dumps({"version": "55.0.0", "files": {}}))
        bootstrap = {"requiresBootstrapStackVersion": bootstrap_version,
                     "bootstrapStackVersionSsmParameter": "/cdk-bootstrap/hnb659fds/version"}
        artifacts[f"{name}.assets"] = {"type": "cdk:asset-manifest",
                                       "properties": {"file": f"{name}.assets.json", **bootstrap}}
        artifacts[name] = {"type": "aws:cloudformation:stack", "environment": environment, "properties": {
            "templateFile": f"{name}.template.json", **bootstrap,
            "lookupRole": {"arn": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-hnb659fds-lookup-role",
                           "requiresBootstrapStackVersion": 8}},
            "dependencies": [f"{name}.assets"], "displayName": name}
    (directory / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}))
    return directory


@pytest.fixture
def assembly(tmp_path) -> Path:
    return write_assembly(tmp_path / "cdk.out", {"maskcam-storage": storage_template(),
                                                 "maskcam-device": device_template(),
                                                 "maskcam-analytics": analytics_template()})


# --- AWS: moto plus per-call fakes ------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch, tmp_path):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
                       "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)


class FakeSession:
    """A boto3 session whose clients are moto's, except for replaced clients (Stubber) and patched methods."""

    def __init__(self, base: boto3.Session) -> None:
        self.base, self.region_name = base, base.region_name
        self.replaced: dict = {}   # service -> client
        self.patched: dict = {}    # (service, method) -> callable

    def client(self, service: str, region_name: str | None = None):
        if service in self.replaced:
            return self.replaced[service]
        client = self.base.client(service, region_name=region_name)
        for (svc, method), fn in self.patched.items():
            if svc == service:
                setattr(client, method, fn)
        return client

    def lambda_quota(self, quota: int, unreserved: int | None = None) -> None:
        limits = {"ConcurrentExecutions": quota, "UnreservedConcurrentExecutions": unreserved or quota}
        self.patched["lambda", "get_account_settings"] = lambda **_: {"AccountLimit": limits}

    def stub(self, service: str) -> Stubber:
        client = self.base.client(service, region_name=REGION)
        self.replaced[service] = client
        stubber = Stubber(client)
        stubber.activate()
        return stubber


def client_error(code: str, status: int = 400, operation: str = "Call"):
    def raise_(**_):
        raise ClientError({"Error": {"Code": code, "Message": code},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
    return raise_


@pytest.fixture(scope="module")
def model_loader():
    """One loader of botocore's service models for the file: each model is parsed once (0.1 s a client otherwise)."""
    return botocore.loaders.create_loader()


@pytest.fixture
def session(model_loader):
    """moto account with a 1000-execution Lambda quota; Greengrass V2 (not in moto) has no components."""
    core = botocore.session.Session()
    core.register_component("data_loader", model_loader)
    with mock_aws():
        s = FakeSession(boto3.Session(botocore_session=core, region_name=REGION))
        s.lambda_quota(1000)
        s.patched["greengrassv2", "describe_component"] = client_error("ResourceNotFoundException", 404)
        yield s


ASSET_BUCKET = f"cdk-hnb659fds-assets-{ACCOUNT}-{REGION}"


def bootstrap(session: FakeSession, version: int = 21, encryption: dict | None = None) -> None:
    """What `cdk bootstrap` leaves: the CDKToolkit stack, its version parameter and the file asset bucket (default
    encryption ``encryption``, else the template's aws:kms with the AWS managed key)."""
    session.base.client("cloudformation").create_stack(StackName="CDKToolkit", TemplateBody=json.dumps({
        "Resources": {"CdkBootstrapVersion": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Type": "String", "Name": "/cdk-bootstrap/hnb659fds/version", "Value": str(version)}}}}))
    s3 = session.base.client("s3")
    s3.create_bucket(Bucket=ASSET_BUCKET)
    s3.put_bucket_encryption(Bucket=ASSET_BUCKET, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": encryption or {"SSEAlgorithm": "aws:kms"}}]})


def by_check(findings, check: str) -> list:
    return [f for f in findings if f.check == check]


def finding_for(findings, text: str):
    matches = [f for f in findings if text in f.detail]
    assert len(matches) == 1, (text, findings)
    return matches[0]


# --- name resolution ----------------------------------------------------------------------------------------------

def test_resolve_join_and_sub_with_account_and_region():
    pseudo = preflight.pseudo_parameters(ACCOUNT, "ap-northeast-2")
    join = {"Fn::Join": ["", ["deeplens-maskcam-models", *ACCOUNT_REGION]]}
    assert resolve(join, pseudo) == "deeplens-maskcam-models-123456789012-ap-northeast-2"
    assert resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::b-${AWS::AccountId}.${AWS::URLSuffix}"}, pseudo) \
        == "arn:aws:s3:::b-123456789012.amazonaws.com"
    assert resolve({"Fn::Sub": ["${Prefix}-${AWS::Region}-${!Literal}", {"Prefix": {"Ref": "AWS::AccountId"}}]},
                   pseudo) == "123456789012-ap-northeast-2-${Literal}"
    assert resolve("awskrug", pseudo) == "awskrug"
    for unknown in ({"Fn::GetAtt": ["Role", "Arn"]}, {"Fn::ImportValue": "x"}, {"Ref": "SomeResource"},
                    {"Fn::Join": ["-", ["a", {"Ref": "SomeResource"}]]}, {"Fn::Sub": "${SomeResource}-x"}):
        with pytest.raises(Unresolved):
            resolve(unknown, pseudo)


def test_names_of_the_assembly(assembly):
    loaded = preflight.load_assembly(assembly)
    targets, unresolved = preflight.named_targets(loaded, preflight.pseudo_parameters(ACCOUNT, REGION))
    names = {(t.type, t.name): t for t in targets}
    assert ("AWS::S3::Bucket", f"deeplens-maskcam-models-{ACCOUNT}-{REGION}") in names
    assert ("AWS::KinesisFirehose::DeliveryStream", f"maskcam-inference-{REGION}") in names
    # the table names its database through the storage stack's output, a Ref to the literally named database
    assert names["AWS::Glue::Table", "inference_results"].extra == {"database": "awskrug"}
    # the recipe embeds a Ref (artifact URI), its name and version are literal
    assert names["AWS::GreengrassV2::ComponentVersion", "com.maskcam.EdgeClassifier"].extra == {"version": "1.0.0"}
    assert unresolved == ["maskcam-analytics/ExtraLogs"]
    assert loaded.bootstrap == {"/cdk-bootstrap/hnb659fds/version": 6}   # the lookup role's 8 is not required


# --- (a) (c) (f): names that exist -------------------------------------------------------------------------------

def test_planted_deeplens_role_blocks(session, assembly, capsys):
    session.base.client("iam").create_role(RoleName="deeplens_lambda", AssumeRolePolicyDocument=TRUST)
    bootstrap(session)
    findings = preflight.run(assembly, session)
    role = finding_for(findings, "deeplens_lambda")
    assert role.status == BLOCKER and role.check == "name: IAM role"
    assert "aws iam delete-role --role-name deeplens_lambda" in role.fix
    assert "another account" in role.fix and "DeepLens contract requires that exact name" in role.fix
    assert [f for f in findings if f.status == BLOCKER] == [role]

    assert preflight.main(["--app", str(assembly)], session=session) == 1
    out = capsys.readouterr().out
    assert "BLOCKER" in out and "deeplens_lambda" in out
    assert out.strip().splitlines()[-1].startswith("preflight: 1 BLOCKER")


def test_planted_glue_database_blocks_with_the_setting_to_change(session, assembly):
    session.base.client("glue").create_database(DatabaseInput={"Name": "awskrug"})
    db = finding_for(preflight.run(assembly, session), "awskrug:")
    assert db.status == BLOCKER and db.check == "name: Glue database"
    assert "set -c glue_database=<other name>" in db.fix and "drop the workshop's database" in db.fix


def test_existing_resource_of_our_own_stack_is_ok(session, assembly):
    """A redeploy: the role exists because our stack created it (moto's CloudFormation creates IAM roles)."""
    session.base.client("cloudformation").create_stack(StackName="maskcam-device", TemplateBody=json.dumps(
        {"Resources": {"DeepLensRole63F76CC2": device_template()["Resources"]["DeepLensRole63F76CC2"]}}),
        Capabilities=["CAPABILITY_NAMED_IAM"])
    session.base.client("iam").get_role(RoleName="deeplens_lambda")   # it is really there
    role = finding_for(preflight.run(assembly, session), "deeplens_lambda")
    assert role.status == OK and "managed by stack maskcam-device" in role.detail


def test_resource_of_another_stack_of_ours_blocks(session, assembly):
    session.base.client("cloudformation").create_stack(StackName="maskcam-storage", TemplateBody=json.dumps(
        {"Resources": {"Old": device_template()["Resources"]["DeepLensRole63F76CC2"]}}),
        Capabilities=["CAPABILITY_NAMED_IAM"])
    role = finding_for(preflight.run(assembly, session), "deeplens_lambda")
    assert role.status == BLOCKER and "managed by stack maskcam-storage, not maskcam-device" in role.detail


def test_bucket_of_another_account_blocks(session, assembly):
    session.patched["s3", "head_bucket"] = client_error("403", 403, "HeadBucket")
    bucket = finding_for(preflight.run(assembly, session), "deeplens-maskcam-models-")
    assert bucket.status == BLOCKER and bucket.fix.startswith("bucket names are global")


def test_retained_bucket_in_this_account_blocks(session, assembly):
    session.base.client("s3").create_bucket(Bucket=f"deeplens-maskcam-models-{ACCOUNT}-{REGION}")
    bucket = finding_for(preflight.run(assembly, session), "deeplens-maskcam-models-")
    assert bucket.status == BLOCKER and "aws s3 rb" in bucket.fix


def test_existing_greengrass_component_version_blocks(session, assembly):
    gg = session.stub("greengrassv2")
    arn = f"arn:aws:greengrass:{REGION}:{ACCOUNT}:components:com.maskcam.EdgeClassifier:versions:1.0.0"
    gg.add_response("describe_component", {"arn": arn, "componentName": "com.maskcam.EdgeClassifier",
                                           "componentVersion": "1.0.0"}, {"arn": arn})
    component = finding_for(preflight.run(assembly, session), "com.maskcam.EdgeClassifier 1.0.0")
    assert component.status == BLOCKER and "-c greengrass_component_name=" in component.fix
    gg.assert_no_pending_responses()


def test_access_denied_is_a_warning_naming_the_permission(session, assembly):
    session.patched["iam", "get_role"] = client_error("AccessDenied", 403, "GetRole")
    role = finding_for(preflight.run(assembly, session), "deeplens_lambda")
    assert role.status == WARNING and "access denied" in role.detail and "iam:GetRole" in role.fix


# --- (b) Lambda concurrency ---------------------------------------------------------------------------------------

def test_low_concurrency_quota_blocks_a_reservation(session, assembly):
    session.lambda_quota(10, 10)
    (conc,) = by_check(preflight.run(assembly, session), "lambda concurrency")
    assert conc.status == BLOCKER
    assert "reserve 5" in conc.detail and "quota 10" in conc.detail and "at most 0" in conc.detail
    assert "L-B99A9384" in conc.fix and "cloud_reserved_concurrency" in conc.fix


@pytest.mark.parametrize("quota, unreserved, status", [(1000, 1000, OK), (1000, 104, BLOCKER), (1000, 105, OK),
                                                       (100, 100, BLOCKER)])
def test_concurrency_keeps_the_minimum_unreserved(session, assembly, quota, unreserved, status):
    session.lambda_quota(quota, unreserved)
    (conc,) = by_check(preflight.run(assembly, session), "lambda concurrency")
    assert conc.status == status, conc


def test_nothing_reserved_reports_the_quota(session, tmp_path):
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-device": device_template(reserved=None)})
    session.lambda_quota(1000)
    (conc,) = by_check(preflight.run(app, session), "lambda concurrency")
    assert conc.status == OK and "quota 1000" in conc.detail
    session.lambda_quota(10)
    (conc,) = by_check(preflight.run(app, session), "lambda concurrency")
    assert conc.status == WARNING and "quota 10" in conc.detail


def test_existing_reservation_is_not_counted_twice(session, assembly):
    iam, lam = session.base.client("iam"), session.base.client("lambda")
    role = iam.create_role(RoleName="other", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("greengrassHelloWorld.py", "def function_handler(event, context):\n    return None\n")
    lam.create_function(FunctionName="deeplens-mask-classifier", Runtime="python3.13", Role=role,
                        Handler="greengrassHelloWorld.function_handler", Code={"ZipFile": code.getvalue()})
    lam.put_function_concurrency(FunctionName="deeplens-mask-classifier", ReservedConcurrentExecutions=5)
    session.lambda_quota(10, 5)   # the 5 are already taken by the deployed function
    (conc,) = by_check(preflight.run(assembly, session), "lambda concurrency")
    assert conc.status == OK and "0 new" in conc.detail


# --- (d) (e) bootstrap and a clean account ------------------------------------------------------------------------

def test_missing_bootstrap_blocks(session, assembly):
    (boot,) = by_check(preflight.run(assembly, session), "cdk bootstrap")
    assert boot.status == BLOCKER and "no CDKToolkit stack" in boot.detail
    assert boot.fix == f"node_modules/.bin/cdk bootstrap aws://{ACCOUNT}/{REGION}"


@pytest.mark.parametrize("version, status", [(21, OK), (6, OK), (5, BLOCKER)])
def test_bootstrap_version(session, assembly, version, status):
    bootstrap(session, version)
    (boot,) = by_check(preflight.run(assembly, session), "cdk bootstrap")
    assert boot.status == status, boot
    if status == BLOCKER:
        assert "requires >= 6" in boot.detail and "cdk bootstrap" in boot.fix


def test_clean_bootstrapped_account_exits_0(session, assembly, capsys):
    bootstrap(session)
    assert preflight.main(["--app", str(assembly)], session=session) == 0
    out = capsys.readouterr().out
    assert "BLOCKER" not in out.replace("0 BLOCKER", "")
    assert "1 name(s) depend on values known only after deploy" in out
    assert out.strip().splitlines()[-1] == "preflight: 0 BLOCKER, 0 WARNING, 17 ok — ready to deploy"


def test_assembly_for_another_account_blocks(session, tmp_path):
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-storage": storage_template()},
                         environment=f"aws://999999999999/{REGION}")
    (target,) = by_check(preflight.run(app, session), "target")
    assert target.status == BLOCKER and "999999999999" in target.detail


# --- (g) QuickSight -----------------------------------------------------------------------------------------------

def quicksight_stub(session: FakeSession) -> Stubber:
    """The dashboard's names are free (moto has no DescribeDataSet, so the whole client is stubbed)."""
    qs = session.stub("quicksight")
    qs.add_client_error("describe_data_source", "ResourceNotFoundException", http_status_code=404,
                        expected_params={"AwsAccountId": ACCOUNT, "DataSourceId": "maskcam-athena"})
    qs.add_client_error("describe_data_set", "ResourceNotFoundException", http_status_code=404,
                        expected_params={"AwsAccountId": ACCOUNT, "DataSetId": "maskcam-mask-compliance-hourly"})
    return qs


@pytest.fixture
def dashboard_assembly(tmp_path) -> Path:
    return write_assembly(tmp_path / "cdk.out", {"maskcam-storage": storage_template(),
                                                 "maskcam-dashboard": dashboard_template()})


def test_missing_quicksight_subscription_blocks(session, dashboard_assembly):
    bootstrap(session)
    qs = quicksight_stub(session)
    qs.add_client_error("describe_account_subscription", "ResourceNotFoundException", http_status_code=404,
                        expected_params={"AwsAccountId": ACCOUNT})
    findings = preflight.run(dashboard_assembly, session)
    (sub,) = by_check(findings, "quicksight")
    assert sub.status == BLOCKER and "no active QuickSight subscription" in sub.detail
    assert "sign up for QuickSight" in sub.fix and "quicksight_principal_arn" in sub.fix
    assert by_check(findings, "quicksight principal") == []   # not asked without a subscription
    qs.assert_no_pending_responses()


@pytest.mark.parametrize("user_exists", [True, False])
def test_quicksight_principal(session, dashboard_assembly, user_exists):
    bootstrap(session)
    qs = quicksight_stub(session)
    qs.add_response("describe_account_subscription", {"AccountInfo": {
        "AccountName": "maskcam", "Edition": "ENTERPRISE", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}})
    params = {"AwsAccountId": ACCOUNT, "Namespace": "default", "UserName": "ops"}
    if user_exists:
        qs.add_response("describe_user", {"User": {"Arn": PRINCIPAL, "UserName": "ops"}}, params)
    else:
        qs.add_client_error("describe_user", "ResourceNotFoundException", http_status_code=404,
                            expected_params=params)
    findings = preflight.run(dashboard_assembly, session)
    assert by_check(findings, "quicksight")[0].status == OK
    (principal,) = by_check(findings, "quicksight principal")
    assert principal.status == (OK if user_exists else BLOCKER), principal
    if not user_exists:
        assert "-c quicksight_principal_arn=" in principal.fix
    qs.assert_no_pending_responses()


def test_no_quicksight_resources_no_quicksight_calls(session, assembly):
    session.stub("quicksight")   # any call would raise: nothing is queued
    assert not [f for f in preflight.run(assembly, session) if f.check.startswith("quicksight")]


# --- Greengrass deployment target ----------------------------------------------------------------------------------

@pytest.fixture
def group_assembly(tmp_path) -> Path:
    return write_assembly(tmp_path / "cdk.out", {"maskcam-device": device_template(thing_group=GROUP)})


def greengrass_stub(session: FakeSession, *deployments) -> Stubber:
    """Greengrass V2 for the group assembly: our component version is free, then ``deployments`` are (status,
    component names) of the group's current deployment (LATEST_ONLY gives one per target)."""
    gg = session.stub("greengrassv2")
    gg.add_client_error("describe_component", "ResourceNotFoundException", http_status_code=404,
                        expected_params={"arn": COMPONENT_ARN})
    listed = [{"targetArn": GROUP_ARN, "deploymentId": f"d-{i}", "deploymentName": f"deployment-{i}",
               "deploymentStatus": status, "isLatestForTarget": True} for i, (status, _) in enumerate(deployments)]
    gg.add_response("list_deployments", {"deployments": listed},
                    {"targetArn": GROUP_ARN, "historyFilter": "LATEST_ONLY"})
    for i, (status, components) in enumerate(deployments):
        if status not in ("CANCELED", "INACTIVE"):
            gg.add_response("get_deployment", {
                "targetArn": GROUP_ARN, "deploymentId": f"d-{i}", "deploymentStatus": status,
                "components": {c: {"componentVersion": "1.0.0"} for c in components}}, {"deploymentId": f"d-{i}"})
    return gg


def test_missing_thing_group_blocks(session, group_assembly):
    gg = session.stub("greengrassv2")   # only the component name is asked: no deployments of a missing group
    gg.add_client_error("describe_component", "ResourceNotFoundException", http_status_code=404)
    findings = preflight.run(group_assembly, session)
    (target,) = by_check(findings, "greengrass target")
    assert target.status == BLOCKER
    assert target.detail == f"thing group {GROUP} does not exist; create it and add the core devices"
    assert f"aws iot create-thing-group --thing-group-name {GROUP}" in target.fix
    assert "add-thing-to-thing-group" in target.fix
    assert by_check(findings, "greengrass deployment") == []
    gg.assert_no_pending_responses()


@pytest.mark.parametrize("deployments, status, text", [
    ((), OK, f"thing group {GROUP} has no Greengrass deployment yet"),
    ((("COMPLETED", [COMPONENT]),), OK, f"has only our components ({COMPONENT}); ours replaces it"),
    ((("CANCELED", ["com.example.Camera"]),), OK, "no Greengrass deployment yet"),
    ((("ACTIVE", ["aws.greengrass.Nucleus", COMPONENT, "com.example.Camera"]),), WARNING,
     ("deploying replaces the group's deployment: components aws.greengrass.Nucleus, com.example.Camera would be "
      "removed from its devices")),
])
def test_thing_group_deployment(session, group_assembly, deployments, status, text):
    session.base.client("iot").create_thing_group(thingGroupName=GROUP)
    gg = greengrass_stub(session, *deployments)
    findings = preflight.run(group_assembly, session)
    (target,) = by_check(findings, "greengrass target")
    assert target.status == OK and target.detail == f"thing group {GROUP} exists"
    (deployment,) = by_check(findings, "greengrass deployment")
    assert deployment.status == status and text in deployment.detail, deployment
    if status == WARNING:
        assert "deployment-0 (ACTIVE)" in deployment.detail and "-c greengrass_thing_group=" in deployment.fix
    gg.assert_no_pending_responses()


def test_missing_target_thing_blocks(session, tmp_path):
    device = device_template(thing_group=GROUP)
    device["Resources"]["EdgeClassifierDeploymentA6E50987"]["Properties"]["TargetArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:thing/core-1"}
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-device": device})
    (target,) = by_check(preflight.run(app, session), "greengrass target")
    assert target.status == BLOCKER and target.detail == "thing core-1 does not exist; register the core device first"


def test_greengrass_deployments_access_denied_is_a_warning(session, group_assembly):
    session.base.client("iot").create_thing_group(thingGroupName=GROUP)
    gg = session.stub("greengrassv2")
    gg.add_client_error("describe_component", "ResourceNotFoundException", http_status_code=404)
    gg.add_client_error("list_deployments", "AccessDeniedException", http_status_code=403)
    (deployment,) = by_check(preflight.run(group_assembly, session), "greengrass deployment")
    assert deployment.status == WARNING and "access denied" in deployment.detail
    assert "greengrass:ListDeployments" in deployment.fix


def test_no_greengrass_deployment_no_target_calls(session, assembly):
    """The default device stack has a component but no deployment: neither IoT groups nor deployments are asked."""
    session.patched["iot", "describe_thing_group"] = client_error("should not be called")
    findings = preflight.run(assembly, session)
    assert by_check(findings, "greengrass target") == by_check(findings, "greengrass deployment") == []


# --- imported IAM roles -------------------------------------------------------------------------------------------

def quicksight_ready(session: FakeSession) -> Stubber:
    qs = quicksight_stub(session)
    qs.add_response("describe_account_subscription", {"AccountInfo": {
        "AccountName": "maskcam", "Edition": "ENTERPRISE", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}})
    qs.add_response("describe_user", {"User": {"Arn": PRINCIPAL, "UserName": "ops"}})
    return qs


@pytest.mark.parametrize("role_exists", [False, True])
def test_an_imported_role_must_exist(session, dashboard_assembly, role_exists):
    bootstrap(session)
    if role_exists:
        session.base.client("iam").create_role(RoleName=QS_ROLE, AssumeRolePolicyDocument=TRUST)
    qs = quicksight_ready(session)
    findings = preflight.run(dashboard_assembly, session)
    (role,) = by_check(findings, "imported IAM role")
    if role_exists:
        assert role.status == OK and role.detail.startswith(f"role {QS_ROLE} exists")
    else:
        assert role.status == BLOCKER
        assert role.detail == (f"role {QS_ROLE} does not exist; maskcam-dashboard/ServiceRoleAccessPolicy275E6A16 "
                               "attaches a policy to it")
        assert role.fix == f"create role {QS_ROLE}, or change the setting that names it"
        assert [f for f in findings if f.status == BLOCKER] == [role]
    qs.assert_no_pending_responses()


def test_only_literal_role_names_not_created_by_the_templates_are_imported(tmp_path):
    device = device_template()
    device["Resources"].update({
        "OwnRolePolicy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {   # the template creates that role
            "Roles": ["deeplens_lambda"], "PolicyDocument": {}}},
        "RefPolicy": {"Type": "AWS::IAM::Policy", "Properties": {              # a Ref: not a literal name
            "Roles": [{"Ref": "DeepLensRole63F76CC2"}], "PolicyName": "x", "PolicyDocument": {}}},
        "ImportedInline": {"Type": "AWS::IAM::Policy", "Properties": {
            "Roles": ["ops-role"], "PolicyName": "y", "PolicyDocument": {}}}})
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-device": device, "maskcam-dashboard": dashboard_template()})
    roles = preflight.imported_roles(preflight.load_assembly(app), preflight.pseudo_parameters(ACCOUNT, REGION))
    assert {name: [label for _, label in users] for name, users in roles.items()} == {
        "ops-role": ["maskcam-device/ImportedInline"],
        QS_ROLE: ["maskcam-dashboard/ServiceRoleAccessPolicy275E6A16"]}


def test_missing_imported_role_outside_quicksight_gets_the_generic_fix(session, tmp_path):
    device = device_template()
    device["Resources"]["ImportedInline"] = {"Type": "AWS::IAM::Policy", "Properties": {
        "Roles": ["ops-role"], "PolicyName": "y", "PolicyDocument": {}}}
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-device": device})
    (role,) = by_check(preflight.run(app, session), "imported IAM role")
    assert role.status == BLOCKER and role.fix == "create role ops-role, or change the setting that names it"


# --- bootstrap asset bucket encryption ----------------------------------------------------------------------------

def customer_key(session: FakeSession) -> str:
    return session.base.client("kms").create_key(Description="cdk assets")["KeyMetadata"]["Arn"]


@pytest.mark.parametrize("encryption, status", [
    ({"SSEAlgorithm": "AES256"}, OK),
    ({"SSEAlgorithm": "aws:kms"}, OK),                                       # cdk bootstrap's default
    ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/aws/s3"}, OK),
    ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "customer"}, WARNING),   # --bootstrap-customer-key
])
def test_asset_bucket_encryption(session, assembly, encryption, status):
    if encryption.get("KMSMasterKeyID") == "customer":
        encryption = {**encryption, "KMSMasterKeyID": customer_key(session)}
    bootstrap(session, encryption=encryption)
    (enc,) = by_check(preflight.run(assembly, session), "asset bucket encryption")
    assert enc.status == status, enc
    assert enc.detail.startswith(ASSET_BUCKET)
    if status == WARNING:
        key = encryption["KMSMasterKeyID"]
        assert f"encrypts with customer managed KMS key {key}" in enc.detail
        assert ("Greengrass core devices' token exchange role would also need kms:Decrypt on that key to download "
                "the component's artifacts") in enc.detail
        assert f"grant kms:Decrypt on {key} to the token exchange role" in enc.fix


@pytest.mark.parametrize("manager, status", [("AWS", OK), (None, WARNING)])
def test_asset_bucket_key_manager_from_kms(session, assembly, manager, status):
    """A key given by id: KMS says whose it is; when it cannot (denied, another account's key), assume the worst."""
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    bootstrap(session, encryption={"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key})
    session.patched["kms", "describe_key"] = (
        (lambda **_: {"KeyMetadata": {"KeyId": key, "KeyManager": manager}}) if manager
        else client_error("AccessDeniedException", 400, "DescribeKey"))
    (enc,) = by_check(preflight.run(assembly, session), "asset bucket encryption")
    assert enc.status == status, enc
    if status == WARNING:
        assert "could not tell whether customer or AWS managed" in enc.detail


def test_asset_bucket_missing_is_a_warning(session, assembly):
    (enc,) = by_check(preflight.run(assembly, session), "asset bucket encryption")
    assert enc.status == WARNING and f"{ASSET_BUCKET} not found" in enc.detail


def test_asset_bucket_not_asked_without_a_greengrass_component(session, tmp_path):
    app = write_assembly(tmp_path / "cdk.out", {"maskcam-storage": storage_template()})
    session.patched["s3", "get_bucket_encryption"] = client_error("should not be called")
    assert by_check(preflight.run(app, session), "asset bucket encryption") == []


# --- usage errors -------------------------------------------------------------------------------------------------

def test_missing_assembly_is_a_usage_error(tmp_path, capsys):
    assert preflight.main(["--app", str(tmp_path / "nowhere")], session=object()) == 2
    assert "no cloud assembly" in capsys.readouterr().err


def test_no_credentials_is_a_usage_error(assembly, monkeypatch, capsys):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    assert preflight.main(["--app", str(assembly)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("preflight: no AWS credentials:") and len(err.strip().splitlines()) == 1


# --- the real app -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_app_assembly(session, project):
    app = Path(project.assembly.directory)   # the default app, synthesized once per session (read here, not changed)
    bootstrap(session)
    assert preflight.main(["--app", str(app)], session=session) == 0

    session.base.client("iam").create_role(RoleName="deeplens_lambda", AssumeRolePolicyDocument=TRUST)
    findings = preflight.run(app, session)
    names = " ".join(f.detail for f in findings if f.check.startswith("name: "))
    assert f"deeplens-maskcam-models-{ACCOUNT}-{REGION}" in names and "awskrug" in names
    assert [f.detail.split(":")[0] for f in findings if f.status == BLOCKER] == ["deeplens_lambda"]
    assert preflight.main(["--app", str(app)], session=session) == 1


@pytest.mark.slow
def test_real_app_with_thing_group_and_dashboard(session, full_project):
    """The synthesized deployment and service-role policy are what the new checks read (the session's app with every
    optional part: a model export, a thing group, the dashboard)."""
    from tests.conftest import FULL_THING_GROUP, QUICKSIGHT_PRINCIPAL

    cloud_assembly = full_project.assembly
    bootstrap(session, encryption={"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": customer_key(session)})
    not_found = client_error("ResourceNotFoundException", 404)
    session.patched.update({
        ("quicksight", "describe_data_source"): not_found, ("quicksight", "describe_data_set"): not_found,
        ("quicksight", "describe_analysis"): not_found, ("quicksight", "describe_dashboard"): not_found,
        ("quicksight", "describe_user"): lambda **_: {"User": {"Arn": QUICKSIGHT_PRINCIPAL}},
        ("quicksight", "describe_account_subscription"): lambda **_: {"AccountInfo": {
            "Edition": "ENTERPRISE", "AccountSubscriptionStatus": "ACCOUNT_CREATED"}}})

    findings = preflight.run(Path(cloud_assembly.directory), session)

    blockers = {f.check: f.detail for f in findings if f.status == BLOCKER}
    assert blockers.keys() == {"greengrass target"}, findings
    assert blockers["greengrass target"] == (f"thing group {FULL_THING_GROUP} does not exist; create it and add the "
                                             "core devices")
    assert by_check(findings, "imported IAM role") == []   # the data source has a role of its own
    (enc,) = by_check(findings, "asset bucket encryption")
    assert enc.status == WARNING and "customer managed KMS key" in enc.detail
