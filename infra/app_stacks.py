"""Builds every stack of the app from one ``Settings`` object and wires the validation gates."""
from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.settings import Settings
from infra.stacks.analytics_stack import AnalyticsStack
from infra.stacks.dashboard_stack import DashboardStack
from infra.stacks.device_stack import DeviceStack
from infra.stacks.operations_stack import OperationsStack
from infra.stacks.storage_stack import StorageStack
from infra.stacks.wifi_stack import WifiStack


@dataclass
class ProjectStacks:
    storage: StorageStack
    analytics: AnalyticsStack | None = None
    device: DeviceStack | None = None
    wifi: WifiStack | None = None
    dashboard: DashboardStack | None = None   # only with quicksight_principal_arn (see skip_message)
    operations: OperationsStack | None = None

    def all(self) -> list:
        return [s for s in vars(self).values() if s is not None]


def add_gates(app: cdk.App) -> None:
    """cdk-nag AwsSolutions as a validation plugin: an unacknowledged finding fails synth.

    CDK's own CloudFormation validation runs by default; ``@aws-cdk/core:validateAgainstDefaultRules`` in cdk.json
    turns its warnings into errors."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def build_stacks(app: cdk.App, settings: Settings) -> ProjectStacks:
    env = cdk.Environment(account=settings.account, region=settings.region)
    prefix = settings.project
    storage = StorageStack(app, f"{prefix}-storage", settings=settings, env=env,
                           description="Mask classifier: model and data buckets, Glue database, Athena workgroup")
    stacks = ProjectStacks(storage=storage)
    stacks.analytics = AnalyticsStack(
        app, f"{prefix}-analytics", settings=settings, env=env,
        data_bucket=storage.data_bucket, database=storage.database, workgroup=storage.workgroup,
        description="Mask classifier: IoT rules -> Firehose -> Parquet in S3 -> Glue table, Athena named queries")
    stacks.device = DeviceStack(app, f"{prefix}-device", settings=settings, env=env,
                                model_bucket=storage.model_bucket, data_bucket=storage.data_bucket,
                                description="Mask classifier on devices: DeepLens Lambda, Greengrass V2 component; "
                                            "frames uploaded to S3 classified in the cloud")
    stacks.wifi = WifiStack(app, f"{prefix}-wifi", settings=settings, env=env,
                            data_bucket=storage.data_bucket, database=storage.database,
                            workgroup=storage.workgroup,
                            description="Korean public Wi-Fi CSV ingest into Athena table free_wifi_standard_data")
    stacks.operations = OperationsStack(
        app, f"{prefix}-operations", settings=settings, env=env,
        functions={"wifi-ingest": stacks.wifi.ingest.function, "cloud-classifier": stacks.device.deeplens.function,
                   "athena-views": stacks.analytics.views.function},
        dead_letter_queues={"wifi-ingest": stacks.wifi.ingest.dead_letters,
                            "cloud-classifier": stacks.device.cloud.dead_letters},
        delivery_stream_name=stacks.analytics.delivery.stream_name,
        rule_names=list(stacks.analytics.rules.rule_names),
        workgroup=storage.workgroup, data_bucket=storage.data_bucket,
        wifi_log_group=stacks.wifi.ingest.function.log_group,
        description="Mask classifier operations: operator topic, pipeline alarms, device alerts, dashboard")
    if settings.quicksight_principal_arn:
        stacks.dashboard = DashboardStack(
            app, f"{prefix}-dashboard", settings=settings, env=env,
            data_bucket=storage.data_bucket, database=storage.database, workgroup=storage.workgroup,
            inference_table=stacks.analytics.table.table, wifi_table=stacks.wifi.table.table,
            views=stacks.analytics.views,
            description="Mask classifier: QuickSight Athena data source and datasets (compliance, free Wi-Fi)")
    for stack in stacks.all():
        cdk.Tags.of(stack).add("project", prefix)
    return stacks
