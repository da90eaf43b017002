"""CloudWatch, IoT, Firehose, SNS and EventBridge rules behind the operations stack that no local tool checks.

- IoT metrics (https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html): rule metrics
  (`TopicMatch`, `RuleMessageThrottled`, `ParseError`) carry the `RuleName` dimension; rule *action* metrics
  (`Success`, `Failure`, `ErrorActionFailure`, `ErrorActionSuccess`) carry `RuleName` and `ActionType`. CloudWatch
  matches dimensions exactly, so an action metric asked for with `RuleName` alone has no data and its alarm never
  fires. The ActionType values are not listed there, so the templates sum over them with a Metrics Insights query.
- Metrics Insights alarms evaluate only the most recent three hours of data
  (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-alarm-create.html):
  period x evaluation periods <= 10 800 s.
- Alarm periods (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html,
  Period): 10, 20, 30 or a multiple of 60 seconds, and 10/20/30 only for high-resolution custom metrics, which AWS
  service metrics are not; period x evaluation periods at most 86 400 s below one-hour periods (604 800 s above).
- Firehose `DeliveryToS3.DataFreshness` is the age of the oldest record not yet delivered to S3
  (https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-metrics.html); a healthy stream holds
  records up to its buffering interval, and AWS recommends alarming when it exceeds that limit
  (https://docs.aws.amazon.com/firehose/latest/dev/firehose-cloudwatch-metrics-best-practices.html). The same
  delay applies to rows Athena can see, so the silent-device threshold must exceed it too.
- CloudWatch alarms publish to an encrypted SNS topic only if the key policy lets `cloudwatch.amazonaws.com` use
  the key (kms:Decrypt, kms:GenerateDataKey*); the AWS managed `alias/aws/sns` key cannot be given that
  (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
- EventBridge rate expressions (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html):
  `rate(value unit)`, a positive whole value, unit minute|minutes|hour|hours|day|days, singular exactly when the
  value is 1.
- CloudWatch Logs JSON filter patterns (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):
  `{ $.field = "string" }`, the selector starting with `$.`; a metric value is a number or a `$.` selector.
"""
from __future__ import annotations

import copy
import json
import re

import pytest

from tests.aws_rules.support import all_resources, render, resources

IOT_ACTION_METRICS = {"Success", "Failure", "ErrorActionFailure", "ErrorActionSuccess"}
IOT_RULE_METRICS = {"TopicMatch", "RuleMessageThrottled", "ParseError", "RuleNotFound"}
INSIGHTS_WINDOW_S = 3 * 3600
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
JSON_FILTER = re.compile(r'^\{ \$\.[A-Za-z_][A-Za-z0-9_.]* (=|!=) "[^"]*" \}$')


def alarm_queries(alarm: dict) -> list:
    """Every metric an alarm reads: (namespace, name, dimension names, period) or ("expression", text, period)."""
    p = alarm["Properties"]
    if "MetricName" in p:
        return [(p["Namespace"], p["MetricName"], {d["Name"] for d in p.get("Dimensions", [])}, p["Period"])]
    out = []
    for q in p["Metrics"]:
        if "MetricStat" in q:
            m = q["MetricStat"]["Metric"]
            out.append((m["Namespace"], m["MetricName"], {d["Name"] for d in m.get("Dimensions", [])},
                        q["MetricStat"]["Period"]))
        else:
            out.append(("expression", q["Expression"], q.get("Period")))
    return out


def iot_dimension_problems(templates: dict) -> list:
    problems = []
    for stack, lid, r in all_resources(templates):
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for q in alarm_queries(r):
            if q[0] == "AWS/IoT":
                _, name, dims, _ = q
                want = {"RuleName", "ActionType"} if name in IOT_ACTION_METRICS else {"RuleName"}
                if name in IOT_ACTION_METRICS | IOT_RULE_METRICS and dims != want:
                    problems.append(f"{stack}/{lid}: {name} with dimensions {sorted(dims)}, it has {sorted(want)}")
            elif q[0] == "expression" and '"AWS/IoT"' in q[1]:
                match = re.search(r'SUM\((\w+)\) FROM SCHEMA\("AWS/IoT", ([^)]*)\)', q[1])
                if not match:
                    problems.append(f"{stack}/{lid}: unexpected IoT query {q[1]}")
                    continue
                name, dims = match.group(1), {d.strip() for d in match.group(2).split(",")}
                want = {"RuleName", "ActionType"} if name in IOT_ACTION_METRICS else {"RuleName"}
                if dims != want:
                    problems.append(f"{stack}/{lid}: SCHEMA of {name} is {sorted(dims)}, the metric has "
                                    f"{sorted(want)}")
    return problems


def iot_rule_names_exist(templates: dict) -> list:
    rules = {r["Properties"]["RuleName"] for _, _, r in all_resources(templates) if r["Type"] == "AWS::IoT::TopicRule"}
    named = set()
    for _, _, r in all_resources(templates):
        if r["Type"] == "AWS::CloudWatch::Alarm":
            text = json.dumps(r["Properties"])
            named |= set(re.findall(r"RuleName = '([^']+)'", text))
            named |= {d["Value"] for q in r["Properties"].get("Metrics", []) if "MetricStat" in q
                      for d in q["MetricStat"]["Metric"].get("Dimensions", []) if d["Name"] == "RuleName"}
            named |= {d["Value"] for d in r["Properties"].get("Dimensions", []) if d["Name"] == "RuleName"}
    return sorted(named - rules)


def period_problems(templates: dict) -> list:
    problems = []
    for stack, lid, r in all_resources(templates):
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        evaluations = r["Properties"]["EvaluationPeriods"]
        for q in alarm_queries(r):
            period = q[-1]
            if period is None:
                continue
            if period % 60:
                problems.append(f"{stack}/{lid}: period {period} s is not a multiple of 60 (standard metrics)")
            limit = 86_400 if period < 3600 else 604_800
            if period * evaluations > limit:
                problems.append(f"{stack}/{lid}: {period} s x {evaluations} periods > {limit} s")
            if q[0] == "expression" and q[1].lstrip().upper().startswith("SELECT") \
                    and period * evaluations > INSIGHTS_WINDOW_S:
                problems.append(f"{stack}/{lid}: a Metrics Insights alarm sees only 3 h, not "
                                f"{period * evaluations} s")
    return problems


def buffering_seconds(templates: dict) -> int:
    (stream,) = [r for _, _, r in all_resources(templates) if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"]
    return stream["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]["IntervalInSeconds"]


def freshness_problems(templates: dict) -> list:
    buffer = buffering_seconds(templates)
    problems = []
    for stack, lid, r in all_resources(templates):
        if r["Type"] == "AWS::CloudWatch::Alarm" and any(q[1] == "DeliveryToS3.DataFreshness"
                                                           for q in alarm_queries(r)):
            if r["Properties"]["Threshold"] <= buffer:
                problems.append(f"{stack}/{lid}: freshness threshold {r['Properties']['Threshold']} s <= the "
                                f"{buffer} s buffering interval")
        if r["Type"] == "AWS::Lambda::Function":
            silent = r["Properties"].get("Environment", {}).get("Variables", {}).get("SILENT_MINUTES")
            if silent is not None and int(silent) * 60 <= buffer:
                problems.append(f"{stack}/{lid}: silent after {silent} min, Firehose may hold rows {buffer} s")
    return problems


def encrypted_topic_problems(templates: dict) -> list:
    problems = []
    for stack, template in templates.items():
        alarm_topics = {json.dumps(a) for _, r in resources(template, "AWS::CloudWatch::Alarm")
                        for a in r["Properties"].get("AlarmActions", []) + r["Properties"].get("OKActions", [])}
        keys = dict(resources(template, "AWS::KMS::Key"))
        for lid, topic in resources(template, "AWS::SNS::Topic"):
            if json.dumps({"Ref": lid}) not in alarm_topics:
                continue
            key = topic["Properties"].get("KmsMasterKeyId")
            if key is None:
                continue
            if isinstance(key, str):
                problems.append(f"{stack}/{lid}: alarms cannot use key {key} (AWS managed keys refuse CloudWatch)")
                continue
            policy = keys[key["Fn::GetAtt"][0]]["Properties"]["KeyPolicy"]["Statement"]
            granted = {a for s in policy if s["Effect"] == "Allow"
                       and s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
                       for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
            if not {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted:
                problems.append(f"{stack}/{lid}: key policy lets CloudWatch {sorted(granted) or 'nothing'}")
    return problems


def schedule_problems(templates: dict) -> list:
    problems = []
    for stack, lid, r in all_resources(templates):
        expression = r["Properties"].get("ScheduleExpression") if r["Type"] == "AWS::Events::Rule" else None
        if expression is None or expression.startswith("cron("):
            continue
        match = RATE.match(expression)
        if not match or int(match.group(1)) < 1 or (int(match.group(1)) == 1) != (not match.group(2).endswith("s")):
            problems.append(f"{stack}/{lid}: {expression!r} is not a valid rate expression")
    return problems


def filter_problems(templates: dict) -> list:
    problems = []
    for stack, lid, r in all_resources(templates):
        if r["Type"] != "AWS::Logs::MetricFilter":
            continue
        pattern = r["Properties"]["FilterPattern"]
        if pattern.startswith("{") and not JSON_FILTER.match(pattern):
            problems.append(f"{stack}/{lid}: JSON filter pattern {pattern!r}")
        for t in r["Properties"]["MetricTransformations"]:
            if not re.match(r"^(\$\.[A-Za-z_][A-Za-z0-9_.]*|\d+(\.\d+)?)$", t["MetricValue"]):
                problems.append(f"{stack}/{lid}: metric value {t['MetricValue']!r}")
    return problems


RULES = [iot_dimension_problems, iot_rule_names_exist, period_problems, freshness_problems,
         encrypted_topic_problems, schedule_problems, filter_problems]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_the_templates_keep_the_rule(templates, full_project, rule):
    assert rule(templates) == []
    assert rule(full_project.templates) == []


# -- each rule bites -------------------------------------------------------------------------------------------------
def ops_copy(templates) -> dict:
    return copy.deepcopy(templates)


def alarms_of(templates, needle):
    return [r for _, _, r in all_resources(templates)
            if r["Type"] == "AWS::CloudWatch::Alarm" and needle in r["Properties"]["AlarmName"]]


def test_an_action_metric_with_rule_name_only_is_refused(templates):
    broken = ops_copy(templates)
    (alarm,) = alarms_of(broken, "maskcam_inference_devices-action-failures")
    alarm["Properties"].pop("Metrics")
    alarm["Properties"].update({"Namespace": "AWS/IoT", "MetricName": "Failure", "Period": 300, "Statistic": "Sum",
                                "Dimensions": [{"Name": "RuleName", "Value": "maskcam_inference_devices"}]})
    assert len(iot_dimension_problems(broken)) == 1
    alarm["Properties"]["Dimensions"][0]["Value"] = "no_such_rule"
    assert iot_rule_names_exist(broken) == ["no_such_rule"]


def test_odd_periods_and_long_insights_windows_are_refused(templates):
    broken = ops_copy(templates)
    alarms_of(broken, "dlq-wifi-ingest")[0]["Properties"]["Period"] = 90
    (iot,) = alarms_of(broken, "maskcam_inference_devices-action-failures")
    iot["Properties"]["EvaluationPeriods"] = 48
    problems = period_problems(broken)
    assert any("90 s" in p for p in problems) and any("only 3 h" in p for p in problems)


def test_freshness_within_the_buffer_is_refused(templates):
    broken = ops_copy(templates)
    alarms_of(broken, "firehose-data-freshness")[0]["Properties"]["Threshold"] = 600
    assert len(freshness_problems(broken)) == 1


def test_an_unusable_key_is_refused(templates):
    broken = ops_copy(templates)
    for _, _, r in all_resources(broken):
        if r["Type"] == "AWS::KMS::Key":
            r["Properties"]["KeyPolicy"]["Statement"] = [
                s for s in r["Properties"]["KeyPolicy"]["Statement"]
                if s.get("Principal", {}).get("Service") != "cloudwatch.amazonaws.com"]
    assert len(encrypted_topic_problems(broken)) == 1
    for _, _, r in all_resources(broken):
        if r["Type"] == "AWS::SNS::Topic":
            r["Properties"]["KmsMasterKeyId"] = "alias/aws/sns"
    assert "AWS managed" in encrypted_topic_problems(broken)[0]


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1.5 hours)",
                                        "rate(5 seconds)"])
def test_bad_rate_expressions_are_refused(templates, expression):
    broken = ops_copy(templates)
    for _, _, r in all_resources(broken):
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]:
            r["Properties"]["ScheduleExpression"] = expression
    assert schedule_problems(broken)


def test_a_filter_pattern_without_selector_is_refused(templates):
    broken = ops_copy(templates)
    for _, _, r in all_resources(broken):
        if r["Type"] == "AWS::Logs::MetricFilter":
            r["Properties"]["FilterPattern"] = '{ message = "ingested" }'
            break
    assert len(filter_problems(broken)) == 1


def test_every_rendered_alarm_name_is_project_scoped(templates):
    names = [render(r["Properties"]["AlarmName"]) for _, _, r in all_resources(templates)
             if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert names and all(n.startswith("maskcam-") and len(n) <= 255 for n in names)


# -- dashboards: one Metrics Insights query per graph widget -------------------------------------------------------
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-limits.html: "Each
# GetMetricData operation can have only one query, but you can have multiple widgets in a dashboard that each include
# one query." A graph widget is one GetMetricData call, so a second SELECT in the same widget does not draw.
def dashboard_bodies(templates: dict) -> list[tuple[str, dict]]:
    return [(f"{stack}/{lid}", json.loads(render(r["Properties"]["DashboardBody"])))
            for stack, lid, r in all_resources(templates) if r["Type"] == "AWS::CloudWatch::Dashboard"]


def insights_queries(widget: dict) -> list[str]:
    out = []
    for entry in widget.get("properties", {}).get("metrics", []):
        for part in entry:
            if isinstance(part, dict) and re.match(r"^\s*SELECT\b", part.get("expression", ""), re.IGNORECASE):
                out.append(part["expression"])
    return out


def dashboard_insights_problems(templates: dict) -> list:
    problems = []
    for where, body in dashboard_bodies(templates):
        for widget in body.get("widgets", []):
            queries = insights_queries(widget)
            if len(queries) > 1:
                problems.append(f"{where}: widget {widget['properties'].get('title')!r} holds {len(queries)} "
                                "Metrics Insights queries (one per widget)")
    return problems


def test_every_dashboard_widget_holds_at_most_one_metrics_insights_query(templates, full_project):
    assert dashboard_insights_problems(templates) == []
    assert dashboard_insights_problems(full_project.templates) == []
    # the IoT action metrics are still on the dashboard, one query (a series per rule) each
    queries = [q for _, body in dashboard_bodies(templates) for w in body["widgets"] for q in insights_queries(w)]
    assert sorted(q.split(")")[0] for q in queries) == ["SELECT SUM(ErrorActionFailure", "SELECT SUM(Failure",
                                                        "SELECT SUM(Success"]
    assert all(q.endswith("GROUP BY RuleName") for q in queries)


def test_a_widget_with_two_metrics_insights_queries_is_refused(templates):
    broken = ops_copy(templates)
    for _, _, r in all_resources(broken):
        if r["Type"] == "AWS::CloudWatch::Dashboard":
            body = json.loads(render(r["Properties"]["DashboardBody"]))
            widget = next(w for w in body["widgets"] if insights_queries(w))
            widget["properties"]["metrics"].append(
                [{"expression": 'SELECT SUM(Failure) FROM SCHEMA("AWS/IoT", ActionType, RuleName) GROUP BY RuleName',
                  "id": "extra"}])
            r["Properties"]["DashboardBody"] = json.dumps(body)
    assert len(dashboard_insights_problems(broken)) == 1
