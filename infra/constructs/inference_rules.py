"""IoT topic rules: one per inference topic filter, taking the device id from the topic (never from the payload),
adding the ingest time and the source topic, forwarding each message to Firehose as one record; failed actions land under
``errors/iot-rule/`` of the data bucket with the original payload (base64) so nothing is dropped silently."""
from __future__ import annotations

from typing import Sequence

from aws_cdk import aws_iot_actions_alpha as actions
from aws_cdk import aws_iot_alpha as iot
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import layout
from functions.edge.maskcam import schema
from infra.acknowledge import acknowledge_resource_wildcards


INGEST_EXPRESSIONS = {"ingest_ts": "timestamp()", "source_topic": "topic()"}


def error_key(rule: str) -> str:
    """S3 key of one failed message's error record (IoT substitution templates)."""
    return f"{layout.IOT_ERRORS_PREFIX}{rule}/${{parse_time('yyyy-MM-dd', timestamp())}}/${{timestamp()}}-${{newuuid()}}.json"


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
    """``.rules``: topic filter -> TopicRule."""

    def __init__(self, scope: Construct, id: str, *, project: str, topics: Sequence[str],
                 stream: firehose.IDeliveryStream, errors_bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        self.rules = {}
        for topic_filter in topics:
            name = layout.rule_name(project, topic_filter)
            self.rules[topic_filter] = iot.TopicRule(
                self, name,
                topic_rule_name=name,
                description=f"Inference events from {topic_filter} -> Firehose -> Parquet (Glue {layout.TABLE})",
                sql=iot.IotSql.from_string_as_ver20160323(rule_sql(topic_filter)),
                # One record per message: batch mode is only for SQL that evaluates to an array.
                actions=[actions.FirehosePutRecordAction(
                    stream, batch_mode=False, record_separator=actions.FirehoseRecordSeparator.NEWLINE)],
                error_action=actions.S3PutObjectAction(errors_bucket, key=error_key(name)),
            )
            acknowledge_resource_wildcards(
                self.rules[topic_filter], [f"{errors_bucket.bucket_arn}/*"],
                "The IoT error action writes one object per failure with a generated key (timestamp + uuid); the "
                "alpha action grants s3:PutObject on the data bucket's objects only, no other action or bucket.")
