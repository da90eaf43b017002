"""Business alerts per device (silent camera, low mask compliance) without AWS IoT Events (ended 2026-05-20): a
Lambda (``functions/alerts``) on an EventBridge schedule runs two of the named Athena queries in the project's
workgroup, keeps each device's episode in a DynamoDB table and publishes to the operator topic once per episode
(many devices silent in one run: one fleet-wide message). Nothing is added per device.

Covered: every device with a heartbeat *or* an inference event that arrived (``ingest_ts``) in the lookback (the
``dt`` partitions of today and yesterday), and every device with a silent episode open in the table. Not covered
(docs/operations.md, "What is covered"): a device that never sent anything, or whose last event is older than the
lookback when the evaluator first sees the data (dead before the first deploy, or while the evaluator was stopped
for over a day), and a device whose clock is more than a day behind (its events are in partitions outside the
lookback): those need an inventory of expected devices, which nothing here keeps."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.alerts.queries import COMPLIANCE, HEARTBEATS
from infra.acknowledge import skip_checkov
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.python_function import PythonFunction
from infra.grants import grant_listing, grant_objects
from infra.logs import function_role

SCHEDULED_FAILURES = ("Invoked by an EventBridge schedule without retries: a failed run is superseded by the next one "
                      "minutes later and raises the function's Errors alarm; a dead-letter queue would only collect "
                      "stale schedule events.")


@dataclass(frozen=True)
class AlertThresholds:
    silent_minutes: int
    compliance_min_percent: float
    min_faces: int
    window_hours: int
    send_recovery: bool
    compliance_margin_percent: float = 5.0


class DeviceAlerts(Construct):
    """``.function`` (the evaluator), ``.table`` (episode state), ``.rule`` (the schedule), ``.schedule``."""

    def __init__(self, scope: Construct, id: str, *, project: str, schedule: Duration, thresholds: AlertThresholds,
                 queries: Mapping[str, str], workgroup: AthenaWorkGroup, database_name: str, table_name: str,
                 data_bucket: s3.IBucket, data_prefix: str, topic: sns.ITopic, topic_key: kms.IKey,
                 runtime: lambda_.Runtime) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.schedule = schedule
        # State is rebuilt by the next runs when lost (at worst one repeated message per open episode): destroyed
        # with the stack like the other compute resources.
        self.table = dynamodb.Table(
            self, "Episodes", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.DESTROY)
        skip_checkov(self.table, "CKV_AWS_119",
                     "Encrypted with the AWS managed DynamoDB key; the table holds device ids, times and compliance "
                     "figures per alert episode, no personal data, so a customer key is not worth its cost "
                     "(docs/kms.md).")

        role, log_group = function_role(
            self, description="Device alerts: run two Athena queries, keep episode state, notify operators")
        seconds = int(schedule.to_seconds())
        self.function = PythonFunction(
            self, "Function", package="functions/alerts", handler="functions.alerts.handler.handler",
            runtime=runtime, role=role, log_group=log_group, memory_size=256,
            timeout=Duration.seconds(max(30, min(seconds - 10, 300))),   # done before the next run starts
            description="Silent-device and low-compliance alerts: Athena -> evaluation -> SNS, once per episode",
            environment={
                "WORKGROUP": workgroup.name, "STATE_TABLE": self.table.table_name, "TOPIC_ARN": topic.topic_arn,
                "PROJECT": project, "HEARTBEATS_SQL": queries[HEARTBEATS], "COMPLIANCE_SQL": queries[COMPLIANCE],
                "SILENT_MINUTES": str(thresholds.silent_minutes),
                "COMPLIANCE_MIN": repr(thresholds.compliance_min_percent / 100),
                "COMPLIANCE_MARGIN": repr(thresholds.compliance_margin_percent / 100),
                "MIN_FACES": str(thresholds.min_faces), "WINDOW_HOURS": str(thresholds.window_hours),
                "SEND_RECOVERY": "true" if thresholds.send_recovery else "false",
            })
        self.function.configure_async_invoke(retry_attempts=0, max_event_age=Duration.seconds(max(60, seconds)))
        self.rule = events.Rule(self, "Schedule", schedule=events.Schedule.rate(schedule),
                                description=f"Every {int(schedule.to_minutes())} min: evaluate device alerts",
                                targets=[targets.LambdaFunction(self.function, retry_attempts=0)])
        self._grant(role, stack, workgroup, database_name, table_name, data_bucket, data_prefix, topic, topic_key)

    def _grant(self, role: iam.Role, stack: Stack, workgroup: AthenaWorkGroup, database: str, table: str,
               bucket: s3.IBucket, data_prefix: str, topic: sns.ITopic, key: kms.IKey) -> None:
        """SELECT on one table in one workgroup, read/write of its own state items, publish to one topic."""
        for statement in (
            iam.PolicyStatement(sid="QueryInWorkGroup",
                                actions=["athena:StartQueryExecution", "athena:GetQueryExecution",
                                         "athena:GetQueryResults"],
                                resources=[stack.format_arn(service="athena", resource="workgroup",
                                                            resource_name=workgroup.name)]),
            iam.PolicyStatement(sid="ReadTableSchema",
                                actions=["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"],
                                resources=[stack.format_arn(service="glue", resource="catalog"),
                                           stack.format_arn(service="glue", resource="database",
                                                            resource_name=database),
                                           stack.format_arn(service="glue", resource="table",
                                                            resource_name=f"{database}/{table}")]),
            iam.PolicyStatement(sid="BucketLocation", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
            iam.PolicyStatement(sid="EpisodeState", actions=["dynamodb:Scan", "dynamodb:PutItem"],
                                resources=[self.table.table_arn]),
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[topic.topic_arn]),
            iam.PolicyStatement(sid="NotifyEncrypted", actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                resources=[key.key_arn]),
        ):
            role.add_to_policy(statement)
        grant_objects(role, bucket, actions=["s3:GetObject"], prefixes=[data_prefix],
                      reason="Athena reads the table's Parquet files, which Firehose names itself, under inference/ "
                             "only (read, no write).")
        grant_objects(role, bucket, actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                      prefixes=[workgroup.results_prefix],
                      reason="Athena writes and the function reads query results named per query execution under "
                             "the workgroup's result prefix only.")
        grant_listing(role, bucket, prefixes=[data_prefix, workgroup.results_prefix])
