"""Greengrass V2: what a core device needs to run the classifier component.

- ``GreengrassDeviceIdentity``: token exchange role (what the component's AWS calls and artifact downloads run as),
  its IoT role alias, and the IoT policy for the core devices' certificates, limiting each thing to its own topics
  through ``${iot:Connection.Thing.ThingName}``;
- ``EdgeClassifierComponent``: the component version (recipe + the code artifact as a CDK asset + the model export
  from the model bucket) and, when a thing group is given, the deployment to it."""
from __future__ import annotations

from typing import Optional

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.acknowledge import acknowledge
from infra.constructs.deeplens_function import model_objects_arn, nag_arn
from infra.constructs.edge_code import EDGE_DIR, EDGE_EXCLUDES
from infra.settings import Settings

THING = "${iot:Connection.Thing.ThingName}"
MODEL_FILES = ("manifest.json", "{name}.onnx")  # the device runs the ONNX export with onnxruntime


def _thing_topic(topic_filter: str, thing: str) -> str:
    return topic_filter.replace("+", thing)


class GreengrassDeviceIdentity(Construct):
    """Exposes ``token_exchange_role``, ``role_alias`` (CfnRoleAlias), ``role_alias_name`` and ``iot_policy``."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.token_exchange_role = iam.Role(
            self, "TokenExchangeRole",
            assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
            description="Greengrass V2 core devices of the mask classifier: download its artifacts")
        self.role_alias_name = f"{settings.project}-greengrass-tes"
        self.role_alias = iot.CfnRoleAlias(self, "RoleAlias", role_alias=self.role_alias_name,
                                           role_arn=self.token_exchange_role.role_arn,
                                           credential_duration_seconds=3600)

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="iot", resource=resource, resource_name=name,
                                    arn_format=ArnFormat.SLASH_RESOURCE_NAME)

        own = f"$aws/things/{THING}"
        self.iot_policy = iot.CfnPolicy(self, "CorePolicy", policy_name=f"{settings.project}-greengrass-core",
                                        policy_document={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", THING)},
                {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
                 "Resource": [arn("topic", f"{own}/*"), arn("topic", _thing_topic(settings.inference_topic, THING))]},
                {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter", f"{own}/*")},
                {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate",
                 "Resource": arn("rolealias", self.role_alias_name)},
                {"Effect": "Allow",
                 "Action": ["greengrass:GetComponentVersionArtifact", "greengrass:ResolveComponentCandidates",
                            "greengrass:GetDeploymentConfiguration", "greengrass:ListThingGroupsForCoreDevice"],
                 "Resource": "*"},
            ]})


class EdgeClassifierComponent(Construct):
    """Exposes ``component`` (CfnComponentVersion), ``recipe`` (dict, tokens unresolved), ``code_asset`` and
    ``deployment`` (CfnDeployment or None)."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, model_bucket: s3.IBucket,
                 identity: GreengrassDeviceIdentity) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.code_asset = s3_assets.Asset(self, "Code", path=str(EDGE_DIR), exclude=EDGE_EXCLUDES)
        model_uris = [f"s3://{model_bucket.bucket_name}/{settings.model_prefix}"
                      f"{f.format(name=settings.model_name)}" for f in MODEL_FILES]
        self.recipe = self._recipe(settings, model_uris)
        self.component = greengrass.CfnComponentVersion(self, "Component",
                                                        inline_recipe=stack.to_json_string(self.recipe))

        role = identity.token_exchange_role
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[self.code_asset.bucket.arn_for_objects(self.code_asset.s3_object_key),
                       model_objects_arn(settings)]))
        acknowledge(role, f"AwsSolutions-IAM5[Resource::{nag_arn(stack, model_objects_arn(settings))}]",
                    "Core devices download only the published model export's objects under "
                    f"{settings.model_prefix}; the code artifact is one named asset object.")

        self.deployment: Optional[greengrass.CfnDeployment] = None
        if settings.greengrass_thing_group:
            self.deployment = greengrass.CfnDeployment(
                self, "Deployment",
                deployment_name=f"{settings.project}-edge-classifier",
                target_arn=stack.format_arn(service="iot", resource="thinggroup",
                                            resource_name=settings.greengrass_thing_group,
                                            arn_format=ArnFormat.SLASH_RESOURCE_NAME),
                components={settings.greengrass_component_name: greengrass.CfnDeployment
                            .ComponentDeploymentSpecificationProperty(
                                component_version=self.component.attr_component_version)})

    def _recipe(self, settings: Settings, model_uris: list) -> dict:
        code_dir = "{artifacts:decompressedPath}/" + self.code_asset.asset_hash
        topic = _thing_topic(settings.inference_topic, "{iot:thingName}")
        run = (f"cd {code_dir} && exec python3 -u -m maskcam --source '{{configuration:/source}}' "
               "--model {artifacts:path} --backend onnx --detector '{configuration:/detector}' "
               f"--publisher ipc --topic '{topic}' --rate '{{configuration:/rate}}' "
               "--heartbeat '{configuration:/heartbeat}' --display none --spool {work:path}/spool")
        return {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": settings.greengrass_component_name,
            "ComponentVersion": settings.greengrass_component_version,
            "ComponentDescription": "Face detection + mask / no-mask classification; publishes one inference "
                                    "event per frame to " + settings.inference_topic,
            "ComponentPublisher": settings.project,
            "ComponentConfiguration": {"DefaultConfiguration": {
                "source": "0", "detector": "haar", "rate": "5", "heartbeat": "60",
                "accessControl": {"aws.greengrass.ipc.mqttproxy": {
                    f"{settings.greengrass_component_name}:mqttproxy:1": {
                        "policyDescription": "Publish inference events to this device's inference topic",
                        "operations": ["aws.greengrass#PublishToIoTCore"],
                        "resources": [settings.inference_topic.replace("+", "*")]}}}}},
            "Manifests": [{
                "Platform": {"os": "linux"},
                "Lifecycle": {
                    "Install": {"Script": f"python3 -m pip install --user -r {code_dir}/requirements.txt",
                                "Timeout": 900},
                    "Run": run,
                },
                "Artifacts": [{"Uri": self.code_asset.s3_object_url, "Unarchive": "ZIP"}]
                + [{"Uri": uri} for uri in model_uris],
            }],
        }
