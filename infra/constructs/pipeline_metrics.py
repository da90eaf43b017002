"""The CloudWatch metrics the pipeline alarms and the operations dashboard read, defined once.

Sources (each checked in tests/aws_rules/test_operations.py):
- IoT rules: https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html (rule metrics carry
  ``RuleName``; rule *action* metrics carry ``RuleName`` and ``ActionType``);
- Firehose: https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html;
- Athena: https://docs.aws.amazon.com/athena/latest/ug/query-metrics-viewing.html (published per query with
  ``QueryState``, ``QueryType`` and ``WorkGroup``, when the workgroup publishes metrics).
"""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

IOT, FIREHOSE, ATHENA = "AWS/IoT", "AWS/Firehose", "AWS/Athena"


def wifi_namespace(project: str) -> str:
    """Namespace of the Wi-Fi ingest's log-based metrics (custom namespaces may not start with ``AWS/``)."""
    return f"{project}/WifiIngest"


def iot_rule_metric(name: str, rule: str, period: Duration) -> cw.Metric:
    """A rule metric (``TopicMatch``, ``RuleMessageThrottled``, ``ParseError``): dimension ``RuleName`` only."""
    return cw.Metric(namespace=IOT, metric_name=name, dimensions_map={"RuleName": rule}, statistic="Sum",
                     period=period)


def iot_action_metric(name: str, rule: str, period: Duration) -> cw.MathExpression:
    """A rule action metric (``Failure``, ``ErrorActionFailure``, ``Success``) summed over every ``ActionType`` of
    ``rule``. These metrics exist only per (RuleName, ActionType); the documentation does not list the ActionType
    values, so a Metrics Insights query over the schema takes all of them instead of guessing one spelling."""
    return cw.MathExpression(
        expression=f"SELECT SUM({name}) FROM SCHEMA(\"{IOT}\", ActionType, RuleName) WHERE RuleName = '{rule}'",
        period=period, label=f"{name} {rule}")


def iot_action_by_rule(name: str, rules: Sequence[str], period: Duration) -> cw.MathExpression:
    """The same action metric for the dashboard: one Metrics Insights query for all of ``rules``, one series per
    rule (``GROUP BY RuleName``). A graph widget may hold only one Metrics Insights query
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-limits.html), so
    each metric gets a widget of its own with this one query."""
    where = " OR ".join(f"RuleName = '{rule}'" for rule in rules)
    return cw.MathExpression(
        expression=f"SELECT SUM({name}) FROM SCHEMA(\"{IOT}\", ActionType, RuleName) WHERE {where} GROUP BY RuleName",
        period=period, label="")


def firehose_metric(name: str, stream_name: str, period: Duration, statistic: str = "Sum") -> cw.Metric:
    return cw.Metric(namespace=FIREHOSE, metric_name=name, dimensions_map={"DeliveryStreamName": stream_name},
                     statistic=statistic, period=period)


def wifi_metric(project: str, name: str, period: Duration) -> cw.Metric:
    return cw.Metric(namespace=wifi_namespace(project), metric_name=name, statistic="Sum", period=period)


def athena_processed_bytes(workgroup: str, period: Duration) -> cw.MathExpression:
    """Bytes scanned by every query of ``workgroup`` (a SEARCH over the per-query-state/type series, summed)."""
    search = (f"SEARCH('{{{ATHENA},QueryState,QueryType,WorkGroup}} MetricName=\"ProcessedBytes\" "
              f"WorkGroup=\"{workgroup}\"', 'Sum', {int(period.to_seconds())})")
    return cw.MathExpression(expression=f"SUM({search})", period=period, label=f"ProcessedBytes {workgroup}")
