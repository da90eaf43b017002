"""The cloud side of the DeepLens function: frames uploaded under ``frames/<device_id>/`` of the data bucket are
classified by the same function (``maskcam.cloud``) and published to the device's inference topic.

The trigger is an EventBridge rule on the data bucket's "Object Created" events (the storage stack turns on
EventBridge delivery): an S3 bucket notification would live in the storage stack and point at this stack's function,
a cross-stack cycle. Failed invocations (after Lambda's retries) and events EventBridge could not deliver go to one
encrypted, TLS-only dead-letter queue."""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.acknowledge import acknowledge_resource_wildcards
from infra.constructs.object_created_trigger import ObjectCreatedTrigger
from infra.settings import Settings
from infra.stacks.storage_stack import model_bucket_name

FRAMES_PREFIX = "frames/"          # maskcam.cloud.FRAMES_PREFIX
ERRORS_PREFIX = "errors/frames/"   # maskcam.cloud.ERRORS_PREFIX (under the data bucket's errors/ lifecycle rule)


class CloudClassifierTrigger(Construct):
    """Exposes ``rule`` (events.Rule) and ``dead_letters`` (sqs.Queue). Configures ``function`` (environment,
    async retries, on-failure destination) and grants its ``role`` read on ``frames/`` and write on
    ``errors/frames/`` of ``bucket``; the model and topic permissions are the function's own (deeplens_function)."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, function: lambda_.Function,
                 role: iam.IRole, bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        for key, value in {
            "MASKCAM_CLOUD_MODEL_BUCKET": model_bucket_name(settings.project),
            "MASKCAM_CLOUD_MODEL_PREFIX": settings.model_prefix,
            "MASKCAM_CLOUD_TOPIC": settings.inference_topic,
            "MASKCAM_CLOUD_FRAMES_PREFIX": FRAMES_PREFIX,
            "MASKCAM_CLOUD_ERRORS_PREFIX": ERRORS_PREFIX,
        }.items():
            function.add_environment(key, value)

        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[bucket.arn_for_objects(f"{FRAMES_PREFIX}*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{ERRORS_PREFIX}*")]))
        # ListBucket on frames/ only, so that a frame deleted before it is read reads as missing (404, rejected with
        # a record) rather than forbidden (403, retried and then dead-lettered)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{FRAMES_PREFIX}*"]}}))
        acknowledge_resource_wildcards(
            role, [bucket.arn_for_objects(f"{p}*") for p in (FRAMES_PREFIX, ERRORS_PREFIX)],
            "Object wildcards limited to one prefix of the data bucket each (frames/ to read uploaded frames, "
            "errors/frames/ to keep records of rejected ones): frame names are chosen by the cameras.")

        trigger = ObjectCreatedTrigger(
            self, "FrameUploads", bucket=bucket, prefix=FRAMES_PREFIX, function=function,
            description="Objects created under frames/ of the data bucket -> cloud mask classifier")
        self.rule, self.dead_letters = trigger.rule, trigger.dead_letters
