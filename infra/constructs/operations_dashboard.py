"""The operators' CloudWatch dashboard: the pipeline from IoT to Athena, one row per hop, and the alarm states."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs import pipeline_metrics as m

WIDTH, HEIGHT = 8, 6


class OperationsDashboard(Construct):
    """``.dashboard`` named ``<prefix>-operations``."""

    def __init__(self, scope: Construct, id: str, *, prefix: str, period: Duration, rule_names: Sequence[str],
                 stream_name: str, freshness_seconds: int, functions: Mapping[str, lambda_.IFunction],
                 dead_letter_queues: Mapping[str, sqs.IQueue], workgroup: str,
                 alarms: Sequence[cw.IAlarm]) -> None:
        super().__init__(scope, id)
        p = period

        def graph(title, left, right=(), **kwargs):
            return cw.GraphWidget(title=title, left=list(left), right=list(right), width=WIDTH, height=HEIGHT,
                                  **kwargs)

        # A graph widget holds at most one Metrics Insights query (pipeline_metrics.iot_action_by_rule): one widget
        # per action metric, a series per rule; the throttles (a plain metric per rule) on their own.
        iot = [
            graph("IoT: messages in (TopicMatch per rule)",
                  [m.iot_rule_metric("TopicMatch", r, p) for r in rule_names]),
            graph("IoT: rule action failures (Failure)", [m.iot_action_by_rule("Failure", rule_names, p)]),
            graph("IoT: error action failures (ErrorActionFailure: messages lost)",
                  [m.iot_action_by_rule("ErrorActionFailure", rule_names, p)]),
        ]
        iot_more = [
            graph("IoT: actions succeeded (Success)", [m.iot_action_by_rule("Success", rule_names, p)]),
            graph("IoT: messages throttled (RuleMessageThrottled)",
                  [m.iot_rule_metric("RuleMessageThrottled", r, p) for r in rule_names]),
        ]
        firehose = [
            graph("Firehose: records in / delivered to S3",
                  [m.firehose_metric("IncomingRecords", stream_name, p),
                   m.firehose_metric("DeliveryToS3.Records", stream_name, p)],
                  [m.firehose_metric("IncomingBytes", stream_name, p),
                   m.firehose_metric("DeliveryToS3.Bytes", stream_name, p)]),
            graph("Firehose: data freshness (s, max)",
                  [m.firehose_metric("DeliveryToS3.DataFreshness", stream_name, p, "Maximum")],
                  left_annotations=[cw.HorizontalAnnotation(value=freshness_seconds, label="alarm")]),
            graph("Firehose: delivery success (avg) / failed conversions",
                  [m.firehose_metric("DeliveryToS3.Success", stream_name, p, "Average")],
                  [m.firehose_metric("FailedConversion.Records", stream_name, p)]),
        ]
        fns = list(functions.items())
        lambdas = [
            graph("Lambda: invocations", [f.metric_invocations(period=p, label=label) for label, f in fns]),
            graph("Lambda: errors / throttles",
                  [f.metric_errors(period=p, label=f"{label} errors") for label, f in fns],
                  [f.metric_throttles(period=p, label=f"{label} throttles") for label, f in fns]),
            graph("Lambda: duration (ms, p95)",
                  [f.metric_duration(period=p, statistic="p95", label=label) for label, f in fns]),
        ]
        storage = [
            graph("Dead-letter queues: messages visible",
                  [q.metric_approximate_number_of_messages_visible(period=p, statistic="Maximum", label=label)
                   for label, q in dead_letter_queues.items()]),
            graph(f"Athena: bytes scanned by workgroup {workgroup}", [m.athena_processed_bytes(workgroup, p)]),
            graph("Wi-Fi ingest: rows in / rejected",
                  [m.wifi_metric(prefix, "RowsIn", p), m.wifi_metric(prefix, "RowsRejected", p)],
                  [m.wifi_metric(prefix, "FilesUnusable", p)]),
        ]
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{prefix}-operations",
                                      default_interval=Duration.hours(24))
        self.dashboard.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24,
                                                        height=max(3, 1 + len(alarms) // 4)))
        for row in (iot, iot_more, firehose, lambdas, storage):
            self.dashboard.add_widgets(*row)
