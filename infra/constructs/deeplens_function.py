"""The DeepLens inference Lambda: role ``deeplens_lambda``, its log group, a published version and the ``live``
alias a DeepLens project (or a Greengrass V1 group) points at. The same function classifies frames uploaded to S3
in the cloud (``maskcam.cloud``; trigger, permissions and configuration in ``cloud_classifier.py``); its cloud
dependencies (ONNX Runtime, OpenCV, numpy) come in a layer, which Greengrass V1 does not deploy to devices."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.acknowledge import acknowledge_resource_wildcards
from infra.constructs.edge_code import CLOUD_PRUNE, CLOUD_REQUIREMENTS, EDGE_DIR, EDGE_EXCLUDES
from infra.constructs.python_function import ROOT, PythonDependenciesLayer
from infra.grants import grant_listing, grant_objects
from infra.lambda_runtime import ASYNC_FAILURES, record_function_decisions
from infra.logs import project_log_group

HANDLER = "greengrassHelloWorld.function_handler"
ROLE_NAME = "deeplens_lambda"
ALIAS_NAME = "live"


def topic_arns(stack: Stack, topic_filters: Sequence[str]) -> list[str]:
    """IoT topic ARNs for MQTT topic filters: a ``+`` level becomes ``*`` (policies match ARNs, not filters)."""
    return [stack.format_arn(service="iot", resource="topic", resource_name=t.replace("+", "*"))
            for t in topic_filters]


class DeepLensFunction(Construct):
    """Exposes ``role``, ``function``, ``version`` and ``alias``."""

    def __init__(self, scope: Construct, id: str, *, function_name: str, runtime: lambda_.Runtime,
                 model_bucket: s3.IBucket, model_prefix: str, topic_filters: Sequence[str],
                 reserved_concurrency: int | None = None) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)

        # Named by CloudFormation, not /aws/lambda/<name>: an account that ran the workshop (or a second copy of
        # the project) already has that group, and creating it again would fail the deploy.
        self.log_group = project_log_group(self, "Logs", retention=logs.RetentionDays.ONE_MONTH)

        self.role = iam.Role(
            self, "Role", role_name=ROLE_NAME,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Mask-classifier inference Lambda: read the model export, publish inference events, "
                        "write its own logs (replaces the deprecated AWSLambdaFullAccess DeepLens role).")
        grant_objects(self.role, model_bucket, actions=["s3:GetObject"], prefixes=[model_prefix],
                      reason=f"Read access is limited to the objects of the published model export ({model_prefix}); "
                             "their file names are set by the export, so a key prefix is the tightest resource.")
        grant_listing(self.role, model_bucket, prefixes=[model_prefix])
        topics = topic_arns(stack, topic_filters)
        self.role.add_to_policy(iam.PolicyStatement(actions=["iot:Publish"], resources=topics))
        acknowledge_resource_wildcards(
            self.role, topics,
            "Inference topics carry the device's thing name as one level ($aws/things/<thing>/infer); the cloud-side "
            "function may publish for any device, but only to the inference topic.")
        self.log_group.grant_write(self.role)

        self.dependencies = PythonDependenciesLayer(
            self, "CloudDependencies", runtime=runtime, prune=CLOUD_PRUNE,
            requirements=CLOUD_REQUIREMENTS.relative_to(ROOT).as_posix(),
            description="numpy, OpenCV (headless), ONNX Runtime for the cloud classifier (maskcam.cloud)")
        self.function = lambda_.Function(
            self, "Function",
            function_name=function_name,
            description="Face-mask classifier: the DeepLens / Greengrass V1 loop on devices, frames uploaded to "
                        "S3 in the cloud (greengrassHelloWorld contract)",
            runtime=runtime,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(EDGE_DIR), exclude=EDGE_EXCLUDES),
            layers=[self.dependencies],
            role=self.role,
            log_group=self.log_group,
            timeout=Duration.seconds(60),   # a cold start downloads the model and loads OpenCV + ONNX Runtime
            memory_size=1536,               # CPU share for the Haar detector and the classifier
            # unset by default: accounts with a low concurrency quota cannot reserve any (make preflight checks it)
            reserved_concurrent_executions=reserved_concurrency,
        )
        self.version = self.function.current_version
        self.alias = lambda_.Alias(self, "Live", alias_name=ALIAS_NAME, version=self.version)

        record_function_decisions(self.function, failures=ASYNC_FAILURES)

