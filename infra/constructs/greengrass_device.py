"""Greengrass V2: what a core device needs to run the classifier component.

- ``GreengrassDeviceIdentity``: token exchange role (what the component's AWS calls and artifact downloads run as),
  its IoT role alias, and the IoT policy for the core devices' certificates, limiting each thing to its own topics
  through ``${iot:Connection.Thing.ThingName}``. That variable resolves on every connection of a core (the nucleus
  connects as ``<thing>``, ``<thing>#2``, ...) only when the certificate is attached to its thing exclusively
  (``attach-thing-principal --thing-principal-type EXCLUSIVE_THING``; with a non-exclusive attachment the client id
  must equal the thing name: https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html);
- ``EdgeClassifierComponent``: the component version (recipe + the code and the model export, both CDK assets) and,
  when a thing group is given, the deployment to it.

Both artifacts are CDK assets: the CLI uploads them before CloudFormation creates the component version, and
Greengrass checks that every artifact URI can be read when a version is created, so a version can never point at an
object that does not exist yet. The component version is derived from the recipe's content: versions are immutable,
and any change of code, model or configuration makes a new one."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from maskcam.manifest import MANIFEST_FILE, load_manifest
from infra.constructs.edge_code import EDGE_DIR, EDGE_EXCLUDES

THING = "${iot:Connection.Thing.ThingName}"
# Patch numbers stay below 2**31 (version parsers on the device use signed 32-bit integers).
_PATCH_HEX_DIGITS = 7


def _thing_topic(topic_filter: str, thing: str) -> str:
    return topic_filter.replace("+", thing)


def component_version(recipe_without_version: dict, major_minor: str = "1.0") -> str:
    """``<major>.<minor>.<patch>`` with the patch taken from a hash of the rest of the recipe, so the same content
    always gets the same version and different content a different one."""
    canonical = json.dumps(recipe_without_version, sort_keys=True, separators=(",", ":"))
    patch = int(hashlib.sha256(canonical.encode()).hexdigest()[:_PATCH_HEX_DIGITS], 16)
    return f"{major_minor}.{patch}"


class GreengrassDeviceIdentity(Construct):
    """Exposes ``token_exchange_role``, ``role_alias`` (CfnRoleAlias), ``role_alias_name`` and ``iot_policy``."""

    def __init__(self, scope: Construct, id: str, *, project: str, inference_topic: str) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.token_exchange_role = iam.Role(
            self, "TokenExchangeRole",
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass V2 core devices of the mask classifier: download its artifacts")
        self.role_alias_name = f"{project}-greengrass-tes"
        self.role_alias = iot.CfnRoleAlias(self, "RoleAlias", role_alias=self.role_alias_name,
                                           role_arn=self.token_exchange_role.role_arn,
                                           credential_duration_seconds=3600)

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="iot", resource=resource, resource_name=name,
                                    arn_format=ArnFormat.SLASH_RESOURCE_NAME)

        own = f"$aws/things/{THING}"
        self.iot_policy = iot.CfnPolicy(self, "CorePolicy", policy_name=f"{project}-greengrass-core",
                                        policy_document={
            "Version": "2012-10-17",
            "Statement": [
                # The nucleus opens extra MQTT connections as <thing>#2, #3, ... when it needs more subscriptions
                # (https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html).
                {"Effect": "Allow", "Action": "iot:Connect",
                 "Resource": [arn("client", THING), arn("client", f"{THING}#*")]},
                {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
                 "Resource": [arn("topic", f"{own}/*"), arn("topic", _thing_topic(inference_topic, THING))]},
                {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter", f"{own}/*")},
                {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate",
                 "Resource": arn("rolealias", self.role_alias_name)},
                {"Effect": "Allow",
                 "Action": ["greengrass:GetComponentVersionArtifact", "greengrass:ResolveComponentCandidates",
                            "greengrass:GetDeploymentConfiguration", "greengrass:ListThingGroupsForCoreDevice"],
                 "Resource": "*"},
            ]})

    def grant_artifact_download(self, asset: s3_assets.Asset) -> None:
        """What the nucleus's S3 downloader calls for one artifact: GetBucketLocation on its bucket, then GetObject
        on its key (AWS's default token exchange policy grants both;
        https://docs.aws.amazon.com/greengrass/v2/developerguide/device-service-role.html)."""
        self.token_exchange_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetBucketLocation"], resources=[asset.bucket.bucket_arn]))
        self.token_exchange_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]))


@dataclass(frozen=True)
class ComponentProps:
    component_name: str
    publisher: str
    inference_topic: str
    model_export: str                       # export directory (``python -m model export``)
    thing_group: str | None = None       # deploy to this thing group, or none


class EdgeClassifierComponent(Construct):
    """Exposes ``component`` (CfnComponentVersion), ``recipe`` (dict, tokens unresolved), ``version``,
    ``code_asset``, ``model_asset`` and ``deployment`` (CfnDeployment or None)."""

    def __init__(self, scope: Construct, id: str, *, props: ComponentProps,
                 identity: GreengrassDeviceIdentity) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        manifest = load_manifest(props.model_export)
        device_files = {MANIFEST_FILE, Path(manifest.path("onnx")).name}   # the device runs the ONNX export
        self.code_asset = s3_assets.Asset(self, "Code", path=str(EDGE_DIR), exclude=EDGE_EXCLUDES)
        self.model_asset = s3_assets.Asset(
            self, "Model", path=props.model_export,
            exclude=["*", *(f"!{name}" for name in sorted(device_files))])

        assets = (self.code_asset, self.model_asset)
        content = self._recipe(props, version=None, uris=[f"asset:{a.asset_hash}" for a in assets])
        self.version = component_version(content)
        self.recipe = self._recipe(props, version=self.version, uris=[a.s3_object_url for a in assets])
        self.component = greengrass.CfnComponentVersion(self, "Component",
                                                        inline_recipe=stack.to_json_string(self.recipe))
        for asset in assets:
            identity.grant_artifact_download(asset)

        self.deployment: greengrass.CfnDeployment | None = None
        if props.thing_group:
            self.deployment = greengrass.CfnDeployment(
                self, "Deployment",
                deployment_name=f"{props.publisher}-edge-classifier",
                target_arn=stack.format_arn(service="iot", resource="thinggroup", resource_name=props.thing_group,
                                            arn_format=ArnFormat.SLASH_RESOURCE_NAME),
                components={props.component_name: greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty(
                    component_version=self.component.attr_component_version)},
                # A device that cannot install or run the new version goes back to the previous one.
                deployment_policies=greengrass.CfnDeployment.DeploymentPoliciesProperty(
                    failure_handling_policy="ROLLBACK",
                    component_update_policy=greengrass.CfnDeployment.DeploymentComponentUpdatePolicyProperty(
                        action="NOTIFY_COMPONENTS", timeout_in_seconds=60)))

    def _recipe(self, props: ComponentProps, *, version: str | None, uris: list) -> dict:
        code_dir = "{artifacts:decompressedPath}/" + self.code_asset.asset_hash
        model_dir = "{artifacts:decompressedPath}/" + self.model_asset.asset_hash
        venv = "{work:path}/venv"
        topic = _thing_topic(props.inference_topic, "{iot:thingName}")
        # A virtual environment of the component's own: PEP 668 distributions (Debian 12, Ubuntu 23.04+, Raspberry
        # Pi OS bookworm) refuse `pip install --user` into the system Python.
        install = (f"set -e; if [ ! -x {venv}/bin/python ]; then python3 -m venv {venv} || {{ echo 'cannot create "
                   f"{venv}: install the python3-venv package (sudo apt install python3-venv)' >&2; exit 1; }}; fi; "
                   f"{venv}/bin/python -m pip install --disable-pip-version-check --quiet "
                   f"-r {code_dir}/requirements.txt")
        run = (f"cd {code_dir} && exec {venv}/bin/python -u -m maskcam --source '{{configuration:/source}}' "
               f"--model {model_dir} --backend onnx --detector '{{configuration:/detector}}' "
               f"--publisher ipc --topic '{topic}' --rate '{{configuration:/rate}}' "
               "--heartbeat '{configuration:/heartbeat}' --min-confidence '{configuration:/minConfidence}' "
               "--display none --spool {work:path}/spool")
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": props.component_name,
            "ComponentDescription": "Face detection + mask / no-mask classification; publishes one inference "
                                    "event per frame to " + props.inference_topic,
            "ComponentPublisher": props.publisher,
            "ComponentConfiguration": {"DefaultConfiguration": {
                "source": "0", "detector": "auto", "rate": "5", "heartbeat": "60", "minConfidence": "0.7",
                "accessControl": {"aws.greengrass.ipc.mqttproxy": {
                    f"{props.component_name}:mqttproxy:1": {
                        "policyDescription": "Publish inference events to this device's inference topic",
                        "operations": ["aws.greengrass#PublishToIoTCore"],
                        "resources": [props.inference_topic.replace("+", "*")]}}}}},
            "Manifests": [{
                "Platform": {"os": "linux"},
                "Lifecycle": {"Install": {"Script": install, "Timeout": 900}, "Run": run},
                "Artifacts": [{"Uri": uri, "Unarchive": "ZIP"} for uri in uris],
            }],
        }
        if version is not None:
            recipe["ComponentVersion"] = version
        return recipe
