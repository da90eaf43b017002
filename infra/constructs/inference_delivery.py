"""Firehose delivery stream: JSON events -> Snappy Parquet (schema from the Glue table) under
``inference/dt=<event day>/`` (dynamic partitioning on ``ts`` with jq), failures under ``errors/firehose/``."""
from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import layout
from infra.constructs.inference_table import InferenceTable
from infra.grants import grant_listing, grant_objects
from infra.logs import project_log_group



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
            f'and $ts >= {layout.PROJECTION_MIN_MS} and $ts < {layout.LATEST_TS_MS} and $ts < {limit} '
            f'then ($ts / 1000 | floor | strftime("{layout.PARTITION_STRFTIME}")) '
            f'else error("ts outside the partition projection: \\($ts)") end)')


PARTITION_JQ = partition_jq()
BUFFER_SIZE_MIB = 128   # format conversion needs >= 64 MiB
BUFFER_SECONDS = layout.FLUSH_SECONDS


class InferenceDelivery(Construct):
    """``.stream`` (CfnDeliveryStream, DirectPut) the IoT rules write to, ``.stream_name``, ``.stream_arn``, and
    ``.role``, what Firehose runs as.

    L1, not the L2 ``DeliveryStream``: the L2's S3 destination always grants ``bucket.grantReadWrite`` (deletes and the
    whole bucket included). Firehose needs what its documentation lists for an S3 destination with format conversion
    (https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3): put/get/abort on the
    objects it writes, bucket location and multipart listing, the Glue table's schema, its own log stream."""

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, table: InferenceTable) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        key = layout.PARTITION_KEY[0]
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"),
                             description="Firehose: write inference Parquet and its error records, read the schema")
        prefixes = (layout.DATA_PREFIX, layout.FIREHOSE_ERRORS_PREFIX)
        grant_objects(self.role, bucket, actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                      prefixes=prefixes,
                      reason="Firehose names its objects itself (partition + time + random suffix) under inference/ "
                             "and errors/firehose/ only; no delete, no other prefix.")
        grant_listing(self.role, bucket, prefixes=prefixes)
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"], resources=[bucket.bucket_arn]))
        database = table.table.database.database_name
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
            resources=[stack.format_arn(service="glue", resource="catalog"),
                       stack.format_arn(service="glue", resource="database", resource_name=database),
                       stack.format_arn(service="glue", resource="table",
                                        resource_name=f"{database}/{table.table.table_name}")]))
        log_group = project_log_group(self, "Logs")
        log_stream = logs.LogStream(self, "LogStream", log_group=log_group, removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(self.role)

        self.stream = firehose.CfnDeliveryStream(
            self, "Stream",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream
            .DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK"),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=self.role.role_arn,
                prefix=f"{layout.DATA_PREFIX}{key}=!{{partitionKeyFromQuery:{key}}}/",
                error_output_prefix=f"{layout.FIREHOSE_ERRORS_PREFIX}!{{firehose:error-output-type}}/"
                                    "!{timestamp:yyyy-MM-dd}/",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=BUFFER_SECONDS, size_in_m_bs=BUFFER_SIZE_MIB),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name),
                dynamic_partitioning_configuration=firehose.CfnDeliveryStream
                .DynamicPartitioningConfigurationProperty(enabled=True),
                processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                    enabled=True, processors=[firehose.CfnDeliveryStream.ProcessorProperty(
                        type="MetadataExtraction", parameters=[
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="MetadataExtractionQuery",
                                parameter_value=f'{{"{key}":{PARTITION_JQ}}}'),
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="JsonParsingEngine", parameter_value="JQ-1.6")])]),
                data_format_conversion_configuration=firehose.CfnDeliveryStream
                .DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=firehose.CfnDeliveryStream.InputFormatConfigurationProperty(
                        deserializer=firehose.CfnDeliveryStream.DeserializerProperty(
                            open_x_json_ser_de=firehose.CfnDeliveryStream.OpenXJsonSerDeProperty())),
                    output_format_configuration=firehose.CfnDeliveryStream.OutputFormatConfigurationProperty(
                        serializer=firehose.CfnDeliveryStream.SerializerProperty(
                            parquet_ser_de=firehose.CfnDeliveryStream.ParquetSerDeProperty())),
                    schema_configuration=firehose.CfnDeliveryStream.SchemaConfigurationProperty(
                        catalog_id=stack.account, database_name=database, region=stack.region,
                        role_arn=self.role.role_arn, table_name=table.table.table_name, version_id="LATEST")),
            ),
        )
        self.stream.node.add_dependency(self.role)
        self.stream_name: str = self.stream.ref
        self.stream_arn: str = self.stream.attr_arn
