"""Pre-deploy check of the target AWS account against a synthesized cloud assembly (`make preflight`).

    python -m infra.ops.preflight --app cdk.out [--region R] [--profile P]

Reads the templates in ``cdk.out`` (plain JSON) and, for the account of the caller's credentials, reports what would
make ``cdk deploy`` fail half-way, or succeed and still not work: explicit physical names that already exist outside
our stacks, reserved Lambda concurrency the account cannot give, a missing or outdated CDK bootstrap, a missing
QuickSight subscription or principal, a Greengrass deployment's thing group that does not exist (or whose current
deployment ours would replace, removing components from its devices), an imported role a policy is attached to that
does not exist (the QuickSight service role), and a bootstrap asset bucket encrypted with a customer managed KMS key
(the core devices could not download the component's artifacts). Prints a table (check | status | detail | fix) and
a summary line.
Exit codes: 0 nothing blocks, 1 at least one BLOCKER, 2 usage error (no assembly, no credentials).
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, ProfileNotFound
from tabulate import tabulate

OK, WARNING, BLOCKER = "ok", "WARNING", "BLOCKER"
DEFAULT_REGION = "us-east-1"
TOOLKIT_STACK = "CDKToolkit"
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
# Lambda refuses a reservation that leaves less than a minimum unreserved: 100 on ordinary accounts ("you can reserve
# up to the unreserved account concurrency minus 100"), 50 or 10 on accounts with lower quotas. We assume
# min(100, quota): conservative, and on a quota of 100 or less it makes any reservation a blocker, which is what
# AWS reports for the 10-quota accounts new accounts start with.
MIN_UNRESERVED_CAP = 100
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
                "UnauthorizedAccess"}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str   # ok | WARNING | BLOCKER
    detail: str
    fix: str = ""


class UsageError(Exception):
    """Bad input or environment (exit code 2)."""


class Unresolved(Exception):
    """A value that is only known after deploy (Ref to a resource, GetAtt, ImportValue, ...)."""


# --- the cloud assembly --------------------------------------------------------------------------------------------

@dataclass
class Stack:
    name: str
    template: dict
    account: str | None   # None when environment-agnostic
    region: str | None

    @property
    def resources(self) -> dict:
        return self.template.get("Resources", {})


@dataclass
class Assembly:
    directory: Path
    stacks: list
    bootstrap: dict   # SSM parameter name -> highest bootstrap version any artifact requires

    def stack(self, name: str) -> Stack | None:
        return next((s for s in self.stacks if s.name == name), None)


def load_assembly(directory) -> Assembly:
    directory = Path(directory)
    manifest_file = directory / "manifest.json"
    if not manifest_file.is_file():
        raise UsageError(f"no cloud assembly at {directory} (manifest.json missing): run `make synth` first")
    artifacts = json.loads(manifest_file.read_text())["artifacts"]
    stacks: list[Stack] = []
    bootstrap: dict[str, int] = {}
    for artifact_id, artifact in artifacts.items():
        props = artifact.get("properties", {})
        if artifact.get("type") not in ("aws:cloudformation:stack", "cdk:asset-manifest"):
            continue
        if "requiresBootstrapStackVersion" in props:   # the lookup role's own requirement only matters for lookups
            param = props.get("bootstrapStackVersionSsmParameter", "/cdk-bootstrap/hnb659fds/version")
            bootstrap[param] = max(bootstrap.get(param, 0), int(props["requiresBootstrapStackVersion"]))
        if artifact["type"] == "aws:cloudformation:stack":
            account, region = _environment(artifact.get("environment", ""))
            template = json.loads((directory / props["templateFile"]).read_text())
            stacks.append(Stack(props.get("stackName", artifact_id), template, account, region))
    if not stacks:
        raise UsageError(f"the cloud assembly at {directory} has no CloudFormation stacks")
    return Assembly(directory, stacks, bootstrap)


def _environment(env: str) -> tuple:
    """``aws://<account>/<region>`` -> (account or None, region or None)."""
    m = re.match(r"^aws://([^/]*)/(.*)$", env)
    if not m:
        return None, None
    account, region = m.groups()
    return (None if account.startswith("unknown") else account), (None if region.startswith("unknown") else region)


def _resources_of(assembly: Assembly, rtype: str):
    """(stack, logical id, properties) of every template resource of type ``rtype``."""
    for stack in assembly.stacks:
        for logical_id, r in stack.resources.items():
            if r.get("Type") == rtype:
                yield stack, logical_id, r.get("Properties", {})


# --- resolving names ----------------------------------------------------------------------------------------------

def pseudo_parameters(account: str, region: str, partition: str = "aws") -> dict:
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition, "AWS::URLSuffix": suffix}


def resolve(value: Any, pseudo: Mapping[str, str], stack: Stack | None = None,
            assembly: Assembly | None = None) -> str:
    """A template value as a string, with pseudo parameters replaced. Raises ``Unresolved`` for anything only known
    after deploy. With ``stack`` (and ``assembly``), a ``Ref`` to a resource of RESOURCE_NAME_REF types whose name is
    itself known, and ``Fn::GetStackOutput`` of an assembly stack's output, resolve too (the Glue tables name the
    database through those)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, dict) or len(value) != 1:
        raise Unresolved(value)
    (fn, arg), = value.items()

    def again(v: Any) -> str:
        return resolve(v, pseudo, stack, assembly)

    if fn == "Ref":
        return _resolve_ref(arg, pseudo, stack, again)
    if fn == "Fn::Join":
        sep, parts = arg
        return again(sep).join(again(p) for p in parts)
    if fn == "Fn::Sub":
        return _resolve_sub(arg, again)
    if fn == "Fn::GetStackOutput" and assembly:
        other = assembly.stack(arg.get("StackName"))
        output = other.template.get("Outputs", {}).get(arg.get("OutputName")) if other else None
        if output:
            return resolve(output["Value"], pseudo, other, assembly)
    raise Unresolved(value)


def _resolve_ref(name: str, pseudo: Mapping[str, str], stack: Stack | None, again: Callable[[Any], str]) -> str:
    """``{"Ref": name}``: a pseudo parameter, the stack's name, or a resource of ``stack`` whose name is known."""
    if name in pseudo:
        return pseudo[name]
    if name == "AWS::StackName" and stack:
        return stack.name
    resource = stack.resources.get(name) if stack else None
    if resource and resource["Type"] in RESOURCE_NAME_REF and resource["Type"] in NAME_RULES:
        return again(_dig(resource.get("Properties", {}), NAME_RULES[resource["Type"]].path))
    raise Unresolved({"Ref": name})


def _resolve_sub(arg: Any, again: Callable[[Any], str]) -> str:
    """``{"Fn::Sub": arg}``: each ``${name}`` from the variables given, else as a ``Ref``; ``${!name}`` is literal."""
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key.startswith("!"):
            return "${" + key[1:] + "}"
        if key in variables:
            return again(variables[key])
        return again({"Ref": key})
    return re.sub(r"\$\{([^}]+)\}", sub, text)


def _dig(props: Mapping, path: tuple) -> Any:
    for key in path:
        if not isinstance(props, Mapping) or key not in props:
            return None
        props = props[key]
    return props


# --- AWS access ---------------------------------------------------------------------------------------------------

class Aws:
    """Clients of one session, cached per service and region, plus the caller's account."""

    def __init__(self, session, region: str) -> None:
        self.session, self.region = session, region
        self._clients: dict = {}
        self._stack_resources: dict = {}
        try:
            identity = self.client("sts").get_caller_identity()
        except ClientError as e:
            raise UsageError(f"AWS credentials rejected: {_error(e)}") from None
        self.account, self.caller = identity["Account"], identity["Arn"]
        self.partition = self.caller.split(":")[1]
        self.pseudo = pseudo_parameters(self.account, region, self.partition)

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=key[1])
        return self._clients[key]

    def stack_resources(self, stack_name: str) -> list:
        """Resources of a deployed stack ([] when it does not exist)."""
        if stack_name not in self._stack_resources:
            try:
                pages = self.client("cloudformation").get_paginator("list_stack_resources").paginate(
                    StackName=stack_name)
                self._stack_resources[stack_name] = [r for p in pages for r in p["StackResourceSummaries"]]
            except ClientError as e:
                if _code(e) != "ValidationError":   # "Stack with id X does not exist"
                    raise
                self._stack_resources[stack_name] = []
        return self._stack_resources[stack_name]


def _code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def _error(e: ClientError) -> str:
    err = e.response.get("Error", {})
    return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()


def _cannot_check(check: str, what: str, permission: str, e: ClientError) -> Finding:
    if _code(e) in DENIED_CODES:
        return Finding(check, WARNING, f"cannot check {what}: access denied",
                       f"grant {permission} to the caller, or check it by hand")
    return Finding(check, WARNING, f"cannot check {what}: {_error(e)}", "check it by hand")


# --- 1. name collisions -------------------------------------------------------------------------------------------

FREE, HERE, FOREIGN = "free", "here", "foreign"   # name state: unused, exists in this account, another account's


@dataclass
class Target:
    """One explicit physical name of a template resource, resolved for the target account."""
    type: str
    stack: str
    logical_id: str
    name: str
    extra: dict = field(default_factory=dict)   # type specific: database, version, path, account

    def physical_ids(self, aws: Aws) -> list:
        """What CloudFormation reports as PhysicalResourceId for it (the name, or the ARN for some types)."""
        ids = [self.name]
        if self.type == "AWS::IAM::ManagedPolicy":
            ids.append(_policy_arn(aws, self))
        if self.type == "AWS::GreengrassV2::ComponentVersion":
            ids.append(_component_arn(aws, self))
        if self.type.startswith("AWS::QuickSight::"):
            ids.append(f"{self.extra.get('account', aws.account)}|{self.name}")
        return ids


def _absent_if(codes: set, call: Callable[[], Any]) -> str:
    try:
        call()
        return HERE
    except ClientError as e:
        if _code(e) in codes:
            return FREE
        raise


def _policy_arn(aws: Aws, t: Target) -> str:
    return f"arn:{aws.partition}:iam::{aws.account}:policy{t.extra.get('path') or '/'}{t.name}"


def _component_arn(aws: Aws, t: Target) -> str:
    return (f"arn:{aws.partition}:greengrass:{aws.region}:{aws.account}:components:{t.name}"
            f":versions:{t.extra['version']}")


def _bucket_state(aws: Aws, t: Target) -> str:
    try:
        aws.client("s3").head_bucket(Bucket=t.name)
        return HERE
    except ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or _code(e) in ("404", "NoSuchBucket"):
            return FREE
        if status == 403 or _code(e) == "403":
            return FOREIGN
        if status == 301:   # exists in another region; CloudFormation ownership decides whose
            return HERE
        raise


def _listed(call: Callable[..., dict], key: str, name_key: str, name: str, token: str) -> str:
    """HERE when ``name`` is among the items of a list call, paged by its ``token`` field."""
    page = call()
    while True:
        if any(item[name_key] == name for item in page.get(key, [])):
            return HERE
        if not page.get(token):
            return FREE
        page = call(**{token: page[token]})


def _log_group_state(aws: Aws, t: Target) -> str:
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=t.name)["logGroups"]
    return HERE if any(g["logGroupName"] == t.name for g in groups) else FREE


_NOT_FOUND = {"ResourceNotFoundException"}


@dataclass(frozen=True)
class NameRule:
    what: str                 # human name of the resource type
    path: tuple               # property path of the physical name
    state: Callable           # (Aws, Target) -> FREE | HERE | FOREIGN
    permission: str           # the IAM action the state call needs
    fix: str                  # how to clear a collision; formatted with name, account, region, extra


def _quicksight_rule(kind: str, what: str, flag: str, delete_extra: str) -> NameRule:
    """QuickSight assets are named by an ``<Kind>Id`` property and described by ``describe_<kind>``."""
    id_field = f"{kind}Id"
    describe = "describe_" + "_".join(w.lower() for w in re.findall(r"[A-Z][a-z]*", kind))

    def state(a, t):
        return _absent_if(_NOT_FOUND, lambda: getattr(a.client("quicksight"), describe)(
            AwsAccountId=t.extra["account"], **{id_field: t.name}))

    return NameRule(f"QuickSight {what}", (id_field,), state, f"quicksight:Describe{kind}",
                    f"{what} {{name}} already exists; delete it (aws quicksight delete-{flag[:-3]} --aws-account-id "
                    f"{{account}} --{flag} {{name}}{delete_extra}) or set -c project=<other name>")


NAME_RULES = {
    "AWS::IAM::Role": NameRule(
        "IAM role", ("RoleName",),
        lambda a, t: _absent_if({"NoSuchEntity"}, lambda: a.client("iam").get_role(RoleName=t.name)),
        "iam:GetRole",
        "role {name} already exists (created by the workshop or another copy of this project); delete it "
        "(aws iam delete-role --role-name {name}) after detaching its policies, or deploy this project into "
        "another account{why}"),
    "AWS::IAM::ManagedPolicy": NameRule(
        "IAM managed policy", ("ManagedPolicyName",),
        lambda a, t: _absent_if({"NoSuchEntity"}, lambda: a.client("iam").get_policy(PolicyArn=_policy_arn(a, t))),
        "iam:GetPolicy",
        "policy {name} already exists; detach and delete it (aws iam delete-policy --policy-arn "
        "arn:aws:iam::{account}:policy/{name}) or deploy into another account"),
    "AWS::S3::Bucket": NameRule(
        "S3 bucket", ("BucketName",), _bucket_state, "s3:ListBucket",
        "bucket {name} exists in this account but no stack of this project manages it (buckets are retained on "
        "destroy); empty and delete it (aws s3 rb s3://{name} --force) once its data is saved, or import it "
        "(cdk import)"),
    "AWS::Glue::Database": NameRule(
        "Glue database", ("DatabaseInput", "Name"),
        lambda a, t: _absent_if({"EntityNotFoundException"}, lambda: a.client("glue").get_database(Name=t.name)),
        "glue:GetDatabase",
        "database {name} already exists (the workshop's?); set -c glue_database=<other name> or drop the workshop's "
        "database (aws glue delete-database --name {name})"),
    "AWS::Glue::Table": NameRule(
        "Glue table", ("TableInput", "Name"),
        lambda a, t: _absent_if({"EntityNotFoundException"}, lambda: a.client("glue").get_table(
            DatabaseName=t.extra["database"], Name=t.name)),
        "glue:GetTable",
        "table {database}.{name} already exists; set -c glue_database=<other name> or delete it "
        "(aws glue delete-table --database-name {database} --name {name})"),
    "AWS::Logs::LogGroup": NameRule(
        "log group", ("LogGroupName",), _log_group_state, "logs:DescribeLogGroups",
        "log group {name} exists (Lambda creates /aws/lambda/<function> on a function's first run, e.g. the "
        "workshop's); delete it (aws logs delete-log-group --log-group-name {name})"),
    "AWS::Lambda::Function": NameRule(
        "Lambda function", ("FunctionName",),
        lambda a, t: _absent_if(_NOT_FOUND, lambda: a.client("lambda").get_function(FunctionName=t.name)),
        "lambda:GetFunction",
        "function {name} already exists (the workshop's?); delete it (aws lambda delete-function --function-name "
        "{name}) or set -c lambda_function_name=<other name starting with deeplens>"),
    "AWS::IoT::TopicRule": NameRule(
        "IoT topic rule", ("RuleName",),
        lambda a, t: _listed(a.client("iot").list_topic_rules, "rules", "ruleName", t.name, "nextToken"),
        "iot:ListTopicRules",
        "topic rule {name} already exists; delete it (aws iot delete-topic-rule --rule-name {name}) or set "
        "-c project=<other name>"),
    "AWS::IoT::Policy": NameRule(
        "IoT policy", ("PolicyName",),
        lambda a, t: _absent_if(_NOT_FOUND, lambda: a.client("iot").get_policy(policyName=t.name)),
        "iot:GetPolicy",
        "IoT policy {name} already exists; detach it from its certificates and delete it (aws iot delete-policy "
        "--policy-name {name}) or set -c project=<other name>"),
    "AWS::IoT::RoleAlias": NameRule(
        "IoT role alias", ("RoleAlias",),
        lambda a, t: _absent_if(_NOT_FOUND, lambda: a.client("iot").describe_role_alias(roleAlias=t.name)),
        "iot:DescribeRoleAlias",
        "role alias {name} already exists; delete it (aws iot delete-role-alias --role-alias {name}) or set "
        "-c project=<other name>"),
    "AWS::Athena::WorkGroup": NameRule(
        "Athena workgroup", ("Name",),
        lambda a, t: _listed(a.client("athena").list_work_groups, "WorkGroups", "Name", t.name, "NextToken"),
        "athena:ListWorkGroups",
        "workgroup {name} already exists; delete it (aws athena delete-work-group --work-group {name} "
        "--recursive-delete-option) or set -c project=<other name>"),
    "AWS::KinesisFirehose::DeliveryStream": NameRule(
        "Firehose stream", ("DeliveryStreamName",),
        lambda a, t: _absent_if(_NOT_FOUND, lambda: a.client("firehose").describe_delivery_stream(
            DeliveryStreamName=t.name)),
        "firehose:DescribeDeliveryStream",
        "delivery stream {name} already exists; delete it (aws firehose delete-delivery-stream "
        "--delivery-stream-name {name}) or set -c project=<other name>"),
    "AWS::GreengrassV2::ComponentVersion": NameRule(
        "Greengrass component", ("InlineRecipe",),
        lambda a, t: _absent_if(_NOT_FOUND, lambda: a.client("greengrassv2").describe_component(
            arn=_component_arn(a, t))),
        "greengrass:DescribeComponent",
        "component {name} version {version} already exists outside the stack (versions are immutable and this one "
        "is derived from the recipe's content); delete it (aws greengrassv2 delete-component --arn "
        "arn:aws:greengrass:{region}:{account}:components:{name}:versions:{version}) or set "
        "-c greengrass_component_name=<other name>"),
    **{f"AWS::QuickSight::{kind}": _quicksight_rule(kind, what, flag, extra) for kind, what, flag, extra in (
        ("DataSource", "data source", "data-source-id", ""),
        ("DataSet", "dataset", "data-set-id", ""),
        ("Analysis", "analysis", "analysis-id", " --force-delete-without-recovery"),
        ("Dashboard", "dashboard", "dashboard-id", ""),
    )},
}
# Types whose Ref is their physical name (so a Ref to one with a known name is known too).
RESOURCE_NAME_REF = {"AWS::IAM::Role", "AWS::S3::Bucket", "AWS::Glue::Database", "AWS::Glue::Table",
                     "AWS::Logs::LogGroup", "AWS::Lambda::Function", "AWS::IoT::TopicRule", "AWS::IoT::Policy",
                     "AWS::IoT::RoleAlias", "AWS::Athena::WorkGroup", "AWS::KinesisFirehose::DeliveryStream"}
# Names other code depends on, said in the fix text.
WHY_THIS_NAME = {"deeplens_lambda": "the DeepLens contract requires that exact name"}
FOREIGN_BUCKET_FIX = ("bucket names are global and {name} belongs to another AWS account; choose another name "
                      "(the model bucket is deeplens-<project>-models-<account>-<region>: set -c project=<other>)")


def named_targets(assembly: Assembly, pseudo: Mapping[str, str]) -> tuple:
    """(targets, unresolved): every explicit physical name in the templates, and "stack/LogicalId" of names that
    depend on values only known after deploy."""
    targets, unresolved = [], []
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources.items():
            rule = NAME_RULES.get(resource.get("Type"))
            props = resource.get("Properties", {})
            raw = _dig(props, rule.path) if rule else None
            if raw is None:
                continue
            try:
                target = _target(resource["Type"], stack, logical_id, raw, props, pseudo, assembly)
            except Unresolved:
                unresolved.append(f"{stack.name}/{logical_id}")
                continue
            if target:
                targets.append(target)
    return targets, unresolved


def _target(rtype: str, stack: Stack, logical_id: str, raw: Any, props: Mapping, pseudo: Mapping,
            assembly: Assembly) -> Target | None:
    res = lambda v: resolve(v, pseudo, stack, assembly)  # noqa: E731
    extra: dict = {}
    if rtype == "AWS::GreengrassV2::ComponentVersion":
        name, extra["version"] = _recipe_name(raw, res)
    else:
        name = res(raw)
    if rtype == "AWS::Glue::Table":
        extra["database"] = res(props.get("DatabaseName"))
    if rtype == "AWS::IAM::ManagedPolicy":
        extra["path"] = res(props.get("Path", "/"))
    if rtype.startswith("AWS::QuickSight::"):
        extra["account"] = res(props.get("AwsAccountId", {"Ref": "AWS::AccountId"}))
    return Target(rtype, stack.name, logical_id, name, extra)


def _recipe_name(recipe: Any, res: Callable) -> tuple:
    """(ComponentName, ComponentVersion) of an inline recipe; the recipe may embed Refs (artifact URIs), so when it
    does not resolve as a whole, the two fields are read from its literal pieces."""
    try:
        text = res(recipe)
        doc = json.loads(text) if text.lstrip().startswith("{") else None
        if doc:
            return doc["ComponentName"], doc["ComponentVersion"]
    except (Unresolved, ValueError, KeyError):
        pass
    pieces = recipe["Fn::Join"][1] if isinstance(recipe, dict) and "Fn::Join" in recipe else [recipe]
    literal = "\u0000".join(p for p in pieces if isinstance(p, str))
    found = [re.search(r'"%s"\s*:\s*"([^"\u0000]+)"' % key, literal) for key in ("ComponentName", "ComponentVersion")]
    name, version = (m.group(1) if m else None for m in found)
    if name is None or version is None:
        raise Unresolved(recipe)
    return name, version


def owner_stack(aws: Aws, assembly: Assembly, target: Target) -> str | None:
    """The CloudFormation stack that manages the resource, or None. Asks CloudFormation by physical id first; when
    that finds nothing (or is not supported, as in moto), looks through the resources of the assembly's stacks."""
    ids = target.physical_ids(aws)
    cfn = aws.client("cloudformation")
    for pid in ids:
        try:
            found = cfn.describe_stack_resources(PhysicalResourceId=pid)["StackResources"]
        except ClientError:
            continue   # ValidationError: not in any stack (or the lookup is unsupported); the fallback decides
        if found:
            return found[0]["StackName"]
    for stack in assembly.stacks:
        if any(r.get("PhysicalResourceId") in ids for r in aws.stack_resources(stack.name)):
            return stack.name
    return None


def check_names(aws: Aws, assembly: Assembly) -> list:
    targets, unresolved = named_targets(assembly, aws.pseudo)
    findings = []
    for t in targets:
        rule = NAME_RULES[t.type]
        label = f"name: {rule.what}"
        shown = (f"{t.name} {t.extra['version']}" if "version" in t.extra
                 else f"{t.extra['database']}.{t.name}" if "database" in t.extra else t.name)
        try:
            state = rule.state(aws, t)
            owner = owner_stack(aws, assembly, t) if state == HERE else None
        except ClientError as e:
            findings.append(_cannot_check(label, shown, f"{rule.permission} and cloudformation:ListStackResources", e))
            continue
        fields = {"name": t.name, "account": aws.account, "region": aws.region,
                  "why": f" — {WHY_THIS_NAME[t.name]}" if t.name in WHY_THIS_NAME else "", **t.extra}
        if state == FREE:
            findings.append(Finding(label, OK, f"{shown}: free ({t.stack})"))
        elif state == FOREIGN:
            findings.append(Finding(label, BLOCKER, f"{shown}: 403 Forbidden, so owned by another AWS account (or "
                                                    "this caller may not list it)",
                                    FOREIGN_BUCKET_FIX.format(**fields)))
        elif owner == t.stack:
            findings.append(Finding(label, OK, f"{shown}: exists, managed by stack {owner}"))
        elif owner:
            findings.append(Finding(label, BLOCKER, f"{shown}: exists, managed by stack {owner}, not {t.stack}",
                                    f"delete stack {owner} or its resource {t.name}, or deploy into another "
                                    "account"))
        else:
            findings.append(Finding(label, BLOCKER, f"{shown}: already exists in {aws.account}/{aws.region} "
                                                    f"outside CloudFormation stack {t.stack}",
                                    rule.fix.format(**fields)))
    if unresolved:
        findings.append(Finding("names", OK, f"note: {len(unresolved)} name(s) depend on values known only after "
                                             f"deploy, not checked: {', '.join(unresolved)}"))
    return findings


# --- 2. Lambda concurrency ----------------------------------------------------------------------------------------

def minimum_unreserved(quota: int) -> int:
    """The unreserved concurrency Lambda keeps back (see MIN_UNRESERVED_CAP)."""
    return min(MIN_UNRESERVED_CAP, quota)


def check_concurrency(aws: Aws, assembly: Assembly) -> list:
    check = "lambda concurrency"
    wanted = []   # (stack, logical id, explicit name or None, reservation)
    for stack in assembly.stacks:
        for logical_id, r in stack.resources.items():
            props = r.get("Properties", {})
            if r.get("Type") == "AWS::Lambda::Function" and isinstance(props.get("ReservedConcurrentExecutions"), int):
                try:
                    name = resolve(props["FunctionName"], aws.pseudo, stack, assembly) if "FunctionName" in props \
                        else None
                except Unresolved:
                    name = None
                wanted.append((stack.name, logical_id, name, props["ReservedConcurrentExecutions"]))
    try:
        limits = aws.client("lambda").get_account_settings()["AccountLimit"]
        already = sum(_existing_reservation(aws, *w[:3]) for w in wanted)
    except ClientError as e:
        return [_cannot_check(check, "the account's Lambda concurrency",
                              "lambda:GetAccountSettings, lambda:GetFunctionConcurrency", e)]
    quota, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    total = sum(w[3] for w in wanted)
    if not total:
        status = WARNING if quota <= 10 else OK
        note = (": all Lambda functions of the account share these" if status == WARNING else "")
        return [Finding(check, status, f"nothing reserved; account quota {quota} concurrent executions{note}",
                        f"request a quota increase in Service Quotas ({LAMBDA_CONCURRENCY_QUOTA})"
                        if status == WARNING else "")]
    listing = ", ".join(f"{w[2] or w[0] + '/' + w[1]} {w[3]}" for w in wanted)
    keep, new = minimum_unreserved(quota), total - already
    if new > 0 and unreserved - new < keep:
        return [Finding(check, BLOCKER,
                        f"the stacks reserve {total} concurrent executions ({listing}), {new} of them new; account "
                        f"quota {quota}, unreserved {unreserved}, and Lambda keeps at least {keep} unreserved, so "
                        f"at most {max(0, unreserved - keep)} more can be reserved",
                        f"request a concurrency quota increase in Service Quotas ({LAMBDA_CONCURRENCY_QUOTA}), or "
                        "unset cloud_reserved_concurrency (-c cloud_reserved_concurrency=none)")]
    return [Finding(check, OK, f"reserving {total} ({listing}; {max(new, 0)} new) leaves {unreserved - max(new, 0)} "
                               f"of quota {quota} unreserved (minimum {keep})")]


def _existing_reservation(aws: Aws, stack: str, logical_id: str, name: str | None) -> int:
    """The reservation the deployed function already has (0 when it is not deployed)."""
    deployed = [r["PhysicalResourceId"] for r in aws.stack_resources(stack) if r["LogicalResourceId"] == logical_id]
    name = (deployed or [name])[0]
    if not name:
        return 0
    try:
        return aws.client("lambda").get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions", 0)
    except ClientError as e:
        if _code(e) in _NOT_FOUND:
            return 0
        raise


# --- 3. CDK bootstrap ---------------------------------------------------------------------------------------------

def check_bootstrap(aws: Aws, assembly: Assembly) -> list:
    check, fix = "cdk bootstrap", f"node_modules/.bin/cdk bootstrap aws://{aws.account}/{aws.region}"
    if not assembly.bootstrap:
        return [Finding(check, OK, "the assembly requires no bootstrap version")]
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=TOOLKIT_STACK)["Stacks"]
    except ClientError as e:
        if _code(e) != "ValidationError":
            return [_cannot_check(check, f"stack {TOOLKIT_STACK}", "cloudformation:DescribeStacks", e)]
        stacks = []
    if not stacks:
        return [Finding(check, BLOCKER, f"{aws.account}/{aws.region} is not bootstrapped (no {TOOLKIT_STACK} stack)",
                        fix)]
    status = stacks[0]["StackStatus"]
    if status.endswith("_FAILED") or status in ("ROLLBACK_COMPLETE", "DELETE_COMPLETE"):
        return [Finding(check, BLOCKER, f"stack {TOOLKIT_STACK} is in state {status}",
                        f"delete the failed {TOOLKIT_STACK} stack, then {fix}")]
    return [_bootstrap_version(aws, check, fix, status, param, required)
            for param, required in sorted(assembly.bootstrap.items())]


def _bootstrap_version(aws: Aws, check: str, fix: str, status: str, param: str, required: int) -> Finding:
    """The bootstrap version in SSM parameter ``param`` against the ``required`` one."""
    try:
        version = int(aws.client("ssm").get_parameter(Name=param)["Parameter"]["Value"])
    except ClientError as e:
        if _code(e) != "ParameterNotFound":
            return _cannot_check(check, f"parameter {param}", "ssm:GetParameter", e)
        return Finding(check, BLOCKER, f"{TOOLKIT_STACK} exists but parameter {param} is missing "
                                       "(bootstrapped with another qualifier?)", fix)
    if version < required:
        return Finding(check, BLOCKER, f"bootstrap version {version}, the assembly requires >= {required}",
                       f"{fix} (upgrades it)")
    return Finding(check, OK, f"{TOOLKIT_STACK} {status}, version {version} (>= {required})")


# --- 4. QuickSight ------------------------------------------------------------------------------------------------

_QS_PRINCIPAL = re.compile(r"^arn:[^:]+:quicksight:([a-z0-9-]+):(\d{12}):(user|group)/([^/]+)/(.+)$")


def check_quicksight(aws: Aws, assembly: Assembly) -> list:
    resources = [(s, r) for s in assembly.stacks for r in s.resources.values()
                 if r.get("Type", "").startswith("AWS::QuickSight::")]
    if not resources:
        return []
    check = "quicksight"
    try:
        info = aws.client("quicksight").describe_account_subscription(AwsAccountId=aws.account)["AccountInfo"]
        status = info.get("AccountSubscriptionStatus", "?")
    except ClientError as e:
        if _code(e) not in _NOT_FOUND:
            return [_cannot_check(check, "the QuickSight subscription", "quicksight:DescribeAccountSubscription", e)]
        status = None
    if status != "ACCOUNT_CREATED":
        return [Finding(check, BLOCKER,
                        f"account {aws.account} has no active QuickSight subscription"
                        + (f" (status {status})" if status else "") + f"; the templates have {len(resources)} "
                        "QuickSight resources",
                        "sign up for QuickSight (Enterprise) in the console, or synth without "
                        "-c quicksight_principal_arn (the dashboard stack is then left out)")]
    findings = [Finding(check, OK, f"subscription active ({info.get('Edition', 'edition ?')})")]
    principals = set()
    for stack, r in resources:
        for perm in r.get("Properties", {}).get("Permissions", []):
            try:
                principals.add(resolve(perm.get("Principal"), aws.pseudo, stack, assembly))
            except Unresolved:
                pass
    for arn in sorted(principals):
        findings.append(_check_principal(aws, arn))
    return findings


def _check_principal(aws: Aws, arn: str) -> Finding:
    check, fix = "quicksight principal", ("set -c quicksight_principal_arn=<an existing user or group ARN> (aws "
                                          "quicksight list-users --aws-account-id {account} --namespace default "
                                          "--region {region}), or create it in QuickSight")
    m = _QS_PRINCIPAL.match(arn)
    if not m:
        return Finding(check, BLOCKER, f"{arn} is not a QuickSight user or group ARN", fix.format(
            account=aws.account, region=aws.region))
    region, account, kind, namespace, name = m.groups()
    fix = fix.format(account=aws.account, region=region)
    if account != aws.account:
        return Finding(check, BLOCKER, f"{arn} belongs to account {account}, not {aws.account}", fix)
    qs = aws.client("quicksight", region)
    try:
        if kind == "user":
            qs.describe_user(AwsAccountId=account, Namespace=namespace, UserName=name)
        else:
            qs.describe_group(AwsAccountId=account, Namespace=namespace, GroupName=name)
    except ClientError as e:
        if _code(e) in _NOT_FOUND:
            return Finding(check, BLOCKER, f"{kind} {namespace}/{name} does not exist in QuickSight (identity region "
                                           f"{region})", fix)
        return _cannot_check(check, arn, f"quicksight:Describe{kind.capitalize()} in {region}", e)
    return Finding(check, OK, f"{kind} {namespace}/{name} exists ({region})")


# --- 5. Greengrass deployment target ------------------------------------------------------------------------------

_IOT_TARGET = re.compile(r"^arn:[^:]+:iot:[^:]*:\d{12}:(thinggroup|thing)/(.+)$")
_DEPLOYMENT_GONE = ("CANCELED", "INACTIVE")   # no longer what the target's devices are told to run


@dataclass(frozen=True)
class TargetKind:
    what: str
    describe: Callable   # (iot client, name) -> response; ResourceNotFoundException when it does not exist
    permission: str
    missing: str         # what to do, said after "<what> <name> does not exist; "
    fix: str             # formatted with name


TARGET_KINDS = {
    "thinggroup": TargetKind(
        "thing group", lambda iot, name: iot.describe_thing_group(thingGroupName=name), "iot:DescribeThingGroup",
        "create it and add the core devices",
        "aws iot create-thing-group --thing-group-name {name}, then add the core devices' things (aws iot "
        "add-thing-to-thing-group --thing-group-name {name} --thing-name <core>), or set "
        "-c greengrass_thing_group=<an existing group>"),
    "thing": TargetKind(
        "thing", lambda iot, name: iot.describe_thing(thingName=name), "iot:DescribeThing",
        "register the core device first",
        "install the Greengrass core software on the device (it registers thing {name}), or target another thing"),
}


def check_greengrass_targets(aws: Aws, assembly: Assembly) -> list:
    check, findings = "greengrass target", []
    for stack, logical_id, props in _resources_of(assembly, "AWS::GreengrassV2::Deployment"):
        try:
            arn = resolve(props.get("TargetArn"), aws.pseudo, stack, assembly)
        except Unresolved:
            findings.append(Finding(check, OK, f"note: the target of {stack.name}/{logical_id} is known only after "
                                               "deploy, not checked"))
            continue
        findings.extend(_check_deployment_target(aws, check, arn, set(props.get("Components", {}))))
    return findings


def _check_deployment_target(aws: Aws, check: str, arn: str, ours: set) -> list:
    m = _IOT_TARGET.match(arn)
    if not m:
        return [Finding(check, BLOCKER, f"{arn} is not a thing or thing group ARN",
                        "set -c greengrass_thing_group=<group name>")]
    kind, name = TARGET_KINDS[m.group(1)], m.group(2)
    try:
        kind.describe(aws.client("iot"), name)
    except ClientError as e:
        if _code(e) not in _NOT_FOUND:
            return [_cannot_check(check, f"{kind.what} {name}", kind.permission, e)]
        return [Finding(check, BLOCKER, f"{kind.what} {name} does not exist; {kind.missing}",
                        kind.fix.format(name=name))]
    return [Finding(check, OK, f"{kind.what} {name} exists"), _replaced_deployment(aws, arn, kind, name, ours)]


def _replaced_deployment(aws: Aws, arn: str, kind: TargetKind, name: str, ours: set) -> Finding:
    """A target has one deployment at a time: ours replaces the current one, and components only it lists are
    removed from the devices."""
    check, gg = "greengrass deployment", aws.client("greengrassv2")
    try:
        current = [d for d in gg.list_deployments(targetArn=arn, historyFilter="LATEST_ONLY")["deployments"]
                   if d.get("deploymentStatus") not in _DEPLOYMENT_GONE]
        theirs = {c for d in current for c in gg.get_deployment(deploymentId=d["deploymentId"]).get("components", {})}
    except ClientError as e:
        return _cannot_check(check, f"the deployments of {kind.what} {name}",
                             "greengrass:ListDeployments, greengrass:GetDeployment", e)
    if not current:
        return Finding(check, OK, f"{kind.what} {name} has no Greengrass deployment yet")
    shown = ", ".join(f"{d.get('deploymentName') or d['deploymentId']} ({d.get('deploymentStatus', '?')})"
                      for d in current)
    removed = sorted(theirs - ours)
    if removed:
        return Finding(check, WARNING, f"deploying replaces the group's deployment: components "
                                       f"{', '.join(removed)} would be removed from its devices (current "
                                       f"deployment of {kind.what} {name}: {shown})",
                       "deploy to a thing group of its own (-c greengrass_thing_group=<new group>), or go ahead if "
                       "those components are no longer wanted on these devices")
    return Finding(check, OK, f"{kind.what} {name}: current deployment {shown} has only our components "
                              f"({', '.join(sorted(theirs)) or 'none'}); ours replaces it")


# --- 6. imported IAM roles ----------------------------------------------------------------------------------------

ROLE_LISTS = {"AWS::IAM::ManagedPolicy": "Roles", "AWS::IAM::Policy": "Roles"}   # policy type -> its role list
IMPORTED_ROLE_FIX = "create role {name}, or change the setting that names it"


def imported_roles(assembly: Assembly, pseudo: Mapping[str, str]) -> dict:
    """Role name -> [(stack, "stack/LogicalId")] for every literal role name a policy of the templates is attached to
    that no template creates (a Ref to a template role is not literal)."""
    created = set()
    for stack, _, props in _resources_of(assembly, "AWS::IAM::Role"):
        try:
            created.add(resolve(props["RoleName"], pseudo, stack, assembly))
        except (KeyError, Unresolved):
            pass
    found: dict = {}
    for rtype, key in ROLE_LISTS.items():
        for stack, logical_id, props in _resources_of(assembly, rtype):
            for role in props.get(key, []):
                if isinstance(role, str) and role not in created:
                    found.setdefault(role, []).append((stack, f"{stack.name}/{logical_id}"))
    return found


def check_imported_roles(aws: Aws, assembly: Assembly) -> list:
    check, findings = "imported IAM role", []
    for role, users in sorted(imported_roles(assembly, aws.pseudo).items()):
        policies = ", ".join(label for _, label in users)
        try:
            state = _absent_if({"NoSuchEntity"}, functools.partial(aws.client("iam").get_role, RoleName=role))
        except ClientError as e:
            findings.append(_cannot_check(check, f"role {role}", "iam:GetRole", e))
            continue
        if state == FREE:
            findings.append(Finding(check, BLOCKER, f"role {role} does not exist; {policies} attaches a policy to it",
                                    IMPORTED_ROLE_FIX.format(name=role)))
        else:
            findings.append(Finding(check, OK, f"role {role} exists ({policies} attaches a policy to it)"))
    return findings


# --- 7. bootstrap asset bucket encryption -------------------------------------------------------------------------

DEFAULT_QUALIFIER = "hnb659fds"


def asset_bucket(aws: Aws, assembly: Assembly) -> str:
    """The default synthesizer's file asset bucket, ``cdk-<qualifier>-assets-<account>-<region>``; the qualifier is
    read from the bootstrap version parameter (``/cdk-bootstrap/<qualifier>/version``)."""
    qualifiers = [m.group(1) for m in map(re.compile(r"^/cdk-bootstrap/([^/]+)/version$").match, assembly.bootstrap)
                  if m]
    return f"cdk-{(qualifiers or [DEFAULT_QUALIFIER])[0]}-assets-{aws.account}-{aws.region}"


def check_asset_bucket_encryption(aws: Aws, assembly: Assembly) -> list:
    """Greengrass core devices download the component's artifacts from the asset bucket with their token exchange
    role: under a customer managed KMS key that role would also need kms:Decrypt on the key."""
    if not any(True for _ in _resources_of(assembly, "AWS::GreengrassV2::ComponentVersion")):
        return []
    check, bucket = "asset bucket encryption", asset_bucket(aws, assembly)
    try:
        rules = aws.client("s3").get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as e:
        if _code(e) == "ServerSideEncryptionConfigurationNotFoundError":
            rules = []
        elif _code(e) == "NoSuchBucket":
            return [Finding(check, WARNING, f"bootstrap asset bucket {bucket} not found (bootstrapped with "
                                            "--bootstrap-bucket-name, or not at all?)",
                            "see cdk bootstrap; check that bucket's default encryption by hand")]
        else:
            return [_cannot_check(check, f"the encryption of {bucket}", "s3:GetEncryptionConfiguration", e)]
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
    algorithm, key = default.get("SSEAlgorithm", "AES256"), default.get("KMSMasterKeyID")
    if not algorithm.startswith("aws:kms") or not key or key.startswith("alias/aws/"):
        return [Finding(check, OK, f"{bucket}: {algorithm}" + (f" with key {key}" if key else "")
                        + " (no key permission needed by the core devices)")]
    manager = _key_manager(aws, key)
    if manager == "AWS":
        return [Finding(check, OK, f"{bucket}: {algorithm} with the AWS managed key {key}")]
    return [Finding(check, WARNING,
                    f"{bucket} encrypts with {'customer managed ' if manager else ''}KMS key {key}"
                    + ("" if manager else " (could not tell whether customer or AWS managed)")
                    + ": Greengrass core devices' token exchange role would also need kms:Decrypt on that key to "
                      "download the component's artifacts",
                    f"grant kms:Decrypt on {key} to the token exchange role, or re-bootstrap with the AWS managed "
                    f"key (node_modules/.bin/cdk bootstrap aws://{aws.account}/{aws.region} "
                    "--bootstrap-kms-key-id AWS_MANAGED_KEY)")]


def _key_manager(aws: Aws, key: str) -> str | None:
    """AWS or CUSTOMER, None when KMS does not say (no kms:DescribeKey, a key of another account)."""
    try:
        return aws.client("kms").describe_key(KeyId=key)["KeyMetadata"].get("KeyManager")
    except ClientError:
        return None


# --- run and report -----------------------------------------------------------------------------------------------

CHECKS = (check_names, check_concurrency, check_bootstrap, check_quicksight, check_greengrass_targets,
          check_imported_roles, check_asset_bucket_encryption)


def run(assembly_dir, session, region: str | None = None) -> list:
    """All findings for the account of ``session``'s credentials (boto3-like: ``.client(name, region_name=)``)."""
    assembly = load_assembly(assembly_dir)
    literal = sorted({s.region for s in assembly.stacks if s.region})
    region = region or (literal[0] if literal else None) or getattr(session, "region_name", None) or DEFAULT_REGION
    aws = Aws(session, region)
    findings = [_target_finding(aws, assembly, literal)]
    for check in CHECKS:
        findings.extend(check(aws, assembly))
    return findings


def _target_finding(aws: Aws, assembly: Assembly, regions: list) -> Finding:
    detail = (f"account {aws.account} ({aws.caller}), region {aws.region}, stacks "
              + ", ".join(s.name for s in assembly.stacks))
    accounts = sorted({s.account for s in assembly.stacks if s.account and s.account != aws.account})
    if accounts:
        return Finding("target", BLOCKER, f"{detail}; the assembly targets account {', '.join(accounts)}",
                       f"use credentials of {', '.join(accounts)} (--profile), or synth with -c account={aws.account}")
    if any(r != aws.region for r in regions):
        return Finding("target", WARNING, f"{detail}; the stacks deploy to {', '.join(regions)}",
                       f"drop --region or use --region {regions[0]}")
    return Finding("target", OK, detail)


def render(findings: list) -> str:
    rows = [[f.check, f.status, f.detail, f.fix] for f in findings]
    return tabulate(rows, headers=["check", "status", "detail", "fix"], maxcolwidths=[None, None, 70, 70])


def summary(findings: list) -> str:
    counts = {s: sum(f.status == s for f in findings) for s in (BLOCKER, WARNING, OK)}
    verdict = "do not deploy yet" if counts[BLOCKER] else "ready to deploy"
    return f"preflight: {counts[BLOCKER]} BLOCKER, {counts[WARNING]} WARNING, {counts[OK]} ok — {verdict}"


def main(argv: list | None = None, session=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.ops.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="cdk.out", help="the synthesized cloud assembly (default: cdk.out)")
    parser.add_argument("--region", help="region to check (default: the stacks' region, else the profile's, "
                                         "else us-east-1)")
    parser.add_argument("--profile", help="AWS CLI profile of the target account")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        if session is None:
            session = boto3.Session(profile_name=args.profile)
        findings = run(args.app, session, region=args.region)
    except NoCredentialsError:
        print("preflight: no AWS credentials: configure them for the target account (aws configure, AWS_PROFILE "
              "or --profile)", file=sys.stderr)
        return 2
    except ProfileNotFound as e:
        print(f"preflight: {e}", file=sys.stderr)
        return 2
    except UsageError as e:
        print(f"preflight: {e}", file=sys.stderr)
        return 2
    print(render(findings))
    print(summary(findings))
    return 1 if any(f.status == BLOCKER for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
