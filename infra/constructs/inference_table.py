"""Glue table ``inference_results``: Parquet under ``inference/dt=<day>/`` of the data bucket, columns from the event
schema (plus the IoT rule's ingest columns), daily partition projection (no crawler, no MSCK REPAIR)."""
from __future__ import annotations

from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import layout
from infra.l1 import default_child

_PRIMITIVES = {"int", "bigint", "double", "string", "boolean", "float", "smallint", "tinyint", "date", "timestamp"}


def glue_columns(columns) -> list:
    return [glue.Column(name=name, type=glue.Schema.custom(kind, kind in _PRIMITIVES),
                        comment=comment) for name, kind, comment in columns]


class InferenceTable(Construct):
    """``.table`` (the L2 S3Table) and ``.cfn_table`` (its CfnTable, what Firehose's schema configuration needs)."""

    def __init__(self, scope: Construct, id: str, *, database: glue.IDatabase, bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        key = layout.PARTITION_KEY[0]
        self.table = glue.S3Table(
            self, "Table",
            table_name=layout.TABLE,
            description="Mask-classifier events (inference, heartbeat, error), schema v1, written by Firehose",
            database=database,
            storage=glue.S3TableStorage.from_bucket(bucket),
            s3_prefix=layout.DATA_PREFIX,
            data_format=glue.DataFormat.PARQUET,
            columns=glue_columns(layout.COLUMNS),
            partition_keys=glue_columns([layout.PARTITION_KEY]),
            partition_projection={
                key: glue.PartitionProjectionConfiguration.date(
                    min=layout.PROJECTION_RANGE[0], max=layout.PROJECTION_RANGE[1], format=layout.PARTITION_FORMAT,
                    step=glue.DateProjectionStep(interval=1, interval_unit=glue.DateIntervalUnit.DAYS)),
            },
            parameters={"storage.location.template": layout.location_template(bucket.bucket_name),
                        "classification": "parquet"},
        )
        self.cfn_table = default_child(self.table, glue.CfnTable)
