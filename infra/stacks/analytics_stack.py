"""Inference analytics: IoT rules -> Firehose (JSON -> Parquet, partitioned by event day) -> S3 -> Glue/Athena, with
the named queries and the views created at deploy time."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Sequence

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import queries as query_files
from infra.constructs.athena_views import AthenaViews
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.inference_delivery import InferenceDelivery
from infra.constructs.inference_rules import InferenceRules
from infra.constructs.inference_table import InferenceTable
from infra.constructs.named_queries import NamedQueries
from infra.lambda_runtime import acknowledge_runtime_choice, project_runtime
from infra.settings import Settings


class AnalyticsStack(Stack):
    """Glue table ``inference_results`` with partition projection, the Firehose stream writing it, the IoT rules
    feeding the stream; of the query files (``functions/analytics/queries`` plus ``query_dirs``) the SELECTs become
    named queries and the ``CREATE VIEW`` files views, created by ``.views`` when the stack deploys."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, data_bucket: s3.IBucket,
                 database: glue.IDatabase, workgroup: AthenaWorkGroup,
                 query_dirs: Sequence[Path] | None = None, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.table = InferenceTable(self, "InferenceTable", database=database, bucket=data_bucket)
        self.delivery = InferenceDelivery(self, "Delivery", bucket=data_bucket, table=self.table)
        self.rules = InferenceRules(self, "Rules", project=settings.project, topics=settings.inference_topics,
                                    stream_name=self.delivery.stream_name, stream_arn=self.delivery.stream_arn,
                                    errors_bucket=data_bucket)
        files = query_files.load(query_files.QUERIES_DIR, *(query_dirs or ()))
        self.named_queries = NamedQueries(
            self, "NamedQueries",
            workgroup_name=workgroup.resource.ref,
            database_name=settings.glue_database,
            queries=[q for q in files if not q.is_view],
        )
        self.views = AthenaViews(self, "Views", queries=[q for q in files if q.is_view],
                                 database_name=settings.glue_database, workgroup=workgroup,
                                 table=self.table.table, runtime=project_runtime(settings))
        acknowledge_runtime_choice(self.views.function, settings)
        CfnOutput(self, "DeliveryStreamName", value=self.delivery.stream_name)
        CfnOutput(self, "TableName", value=f"{settings.glue_database}.{self.table.table.table_name}")
