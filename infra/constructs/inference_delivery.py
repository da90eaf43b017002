"""Firehose delivery stream: JSON events -> Snappy Parquet (schema from the Glue table) under
``inference/dt=<event day>/`` (dynamic partitioning on ``ts`` with jq), failures under ``errors/firehose/``."""
from __future__ import annotations

from aws_cdk import Duration, Size
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import layout
from infra.acknowledge import acknowledge, acknowledge_resource_wildcards
from infra.constructs.inference_table import InferenceTable



def partition_jq() -> str:
    """jq 1.6: epoch ms -> UTC day, for exactly the events ``layout.partition_problem`` accepts. Any other ``ts``
    (missing, not a number, seconds, microseconds, before the projection or after ``NOW+<n>DAYS``) raises a jq error.
    "Now" is the record's ``ingest_ts``, which the IoT rule stamps with ``timestamp()`` (the device cannot set it), so
    the decision does not depend on the engine's clock or on jq's ``now``.
    Firehose then delivers the record under the error prefix (``partitioning-failed``) instead of into a partition
    the table never shows (https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html).
    Parenthesized: the L2 wraps it as ``{"dt": <query>}`` and jq object values take no bare pipes."""
    limit = f"((($in / {layout.DAY_MS}) | floor) + {layout.PROJECTION_FUTURE_DAYS + 1}) * {layout.DAY_MS}"
    return (f'(.ts as $ts | .ingest_ts as $in | if ($ts | type) == "number" and ($in | type) == "number" '
            f'and $ts >= {layout.PROJECTION_MIN_MS} and $ts < {limit} '
            f'then ($ts / 1000 | floor | strftime("{layout.PARTITION_STRFTIME}")) '
            f'else error("ts outside the partition projection: \\($ts)") end)')


PARTITION_JQ = partition_jq()
BUFFER_SIZE_MIB = 128   # format conversion needs >= 64 MiB
BUFFER_SECONDS = layout.FLUSH_SECONDS


class InferenceDelivery(Construct):
    """``.stream``: the DirectPut delivery stream the IoT rules write to."""

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, table: InferenceTable) -> None:
        super().__init__(scope, id)
        key = layout.PARTITION_KEY[0]
        destination = firehose.S3Bucket(
            bucket,
            data_output_prefix=f"{layout.DATA_PREFIX}{key}=!{{partitionKeyFromQuery:{key}}}/",
            error_output_prefix=f"{layout.FIREHOSE_ERRORS_PREFIX}!{{firehose:error-output-type}}/"
                                "!{timestamp:yyyy-MM-dd}/",
            buffering_interval=Duration.seconds(BUFFER_SECONDS),
            buffering_size=Size.mebibytes(BUFFER_SIZE_MIB),
            dynamic_partitioning=firehose.DynamicPartitioningProps(enabled=True),
            processors=[firehose.MetadataExtractionProcessor.jq16({key: PARTITION_JQ})],
            data_format_conversion=firehose.DataFormatConversionProps(
                schema_configuration=firehose.SchemaConfiguration.from_cfn_table(table.cfn_table),
                input_format=firehose.InputFormat.OPENX_JSON,
                output_format=firehose.OutputFormat.PARQUET,
            ),
        )
        self.stream = firehose.DeliveryStream(
            self, "Stream",
            destination=destination,
            encryption=firehose.StreamEncryption.aws_owned_key(),
        )
        # The L2 S3 destination grants bucket.grantReadWrite (no narrower option) to its role.
        role = self.stream.node.find_child("S3 Destination Role")
        for action in ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*"):
            acknowledge(role, f"AwsSolutions-IAM5[Action::{action}]",
                        f"{action} comes from the Firehose L2 S3 destination's read/write grant, scoped to the data "
                        "bucket only; Firehose needs it to write and clean up multipart Parquet uploads.")
        acknowledge_resource_wildcards(role, [f"{bucket.bucket_arn}/*"],
                             "Firehose writes objects with generated names (partition + random suffix) anywhere "
                             "under inference/ and errors/ of the data bucket; the grant covers this bucket only.")
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "glue:GetSchemaVersion is added by the Firehose L2 format-conversion binding; it is only used "
                    "for Glue Schema Registry schemas, which this stream does not use (it reads a Glue table).")
