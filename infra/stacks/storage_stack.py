"""Stateful resources every other stack builds on; retained on stack deletion."""
from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics.layout import DATA_PREFIX, ERRORS_PREFIX
from maskcam.cloud import FRAMES_PREFIX
from functions.wifi_ingest.layout import QUARANTINE_PREFIX, TABLE_PREFIX
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.secure_bucket import AccessLogsBucket, SecureBucket
from infra.l1 import default_child
from infra.settings import Settings
from infra.settings import model_bucket_name as settings_bucket_name

ATHENA_RESULTS_PREFIX = "athena-results/"
# Everything in the data bucket the system derives or receives from machines (not raw/, people's uploads).
DERIVED_PREFIXES = (DATA_PREFIX, ERRORS_PREFIX, ATHENA_RESULTS_PREFIX, TABLE_PREFIX, QUARANTINE_PREFIX, FRAMES_PREFIX)


def model_bucket_name(project: str) -> str:
    """The model bucket's name in the deploying account and region. Other stacks build IAM ARNs from it so their
    policies stay readable (and acknowledgeable) instead of embedding cross-stack references."""
    return settings_bucket_name(project, Aws.ACCOUNT_ID, Aws.REGION)


class StorageStack(Stack):
    """Model bucket (``deeplens-`` prefix, as DeepLens requires), data bucket, Glue database, Athena workgroup.

    Kept apart from the compute stacks so those can be destroyed and redeployed without touching data."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)

        self.access_logs = AccessLogsBucket(self, "AccessLogs")

        self.model_bucket = SecureBucket(
            self, "ModelBucket",
            access_logs=self.access_logs,
            bucket_name=model_bucket_name(settings.project),
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
        )

        self.data_bucket = SecureBucket(
            self, "DataBucket",
            access_logs=self.access_logs,
            lifecycle_rules=[
                s3.LifecycleRule(id="athena-results", prefix=ATHENA_RESULTS_PREFIX,
                                 expiration=Duration.days(30)),
                s3.LifecycleRule(id="rejected-events", prefix=ERRORS_PREFIX, expiration=Duration.days(90)),
                # Old versions of what the system writes expire; raw/ keeps every version: it is the only copy of
                # what people uploaded.
                *(s3.LifecycleRule(id=f"noncurrent-{prefix.strip('/')}", prefix=prefix,
                                   noncurrent_version_expiration=Duration.days(30)) for prefix in DERIVED_PREFIXES),
            ],
        )

        # Object-created events go to EventBridge, where consumers in other stacks (the Wi-Fi ingest) subscribe.
        # Set on the L1: the L2 flag would add a notifications custom resource, and an S3 notification to a function
        # in another stack would make the two stacks depend on each other.
        default_child(self.data_bucket, s3.CfnBucket).notification_configuration = \
            s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True))

        self.database = glue.Database(
            self, "Database",
            database_name=settings.glue_database,
            description="Mask-classifier inference results and Korean public Wi-Fi data (Athena).",
        )

        self.workgroup = AthenaWorkGroup(
            self, "WorkGroup",
            name=f"{settings.project}-analytics",
            results_bucket=self.data_bucket,
            results_prefix=ATHENA_RESULTS_PREFIX,
            bytes_scanned_cutoff=settings.athena_bytes_scanned_cutoff_mb * 1024 * 1024,
        )
