"""Reading synthesized templates the way the services will: resources by type, intrinsic strings rendered for a
given account and region, Greengrass recipes parsed."""
from __future__ import annotations

import json
import re
from pathlib import Path
from collections.abc import Iterator

TOKEN = "<token>"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def resources(template: dict, kind: str) -> list[tuple[str, dict]]:
    """(logical id, resource) of every resource of type ``kind``."""
    return [(lid, r) for lid, r in template.get("Resources", {}).items() if r.get("Type") == kind]


def all_resources(templates: dict) -> Iterator[tuple[str, str, dict]]:
    """(stack name, logical id, resource) over every template."""
    for stack, template in templates.items():
        for lid, resource in template.get("Resources", {}).items():
            yield stack, lid, resource


def render(value, account: str | None = None, region: str | None = None) -> str:
    """A string property as the service will see it: ``Fn::Join``/``Fn::Sub``/pseudo-parameter ``Ref`` filled in
    (account and region only when given, else left as ``${AWS::AccountId}``); any other intrinsic becomes
    ``<token>``."""
    pseudo = dict(PSEUDO)
    if account:
        pseudo["AWS::AccountId"] = account
    if region:
        pseudo["AWS::Region"] = region
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(render(p, account, region) for p in parts)
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: pseudo.get(m.group(1), m.group(0)), value["Fn::Sub"])
    if isinstance(value, dict) and value.get("Ref") in pseudo:
        return pseudo[value["Ref"]]
    if isinstance(value, dict) and value.get("Ref", "").startswith("AWS::"):
        return "${%s}" % value["Ref"]
    return TOKEN


def recipes(template: dict) -> list[tuple[str, dict]]:
    """(logical id, parsed InlineRecipe) of every Greengrass component version."""
    return [(lid, json.loads(render(r["Properties"]["InlineRecipe"])))
            for lid, r in resources(template, "AWS::GreengrassV2::ComponentVersion")]


def asset_object_keys(assembly_dir: Path, stack: str) -> set:
    """S3 object keys of the file assets the CDK CLI uploads for ``stack`` before CloudFormation runs."""
    manifest = json.loads((Path(assembly_dir) / f"{stack}.assets.json").read_text())
    return {d["objectKey"] for asset in manifest.get("files", {}).values() for d in asset["destinations"].values()}


def statements_of_role(template: dict, role_id: str) -> list[dict]:
    """Every statement of the inline policies (AWS::IAM::Policy) attached to the role ``role_id``."""
    out = []
    for _, policy in resources(template, "AWS::IAM::Policy"):
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def core_device_policies(template: dict) -> list[tuple[str, dict]]:
    """The IoT policies for Greengrass core devices' certificates: those allowing Greengrass data-plane actions."""
    return [(lid, p) for lid, p in resources(template, "AWS::IoT::Policy")
            if any(a.startswith("greengrass:") for s in p["Properties"]["PolicyDocument"]["Statement"]
                   for a in as_list(s["Action"]))]


def token_exchange_roles(template: dict) -> list[str]:
    """Logical ids of the roles core devices assume: behind the role aliases their IoT policies let them use."""
    aliases = {render(r).rsplit(":rolealias/", 1)[-1] for _, p in core_device_policies(template)
               for s in p["Properties"]["PolicyDocument"]["Statement"]
               if "iot:AssumeRoleWithCertificate" in as_list(s["Action"]) for r in as_list(s["Resource"])}
    return [a["Properties"]["RoleArn"]["Fn::GetAtt"][0] for _, a in resources(template, "AWS::IoT::RoleAlias")
            if a["Properties"]["RoleAlias"] in aliases]
