"""IoT topic rules: one per inference topic filter, taking the device id from the topic (never from the payload),
adding the ingest time and the source topic, forwarding each message to Firehose as one record; failed actions land
under ``errors/iot-rule/`` of the data bucket with the original payload (base64) so nothing is dropped silently."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import layout
from maskcam import schema
from infra.grants import grant_objects


INGEST_EXPRESSIONS = {"ingest_ts": "timestamp()", "source_topic": "topic()"}


def error_prefix(rule: str) -> str:
    return f"{layout.IOT_ERRORS_PREFIX}{rule}/"


def error_key(rule: str) -> str:
    """S3 key of one failed message's error record (IoT substitution templates)."""
    return f"{error_prefix(rule)}${{parse_time('yyyy-MM-dd', timestamp())}}/${{timestamp()}}-${{newuuid()}}.json"


def device_id_expression(topic_filter: str) -> str:
    """``topic(n)`` of the filter's ``+`` level: the thing name the IoT policy lets a device publish under. A payload's
    own ``device_id`` is never read, so one device cannot write rows as another."""
    level = layout.device_topic_level(topic_filter)
    if level is None:
        raise ValueError(f"topic filter {topic_filter!r} has no '+' level to take the device id from")
    return f"topic({level})"


def rule_sql(topic_filter: str) -> str:
    """Selects every schema field (payload fields outside the schema are dropped), takes ``device_id`` from the topic
    and adds ``ingest_ts`` and ``source_topic`` (``layout.INGEST_COLUMNS``)."""
    fields = [name if name != "device_id" else f"{device_id_expression(topic_filter)} AS device_id"
              for name in schema.COLUMN_NAMES]
    fields += [f"{INGEST_EXPRESSIONS[name]} AS {name}" for name, _, _ in layout.INGEST_COLUMNS]
    return f"SELECT {', '.join(fields)} FROM '{topic_filter}'"


class InferenceRules(Construct):
    """``.rules``: topic filter -> CfnTopicRule (``.rule_names``: their names), each with a role of its own that may
    put records into ``stream`` and write objects under its own error prefix only (the alpha L2 action grants
    PutObject on the whole bucket)."""

    def __init__(self, scope: Construct, id: str, *, project: str, topics: Sequence[str], stream_name: str,
                 stream_arn: str, errors_bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        self.rules: dict[str, iot.CfnTopicRule] = {}
        self.rule_names: list[str] = []
        for topic_filter in topics:
            name = layout.rule_name(project, topic_filter)
            self.rule_names.append(name)
            role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
                            description=f"IoT rule {name}: Firehose records, failures under its error prefix")
            role.add_to_policy(iam.PolicyStatement(actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
                                                   resources=[stream_arn]))
            grant_objects(role, errors_bucket, actions=["s3:PutObject"], prefixes=[error_prefix(name)],
                          reason="The IoT error action writes one object per failed message with a generated key "
                                 "(timestamp + uuid) under this rule's own errors/iot-rule/<rule>/ prefix.")
            self.rules[topic_filter] = rule = iot.CfnTopicRule(
                self, name,
                rule_name=name,
                topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                    description=f"Inference events from {topic_filter} -> Firehose -> Parquet (Glue {layout.TABLE})",
                    sql=rule_sql(topic_filter),
                    aws_iot_sql_version="2016-03-23",
                    rule_disabled=False,
                    # One record per message: batch mode is only for SQL that evaluates to an array.
                    actions=[iot.CfnTopicRule.ActionProperty(firehose=iot.CfnTopicRule.FirehoseActionProperty(
                        delivery_stream_name=stream_name, role_arn=role.role_arn, separator="\n",
                        batch_mode=False))],
                    error_action=iot.CfnTopicRule.ActionProperty(s3=iot.CfnTopicRule.S3ActionProperty(
                        bucket_name=errors_bucket.bucket_name, key=error_key(name), role_arn=role.role_arn)),
                ))
            rule.node.add_dependency(role)
