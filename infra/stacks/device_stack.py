"""The device side: the DeepLens inference Lambda and the Greengrass V2 component running the same application,
and the same Lambda classifying frames that cameras without on-device compute upload to the data bucket."""
from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constructs.cloud_classifier import CloudClassifierTrigger
from infra.constructs.deeplens_function import DeepLensFunction
from infra.constructs.greengrass_device import EdgeClassifierComponent, GreengrassDeviceIdentity
from infra.settings import Settings


class DeviceStack(Stack):
    """Exposes ``deeplens`` (DeepLensFunction), ``cloud`` (CloudClassifierTrigger), ``identity``
    (GreengrassDeviceIdentity) and ``component`` (EdgeClassifierComponent)."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, model_bucket: s3.IBucket,
                 data_bucket: s3.IBucket, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.deeplens = DeepLensFunction(self, "DeepLens", settings=settings, model_bucket=model_bucket)
        self.cloud = CloudClassifierTrigger(self, "CloudClassifier", settings=settings,
                                            function=self.deeplens.function, role=self.deeplens.role,
                                            bucket=data_bucket)
        self.identity = GreengrassDeviceIdentity(self, "GreengrassIdentity", settings=settings)
        self.component = EdgeClassifierComponent(self, "EdgeClassifier", settings=settings,
                                                 model_bucket=model_bucket, identity=self.identity)
