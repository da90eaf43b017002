"""The device side: the DeepLens inference Lambda and the Greengrass V2 component running the same application,
and the same Lambda classifying frames that cameras without on-device compute upload to the data bucket."""
from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.cloud_classifier import CloudClassifierTrigger, FrameUploaders
from infra.constructs.deeplens_function import DeepLensFunction
from infra.constructs.greengrass_device import (ComponentProps, EdgeClassifierComponent,
                                                 GreengrassDeviceIdentity)
from infra.lambda_runtime import acknowledge_runtime_choice, project_runtime
from infra.settings import Settings
from infra.stacks.storage_stack import model_bucket_name


class DeviceStack(Stack):
    """Exposes ``deeplens`` (DeepLensFunction), ``cloud`` (CloudClassifierTrigger), ``frame_uploaders``
    (FrameUploaders), ``identity``
    (GreengrassDeviceIdentity) and ``component`` (EdgeClassifierComponent, None without ``model_export``: see
    ``component_skip_message``)."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, model_bucket: s3.IBucket,
                 data_bucket: s3.IBucket, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.deeplens = DeepLensFunction(
            self, "DeepLens", function_name=settings.lambda_function_name, runtime=project_runtime(settings),
            model_bucket=model_bucket, model_prefix=settings.model_prefix, topic_filters=settings.inference_topics,
            reserved_concurrency=settings.cloud_reserved_concurrency)
        acknowledge_runtime_choice(self.deeplens.function, settings)
        self.cloud = CloudClassifierTrigger(
            self, "CloudClassifier", function=self.deeplens.function, role=self.deeplens.role, bucket=data_bucket,
            model_bucket_name=model_bucket_name(settings.project), model_prefix=settings.model_prefix,
            inference_topic=settings.inference_topic)
        self.frame_uploaders = FrameUploaders(self, "FrameUploaders", project=settings.project, bucket=data_bucket)
        self.identity = GreengrassDeviceIdentity(self, "GreengrassIdentity", project=settings.project,
                                                 inference_topic=settings.inference_topic)
        self.component: EdgeClassifierComponent | None = None
        if settings.model_export:
            self.component = EdgeClassifierComponent(
                self, "EdgeClassifier", identity=self.identity,
                props=ComponentProps(component_name=settings.greengrass_component_name, publisher=settings.project,
                                     inference_topic=settings.inference_topic, model_export=settings.model_export,
                                     thing_group=settings.greengrass_thing_group))


def component_skip_message(settings: Settings) -> str | None:
    """One line saying why the Greengrass component is not built, or None when it is."""
    if settings.model_export:
        return None
    return (f"note: Greengrass component {settings.greengrass_component_name} skipped: it ships a model export; "
            "set -c model_export=<export directory> (docs/deploy.md)")
