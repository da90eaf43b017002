"""Physical names and account limits that only show at deploy time.

- Fixed names collide: CloudFormation cannot create a named resource that already exists ("already exists" on
  create; https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html). Every explicit
  name is either scoped by the project or one the design requires (the DeepLens role, the seed's database and
  tables, the DeepLens function), and `make preflight` checks the account for each of the latter. Lambda creates
  `/aws/lambda/<function>` itself on first log, so a stack never names a log group that way.
- S3 bucket names: 3-63 characters, lowercase letters, digits, '.' and '-', starting and ending with a letter or
  digit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
- Lambda concurrency: "You can reserve up to the Unreserved account concurrency value, minus 100"
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html); new accounts can start with a quota
  of 10, where no function can reserve any. So the default templates reserve nothing.
- Lambda quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): environment variables at
  most 4 KB in all, timeout at most 900 s, memory 128-10240 MB, /tmp 512-10240 MB.
"""
from __future__ import annotations

import copy
import json
import re

import pytest

from infra.settings import Settings, SettingsError
from tests.aws_rules.support import ACCOUNT, all_resources, render

NAME_PROPERTIES = {
    "AWS::IAM::Role": ("RoleName",),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName",),
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Table": ("TableInput", "Name"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::IoT::TopicRule": ("RuleName",),
    "AWS::IoT::Policy": ("PolicyName",),
    "AWS::IoT::RoleAlias": ("RoleAlias",),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::Athena::NamedQuery": ("Name",),
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::Events::Rule": ("Name",),
    "AWS::GreengrassV2::Deployment": ("DeploymentName",),
    "AWS::QuickSight::DataSource": ("DataSourceId",),
    "AWS::QuickSight::DataSet": ("DataSetId",),
    "AWS::QuickSight::Analysis": ("AnalysisId",),
    "AWS::QuickSight::Dashboard": ("DashboardId",),
}
# Names the design requires as they are; `make preflight` reports an existing one that our stacks do not own.
REQUIRED_NAMES = {"deeplens_lambda", "inference_results", "free_wifi_standard_data"}
# Names that live inside a project-owned container (named queries in the project's workgroup), or that need not be
# unique (a Greengrass deployment is identified by its target; its name is a label).
SCOPED_BY_PARENT = {"AWS::Athena::NamedQuery", "AWS::GreengrassV2::Deployment"}
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_ENV_BYTES = 4096


def explicit_names(templates: dict, region: str = "us-east-1"):
    """(stack, logical id, type, name) of every resource with an explicit physical name."""
    for stack, lid, resource in all_resources(templates):
        path = NAME_PROPERTIES.get(resource["Type"])
        value = resource.get("Properties", {})
        for key in path or ("-",):
            value = value.get(key) if isinstance(value, dict) else None
        if path and value is not None:
            yield stack, lid, resource["Type"], render(value, ACCOUNT, region)


# -- rules ------------------------------------------------------------------------------------------------------------
def name_problems(templates: dict, settings: Settings) -> list:
    allowed = REQUIRED_NAMES | {settings.glue_database, settings.lambda_function_name}
    scopes = (settings.project, settings.project.replace("-", "_"))
    problems = []
    for stack, lid, kind, name in explicit_names(templates, settings.region):
        if kind == "AWS::Logs::LogGroup" and name.startswith("/aws/lambda/"):
            problems.append(f"{stack}/{lid}: log group {name} is the one Lambda creates itself; an account that ran "
                            "the workshop already has it")
        elif kind not in SCOPED_BY_PARENT and name not in allowed and not any(s in name for s in scopes):
            problems.append(f"{stack}/{lid}: {kind} named {name!r} is neither project-scoped nor a required name")
    return problems


def bucket_problems(templates: dict, region: str) -> list:
    problems = []
    for stack, lid, kind, name in explicit_names(templates, region):
        if kind == "AWS::S3::Bucket" and (not BUCKET_NAME.match(name) or ".." in name):
            problems.append(f"{stack}/{lid}: bucket name {name} ({len(name)} characters) breaks S3's naming rules")
    return problems


def lambda_problems(templates: dict) -> list:
    problems, reserved = [], 0
    for stack, lid, resource in all_resources(templates):
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        reserved += int(props.get("ReservedConcurrentExecutions", 0))
        env = props.get("Environment", {}).get("Variables", {})
        size = sum(len(k.encode()) + len(render(v).encode()) for k, v in env.items())
        if size > MAX_ENV_BYTES:
            problems.append(f"{stack}/{lid}: environment is {size} bytes > {MAX_ENV_BYTES}")
        if not 1 <= props.get("Timeout", 3) <= 900 or not 128 <= props.get("MemorySize", 128) <= 10240 \
                or not 512 <= props.get("EphemeralStorage", {}).get("Size", 512) <= 10240:
            problems.append(f"{stack}/{lid}: timeout, memory or /tmp outside Lambda's limits")
    if reserved:
        problems.append(f"the templates reserve {reserved} concurrent executions; a new account with a quota of 10 "
                        "cannot reserve any")
    return problems


# -- the synthesized stacks pass --------------------------------------------------------------------------------------
def test_every_template_passes(templates, full_project):
    for tpl in (templates, full_project.templates):
        assert name_problems(tpl, Settings()) == []
        assert bucket_problems(tpl, "us-east-1") == []
        assert lambda_problems(tpl) == []
    assert any(kind == "AWS::S3::Bucket" for *_, kind, _ in explicit_names(templates))


def test_preflight_looks_up_every_required_name(full_project):
    """`make preflight` checks each name the templates fix (the class of collision), whatever its type."""
    from infra.ops import preflight

    covered = set(preflight.NAME_RULES)
    named = {kind for *_, kind, _ in explicit_names(full_project.templates)} - SCOPED_BY_PARENT
    assert named <= covered, f"preflight does not look up {sorted(named - covered)}"


# -- each rule bites --------------------------------------------------------------------------------------------------
def _with_resource(templates: dict, resource: dict) -> dict:
    bad = copy.deepcopy(templates)
    bad["maskcam-device"]["Resources"]["Planted"] = resource
    return bad


def test_a_named_lambda_log_group_and_a_fixed_name_are_reported(templates):
    problems = name_problems(_with_resource(templates, {
        "Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/deeplens-mask-classifier"}}),
        Settings())
    assert any("Lambda creates itself" in p for p in problems)
    problems = name_problems(_with_resource(templates, {
        "Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "greengrass-core", "PolicyDocument": {}}}),
        Settings())
    assert any("neither project-scoped" in p for p in problems)


def test_a_64_character_bucket_name_is_reported(templates):
    name = {"Fn::Join": ["", ["deeplens-", "p" * 20, "-models-", {"Ref": "AWS::AccountId"}, "-",
                              {"Ref": "AWS::Region"}]]}
    bad = _with_resource(templates, {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": name}})
    assert any("64 characters" in p for p in bucket_problems(bad, "ap-southeast-3"))


def test_settings_refuse_a_project_whose_bucket_name_would_be_too_long():
    with pytest.raises(SettingsError, match="at most 19 characters"):
        Settings.from_mapping({"project": "p" * 20, "region": "ap-southeast-3"})
    assert Settings.from_mapping({"project": "p" * 19, "region": "ap-southeast-3"}).project == "p" * 19
    assert Settings.from_mapping({"project": "p" * 20, "region": "us-east-1"}).project == "p" * 20


def test_a_reservation_is_reported(templates):
    bad = copy.deepcopy(templates)
    fn = next(r for _, _, r in all_resources(bad) if r["Type"] == "AWS::Lambda::Function")
    fn["Properties"]["ReservedConcurrentExecutions"] = 5
    assert any("reserve 5" in p for p in lambda_problems(bad))
    fn["Properties"]["Environment"] = {"Variables": {"BIG": "x" * 5000}}
    assert any("bytes > 4096" in p for p in lambda_problems(bad))


def test_a_reservation_stays_possible_as_a_setting():
    assert Settings().cloud_reserved_concurrency is None
    assert Settings.from_mapping({"cloud_reserved_concurrency": "12"}).cloud_reserved_concurrency == 12


def test_the_default_runtime_is_one_this_machine_can_run(templates):
    """python3.14 cannot be executed here (no interpreter installs); the bundles are run under the default in
    tests/test_lambda_bundles.py."""
    runtimes = {r["Properties"]["Runtime"] for _, _, r in all_resources(templates)
                if r["Type"] == "AWS::Lambda::Function" and "Runtime" in r["Properties"]
                and r["Properties"]["Runtime"].startswith("python")}
    assert runtimes == {"python3.13"}, json.dumps(sorted(runtimes))
