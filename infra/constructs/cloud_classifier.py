"""The cloud side of the DeepLens function: frames uploaded under ``frames/<device_id>/`` of the data bucket are
classified by the same function (``maskcam.cloud``) and published to the device's inference topic.

The trigger is an EventBridge rule on the data bucket's "Object Created" events (the storage stack turns on
EventBridge delivery): an S3 bucket notification would live in the storage stack and point at this stack's function,
a cross-stack cycle. Failed invocations (after Lambda's retries) and events EventBridge could not deliver go to one
encrypted, TLS-only dead-letter queue."""
from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from maskcam.cloud import ERRORS_PREFIX, FRAMES_PREFIX, OUTCOMES_DIR
from infra.acknowledge import acknowledge_resource_wildcards
from infra.constructs.object_created_trigger import ObjectCreatedTrigger
from infra.grants import grant_listing, grant_objects

OUTCOMES_PREFIX = ERRORS_PREFIX + OUTCOMES_DIR   # under the data bucket's errors/ lifecycle rule


class CloudClassifierTrigger(Construct):
    """Exposes ``rule`` (events.Rule) and ``dead_letters`` (sqs.Queue). Configures ``function`` (environment,
    async retries, on-failure destination) and grants its ``role`` read on ``frames/`` and write on
    ``errors/frames/`` of ``bucket``; the model and topic permissions are the function's own (deeplens_function)."""

    def __init__(self, scope: Construct, id: str, *, function: lambda_.Function, role: iam.IRole,
                 bucket: s3.IBucket, model_bucket_name: str, model_prefix: str, inference_topic: str) -> None:
        super().__init__(scope, id)
        for key, value in {
            "MASKCAM_CLOUD_MODEL_BUCKET": model_bucket_name,
            "MASKCAM_CLOUD_MODEL_PREFIX": model_prefix,
            "MASKCAM_CLOUD_TOPIC": inference_topic,
            "MASKCAM_CLOUD_FRAMES_PREFIX": FRAMES_PREFIX,
            "MASKCAM_CLOUD_ERRORS_PREFIX": ERRORS_PREFIX,
        }.items():
            function.add_environment(key, value)

        grant_objects(role, bucket, actions=["s3:GetObject", "s3:GetObjectVersion"], prefixes=[FRAMES_PREFIX],
                      reason="Read uploaded frames: their names under frames/<device>/ are chosen by the cameras.")
        grant_objects(role, bucket, actions=["s3:PutObject"], prefixes=[ERRORS_PREFIX],
                      reason="Records of rejected frames and the per-object outcome records (errors/frames/.outcomes/) "
                             "are named after the frames, which the cameras name.")
        grant_objects(role, bucket, actions=["s3:GetObject"], prefixes=[OUTCOMES_PREFIX],
                      reason="The outcome record of each frame is looked up before publishing, so that a retried "
                             "event does not publish a frame's result twice.")
        # ListBucket on these prefixes only, so that a missing frame or outcome record reads as missing (404) rather
        # than forbidden (403, retried and then dead-lettered)
        grant_listing(role, bucket, prefixes=[FRAMES_PREFIX, OUTCOMES_PREFIX])

        trigger = ObjectCreatedTrigger(
            self, "FrameUploads", bucket=bucket, prefix=FRAMES_PREFIX, function=function,
            description="Objects created under frames/ of the data bucket -> cloud mask classifier")
        self.rule, self.dead_letters = trigger.rule, trigger.dead_letters


class FrameUploaders(Construct):
    """Who may upload frames: cameras with an IoT certificate get short-lived credentials from the AWS IoT credentials
    provider (role alias ``<project>-frame-uploader``) for a role that may put objects only under
    ``frames/<their own thing name>/`` (the ``credentials-iot:ThingName`` policy variable, set from the certificate's
    attached thing; https://docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws.html). The classifier
    takes the device id from that key level, so a camera cannot upload frames, and so write rows, as another device.
    Exposes ``role``, ``role_alias_name`` and ``iot_policy`` (attach it to the cameras' certificates)."""

    def __init__(self, scope: Construct, id: str, *, project: str, bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        own_frames = bucket.arn_for_objects(f"{FRAMES_PREFIX}${{credentials-iot:ThingName}}/*")
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
                             description="Cameras without on-device compute: upload frames under their own thing name")
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[own_frames]))
        self.role_alias_name = f"{project}-frame-uploader"
        alias = iot.CfnRoleAlias(self, "RoleAlias", role_alias=self.role_alias_name, role_arn=self.role.role_arn,
                                 credential_duration_seconds=3600)
        alias_arn = Stack.of(self).format_arn(service="iot", resource="rolealias", resource_name=self.role_alias_name,
                                              arn_format=ArnFormat.SLASH_RESOURCE_NAME)
        self.iot_policy = iot.CfnPolicy(self, "CameraPolicy", policy_name=f"{project}-frame-uploader",
                                        policy_document={"Version": "2012-10-17", "Statement": [
                                            {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate",
                                             "Resource": alias_arn}]})
        self.iot_policy.add_dependency(alias)
        acknowledge_resource_wildcards(
            self.role, [own_frames],
            "Each camera may only put objects under frames/<its own thing name>/ (credentials-iot:ThingName from "
            "its certificate); frame file names are chosen by the camera.")
