"""CloudWatch alarms on the pipeline's own metrics, every one notifying ``action`` on ALARM and on OK.

Each alarm's metric, threshold, period and missing-data treatment, and why, is in docs/operations.md; the
treatments follow how each metric is emitted: error counters exist only when something happened (missing = fine),
gauges are emitted while there is something to report.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs import pipeline_metrics as m

GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD
NOT_BREACHING, BREACHING = cw.TreatMissingData.NOT_BREACHING, cw.TreatMissingData.BREACHING
# What the Wi-Fi ingest Lambda logs per file (Powertools JSON, functions/wifi_ingest/handler.py ``ingest``)
WIFI_INGESTED, WIFI_UNUSABLE = "ingested", "unusable file"


class PipelineAlarms(Construct):
    """``.alarms``: alarm name -> cw.Alarm. Built from what it watches: IoT rule names, the Firehose stream name,
    the functions and dead-letter queues by label, the Wi-Fi ingest's log group."""

    def __init__(self, scope: Construct, id: str, *, prefix: str, action: cw.IAlarmAction, period: Duration) -> None:
        super().__init__(scope, id)
        self._prefix, self._action, self._period = prefix, action, period
        self.alarms: dict[str, cw.Alarm] = {}

    def _add(self, slug: str, metric: cw.IMetric, *, threshold: float, comparison: cw.ComparisonOperator,
             missing: cw.TreatMissingData, description: str, evaluation_periods: int = 1) -> cw.Alarm:
        name = f"{self._prefix}-{slug}"
        alarm = cw.Alarm(self, slug, alarm_name=name, metric=metric, threshold=threshold,
                         comparison_operator=comparison, evaluation_periods=evaluation_periods,
                         datapoints_to_alarm=evaluation_periods, treat_missing_data=missing,
                         alarm_description=description)
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[name] = alarm
        return alarm

    def iot_rules(self, rule_names: Sequence[str]) -> None:
        for rule in rule_names:
            self._add(f"iot-{rule}-action-failures", m.iot_action_metric("Failure", rule, self._period),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"IoT rule {rule}: an action (Firehose) failed; the message went to the error "
                                  "action (errors/iot-rule/ in the data bucket).")
            self._add(f"iot-{rule}-error-action-failures",
                      m.iot_action_metric("ErrorActionFailure", rule, self._period),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"IoT rule {rule}: the error action failed too, so messages were lost.")
            self._add(f"iot-{rule}-throttled", m.iot_rule_metric("RuleMessageThrottled", rule, self._period),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"IoT rule {rule}: the rules engine throttled messages (not processed).")

    def firehose(self, stream_name: str, *, freshness_seconds: int) -> None:
        self._add("firehose-delivery-to-s3", m.firehose_metric("DeliveryToS3.Success", stream_name, self._period,
                                                               "Average"),
                  threshold=1, comparison=LT, missing=NOT_BREACHING,
                  description="Firehose: some deliveries to S3 failed in the period (Success average below 1); "
                              "it retries for 24 h, then writes to errors/firehose/.")
        self._add("firehose-data-freshness", m.firehose_metric("DeliveryToS3.DataFreshness", stream_name,
                                                               self._period, "Maximum"),
                  threshold=freshness_seconds, comparison=GT, missing=NOT_BREACHING,
                  description=f"Firehose: the oldest record not yet in S3 is older than {freshness_seconds} s "
                              "(the buffer flushes every 900 s): delivery is stuck or falling behind.")
        self._add("firehose-format-conversion", m.firehose_metric("FailedConversion.Records", stream_name,
                                                                  self._period),
                  threshold=0, comparison=GT, missing=NOT_BREACHING,
                  description="Firehose: records failed JSON -> Parquet conversion (schema mismatch); they are "
                              "under errors/firehose/format-conversion-failed/.")

    def functions(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        for label, function in functions.items():
            self._add(f"lambda-{label}-errors", function.metric_errors(period=self._period, statistic="Sum"),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"Lambda {label}: invocations failed (see its log group).")
            self._add(f"lambda-{label}-throttles", function.metric_throttles(period=self._period, statistic="Sum"),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"Lambda {label}: invocations were throttled (account or reserved concurrency).")

    def not_running(self, label: str, function: lambda_.IFunction, every: Duration) -> None:
        """The function must run every ``every``: no invocation over three of those is an alarm (missing data is
        exactly that case, so it breaches)."""
        window = Duration.minutes(min(3 * int(every.to_minutes()), 24 * 60))
        self._add(f"lambda-{label}-not-running", function.metric_invocations(period=window, statistic="Sum"),
                  threshold=1, comparison=LT, missing=BREACHING,
                  description=f"Lambda {label} has not run for {int(window.to_minutes())} minutes although it is "
                              f"scheduled every {int(every.to_minutes())}: business alerts are not being evaluated.")

    def dead_letter_queues(self, queues: Mapping[str, sqs.IQueue]) -> None:
        for label, queue in queues.items():
            self._add(f"dlq-{label}", queue.metric_approximate_number_of_messages_visible(period=self._period,
                                                                                          statistic="Maximum"),
                      threshold=0, comparison=GT, missing=NOT_BREACHING,
                      description=f"Dead-letter queue of {label} holds messages: events that failed after all "
                                  "retries; inspect and redrive them.")

    def wifi_ingest(self, log_group: logs.ILogGroup, *, reject_percent: float) -> cw.Alarm | None:
        """Log-based metrics from the ingest's per-file log line (rows in, rows rejected, unusable files), the
        share of rejected rows and unusable files as alarms."""
        namespace = m.wifi_namespace(self._prefix)
        for name, message, value in (("RowsIn", WIFI_INGESTED, "$.rows_in"),
                                     ("RowsRejected", WIFI_INGESTED, "$.rows_rejected"),
                                     ("FilesUnusable", WIFI_UNUSABLE, "1")):
            logs.MetricFilter(self, f"Wifi{name}", log_group=log_group, metric_namespace=namespace, metric_name=name,
                              filter_pattern=logs.FilterPattern.string_value("$.message", "=", message),
                              metric_value=value, unit=cw.Unit.COUNT)
        share = cw.MathExpression(
            expression="IF(rows_in > 0, 100 * rejected / rows_in, 0)", period=self._period,
            using_metrics={"rows_in": m.wifi_metric(self._prefix, "RowsIn", self._period),
                           "rejected": m.wifi_metric(self._prefix, "RowsRejected", self._period)},
            label="rejected rows %")
        self._add("wifi-rejected-rows", share, threshold=reject_percent, comparison=GT, missing=NOT_BREACHING,
                  description=f"Wi-Fi ingest rejected more than {reject_percent:g}% of the rows uploaded in the "
                              "period; rejects and the report are under quarantine/.")
        return self._add("wifi-unusable-files", m.wifi_metric(self._prefix, "FilesUnusable", self._period),
                         threshold=0, comparison=GT, missing=NOT_BREACHING,
                         description="Wi-Fi ingest: an uploaded file could not be used at all (encoding, layout); "
                                     "its report under quarantine/ says why.")
