"""AWS IoT rules that no local tool checks, on the synthesized analytics and device stacks.

- IoT SQL 2016-03-23 documents only the simple CASE form `CASE v WHEN t THEN r ... ELSE r END`, where each `t` is a
  value compared with `v` (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-case.html); a searched
  `CASE WHEN <condition>` is not in the reference.
- Firehose action: "When batchMode is true and the rule's SQL statement evaluates to an Array, each Array element
  forms one record in the PutRecordBatch request"
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-iot-topicrule-firehoseaction.html);
  aws-cdk issue 19501 reports no delivery at all with batch mode on SQL that returns one object.
- `topic(n)` returns the n-th level of the topic (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-function-topic);
  the IoT policy variable `${iot:Connection.Thing.ThingName}` binds a topic level to the connected thing
  (https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html). The device id must come from
  such a level, never from the payload.
- A Greengrass core connects with several MQTT client ids, `<thing>`, `<thing>#2`, ... (the nucleus's extra
  connections; https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html): the core policy must let
  each of them connect, and no client id that is not the thing's own (that would let one device disconnect another by
  taking its client id).
- Devices that call AWS with their certificate get the role behind an IoT role alias; `${credentials-iot:ThingName}`
  in that role's policy is the certificate's thing
  (https://docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws.html). Whatever such a role may write
  under `frames/` must be scoped to that variable, since the cloud classifier takes the device id from the key.
- Rule names: `^[a-zA-Z0-9_]+$`, 1-128 characters (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateTopicRule.html).
"""
from __future__ import annotations

import copy
import json
import re

from tests.aws_rules.support import as_list, core_device_policies, render, resources, statements_of_role

THING = "${iot:Connection.Thing.ThingName}"
RULE_NAME = re.compile(r"^[a-zA-Z0-9_]{1,128}$")
_FROM = re.compile(r"\bFROM\s+'([^']+)'", re.IGNORECASE)


def _rules(template: dict):
    for lid, rule in resources(template, "AWS::IoT::TopicRule"):
        yield lid, rule["Properties"]


def _device_level(sql: str):
    """The n of ``topic(n) AS device_id``, or None when device_id is computed any other way."""
    match = re.search(r"(?:^|,)\s*topic\((\d+)\)\s+AS\s+device_id\s*(?:,|\bFROM\b)", sql, re.IGNORECASE)
    return int(match.group(1)) if match else None


# -- rules ------------------------------------------------------------------------------------------------------------
def sql_problems(template: dict) -> list:
    problems = []
    for lid, props in _rules(template):
        payload = props["TopicRulePayload"]
        sql = payload["Sql"]
        if not RULE_NAME.match(props.get("RuleName", "")):
            problems.append(f"{lid}: rule name {props.get('RuleName')!r} is not [a-zA-Z0-9_], 1-128 characters")
        if payload.get("AwsIotSqlVersion") != "2016-03-23":
            problems.append(f"{lid}: SQL version {payload.get('AwsIotSqlVersion')} (the CASE reference is 2016-03-23)")
        if re.search(r"\bCASE\s+WHEN\b", sql, re.IGNORECASE):
            problems.append(f"{lid}: searched `CASE WHEN <condition>` is not IoT SQL (only `CASE v WHEN t`)")
        topic = _FROM.search(sql)
        levels = topic.group(1).split("/") if topic else []
        level = _device_level(sql)
        if level is None or level > len(levels) or levels[level - 1] != "+":
            problems.append(f"{lid}: device_id is not `topic(n)` of the topic filter's '+' level: {sql}")
        select = sql[:topic.start()] if topic else sql
        if re.search(r"\bdevice_id\b", re.sub(r"topic\(\d+\)\s+AS\s+device_id", "", select, flags=re.I)):
            problems.append(f"{lid}: the SQL reads the payload's device_id, which a device can set to anything")
    return problems


def batch_problems(template: dict) -> list:
    problems = []
    for lid, props in _rules(template):
        sql = props["TopicRulePayload"]["Sql"]
        for action in props["TopicRulePayload"].get("Actions", []):
            firehose = action.get("Firehose")
            if firehose and firehose.get("BatchMode") and not re.match(r"\s*SELECT\s+VALUE\b", sql, re.IGNORECASE):
                problems.append(f"{lid}: Firehose BatchMode is on, but the SQL returns one object per message, "
                                "not an array (no record would be delivered)")
    return problems


def identity_problems(analytics: dict, device: dict) -> list:
    """The topic level the rule takes device_id from must be the one the core devices' IoT policy binds to the
    thing name, for every topic filter the policy lets devices publish to."""
    problems = []
    publish = [render(r) for _, p in resources(device, "AWS::IoT::Policy")
               for s in p["Properties"]["PolicyDocument"]["Statement"] if "iot:Publish" in as_list(s["Action"])
               for r in as_list(s["Resource"])]
    topics = [arn.split(":topic/", 1)[1] for arn in publish if ":topic/" in arn]
    for lid, props in _rules(analytics):
        sql = props["TopicRulePayload"]["Sql"]
        topic_filter = _FROM.search(sql).group(1)
        level = _device_level(sql)
        for topic in topics:
            levels = topic.split("/")
            pattern = topic_filter.split("/")
            covered = len(levels) == len(pattern) and all(
                p == "+" or p == t for p, t in zip(pattern, levels, strict=True) if t != "*")
            if covered and (level is None or levels[level - 1] != THING):
                problems.append(f"{lid}: devices may publish to {topic}, but device_id comes from level {level}, "
                                f"which the policy does not bind to the thing name")
    return problems


def connect_problems(device: dict) -> list:
    problems = []
    for lid, policy in core_device_policies(device):
        clients = [render(r).split(":client/", 1)[1] for s in policy["Properties"]["PolicyDocument"]["Statement"]
                   if "iot:Connect" in as_list(s["Action"]) for r in as_list(s["Resource"])]
        if sorted(clients) != sorted([THING, f"{THING}#*"]):
            problems.append(f"{lid}: core devices may connect as {clients}; the nucleus needs exactly "
                            f"{THING} and {THING}#*")
    return problems


def device_write_problems(template: dict) -> list:
    problems = []
    for lid, role in resources(template, "AWS::IAM::Role"):
        if "credentials.iot.amazonaws.com" not in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]):
            continue
        for statement in statements_of_role(template, lid):
            writes = [a for a in as_list(statement["Action"]) if a.startswith("s3:Put") or a in ("s3:*", "*")]
            for resource in as_list(statement["Resource"]) if writes else []:
                arn = render(resource)
                if "*" in arn and "/frames/${credentials-iot:ThingName}/" not in arn:
                    problems.append(f"{lid}: devices may {writes} on {arn}, not only under their own thing name")
    return problems


# -- the synthesized stacks pass --------------------------------------------------------------------------------------
def test_the_rules_pass(full_project):
    analytics, device = full_project.templates["maskcam-analytics"], full_project.templates["maskcam-device"]
    assert len(list(_rules(analytics))) == 2
    assert sql_problems(analytics) == []
    assert batch_problems(analytics) == []
    assert identity_problems(analytics, device) == []
    assert connect_problems(device) == []
    assert device_write_problems(device) == []


def test_device_id_is_the_thing_level_of_each_topic(templates):
    sqls = {_FROM.search(p["TopicRulePayload"]["Sql"]).group(1): p["TopicRulePayload"]["Sql"]
            for _, p in _rules(templates["maskcam-analytics"])}
    assert "topic(3) AS device_id" in sqls["$aws/things/+/infer"]
    assert "topic(2) AS device_id" in sqls["maskcam/+/infer"]


# -- each rule bites --------------------------------------------------------------------------------------------------
OLD_SQL = ("SELECT schema_version, event_type, CASE WHEN isUndefined(device_id) OR isNull(device_id) THEN topic(2) "
           "ELSE device_id END AS device_id, ts FROM 'maskcam/+/infer'")


def _with(template: dict, **payload) -> dict:
    bad = copy.deepcopy(template)
    for _, rule in resources(bad, "AWS::IoT::TopicRule"):
        for key, value in payload.items():
            if key == "BatchMode":
                rule["Properties"]["TopicRulePayload"]["Actions"][0]["Firehose"]["BatchMode"] = value
            else:
                rule["Properties"]["TopicRulePayload"][key] = value
    return bad


def test_the_searched_case_and_a_payload_device_id_are_reported(templates):
    problems = sql_problems(_with(templates["maskcam-analytics"], Sql=OLD_SQL))
    assert any("CASE WHEN" in p for p in problems)
    assert any("device_id is not `topic(n)`" in p for p in problems)
    problems = sql_problems(_with(templates["maskcam-analytics"],
                                  Sql="SELECT device_id, ts FROM 'maskcam/+/infer'"))
    assert any("device_id is not `topic(n)`" in p for p in problems)


def test_a_device_id_from_a_fixed_level_is_reported(templates):
    problems = sql_problems(_with(templates["maskcam-analytics"],
                                  Sql="SELECT topic(1) AS device_id, ts FROM 'maskcam/+/infer'"))
    assert any("'+' level" in p for p in problems)


def test_batch_mode_on_object_sql_is_reported(templates):
    assert batch_problems(_with(templates["maskcam-analytics"], BatchMode=True))


def test_a_level_the_policy_does_not_bind_is_reported(full_project):
    analytics = _with(full_project.templates["maskcam-analytics"],
                      Sql="SELECT topic(1) AS device_id, ts FROM '+/+/infer'")
    assert identity_problems(analytics, full_project.templates["maskcam-device"])


def test_a_core_policy_without_the_extra_connections_is_reported(full_project):
    bad = copy.deepcopy(full_project.templates["maskcam-device"])
    for _, policy in core_device_policies(bad):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Action"] == "iot:Connect":
                statement["Resource"] = statement["Resource"][0]
    assert connect_problems(bad)


def test_a_device_role_writing_any_device_s_frames_is_reported(full_project):
    bad = copy.deepcopy(full_project.templates["maskcam-device"])
    for _, policy in resources(bad, "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "credentials-iot" in json.dumps(statement["Resource"]):
                statement["Resource"] = json.loads(json.dumps(statement["Resource"]).replace(
                    "${credentials-iot:ThingName}/", ""))
    assert device_write_problems(bad)
