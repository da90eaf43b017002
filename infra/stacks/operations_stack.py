"""Operations: who is told when the pipeline or a device goes wrong. An SNS topic for operators, CloudWatch alarms on
the pipeline's own metrics, per-device business alerts (silent, low compliance) and an operations dashboard; every
part in docs/operations.md."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.alerts.queries import alert_queries
from functions.analytics import layout
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.device_alerts import SCHEDULED_FAILURES, AlertThresholds, DeviceAlerts
from infra.constructs.operations_dashboard import OperationsDashboard
from infra.constructs.operator_topic import OperatorTopic
from infra.constructs.pipeline_alarms import PipelineAlarms
from infra.lambda_runtime import acknowledge_runtime_choice, project_runtime, record_function_decisions
from infra.settings import Settings

ALERTS_LABEL = "device-alerts"


class OperationsStack(Stack):
    """Watches what it is given: ``functions`` and ``dead_letter_queues`` by label, the Firehose stream, the IoT
    rule names, the workgroup and the Wi-Fi ingest's log group. Exposes ``topic``, ``alarms``, ``alerts``,
    ``dashboard``."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, functions: Mapping[str, lambda_.IFunction],
                 dead_letter_queues: Mapping[str, sqs.IQueue], delivery_stream_name: str, rule_names: Sequence[str],
                 workgroup: AthenaWorkGroup, data_bucket: s3.IBucket, wifi_log_group: logs.ILogGroup,
                 **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        prefix = settings.project
        period = Duration.minutes(settings.alarm_period_minutes)
        self.topic = OperatorTopic(self, "Operators", display_name=f"{prefix} operations",
                                   emails=settings.alarm_emails)

        schedule = Duration.minutes(settings.alert_schedule_minutes)
        self.alerts = DeviceAlerts(
            self, "DeviceAlerts", project=prefix, schedule=schedule,
            thresholds=AlertThresholds(silent_minutes=settings.silent_device_minutes,
                                       compliance_min_percent=settings.compliance_min_percent,
                                       min_faces=settings.compliance_min_faces,
                                       window_hours=settings.compliance_window_hours,
                                       send_recovery=settings.alert_recovery,
                                       compliance_margin_percent=settings.compliance_recovery_margin_percent),
            queries=alert_queries(settings.glue_database, settings.compliance_window_hours),
            workgroup=workgroup, database_name=settings.glue_database, table_name=layout.TABLE,
            data_bucket=data_bucket, data_prefix=layout.DATA_PREFIX, topic=self.topic.topic,
            topic_key=self.topic.key, runtime=project_runtime(settings))
        acknowledge_runtime_choice(self.alerts.function, settings)
        record_function_decisions(self.alerts.function, failures=SCHEDULED_FAILURES)

        watched = {**functions, ALERTS_LABEL: self.alerts.function}
        self.alarms = PipelineAlarms(self, "Alarms", prefix=prefix, action=self.topic.action, period=period)
        self.alarms.iot_rules(rule_names)
        self.alarms.firehose(delivery_stream_name, freshness_seconds=settings.firehose_freshness_alarm_seconds)
        self.alarms.functions(watched)
        self.alarms.not_running(ALERTS_LABEL, self.alerts.function, schedule)
        self.alarms.dead_letter_queues(dead_letter_queues)
        self.alarms.wifi_ingest(wifi_log_group, reject_percent=settings.wifi_reject_alarm_percent)

        self.dashboard = OperationsDashboard(
            self, "Dashboard", prefix=prefix, period=period, rule_names=rule_names, stream_name=delivery_stream_name,
            freshness_seconds=settings.firehose_freshness_alarm_seconds, functions=watched,
            dead_letter_queues=dead_letter_queues, workgroup=workgroup.name,
            alarms=list(self.alarms.alarms.values()))
        CfnOutput(self, "OperatorTopicArn", value=self.topic.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=f"{prefix}-operations")
