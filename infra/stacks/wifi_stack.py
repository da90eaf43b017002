"""Korean public Wi-Fi data: CSV uploads under ``raw/`` of the data bucket become the Athena table
``free_wifi_standard_data`` (Parquet), with rejects and a report under ``quarantine/``."""
from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Size, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.analytics import queries as query_files
from functions.wifi_ingest.layout import COLUMNS, QUARANTINE_PREFIX, QUERIES_DIR, RAW_PREFIX, TABLE_NAME, TABLE_PREFIX
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.named_queries import NamedQueries
from infra.constructs.object_created_trigger import ObjectCreatedTrigger
from infra.constructs.python_function import PythonFunction
from infra.grants import grant_listing, grant_objects
from infra.lambda_runtime import (ASYNC_FAILURES, acknowledge_runtime_choice, project_runtime,
                                  record_function_decisions)
from infra.logs import function_role
from infra.settings import Settings

GLUE_TYPES = {"string": glue.Schema.STRING, "date": glue.Schema.DATE, "float": glue.Schema.FLOAT}


class WifiTable(Construct):
    """The Glue table over the normalizer's Parquet files (columns and types of the seed DDL)."""

    def __init__(self, scope: Construct, id: str, *, database: glue.IDatabase, bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        self.prefix = TABLE_PREFIX
        self.table = glue.S3Table(
            self, "Table",
            table_name=TABLE_NAME,
            database=database,
            description="National free Wi-Fi standard data (data.go.kr 15013116), normalized from the portal CSV "
                        "by the wifi ingest Lambda.",
            columns=[glue.Column(name=c.name, type=GLUE_TYPES[c.glue_type], comment=c.comment) for c in COLUMNS],
            data_format=glue.DataFormat.PARQUET,
            storage=glue.S3TableStorage.from_bucket(bucket),
            s3_prefix=TABLE_PREFIX,
        )


class WifiIngest(Construct):
    """Lambda run for every object created under ``raw/``: reads it, writes the table prefix and ``quarantine/``.

    The trigger is an EventBridge rule on the bucket's "Object Created" events: an S3 bucket notification would
    live in the storage stack and point at this stack's function, a cross-stack cycle."""

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, table_prefix: str,
                 runtime: lambda_.Runtime) -> None:
        super().__init__(scope, id)
        role, log_group = function_role(
            self, description="Wi-Fi ingest: read raw/, write the table prefix and quarantine/, log")
        self.function = PythonFunction(
            self, "Function",
            package="functions/wifi_ingest",
            handler="functions.wifi_ingest.handler.handler",
            runtime=runtime,
            role=role,
            log_group=log_group,
            description="Korean public Wi-Fi CSV (CP949/UTF-8) under raw/ -> Parquet table data + quarantine",
            memory_size=1024,
            timeout=Duration.minutes(10),
            ephemeral_storage_size=Size.gibibytes(2),
            environment={
                "TABLE_PREFIX": table_prefix,
                "POWERTOOLS_SERVICE_NAME": "wifi-ingest",
                # allocators keep freed memory by default (see functions/wifi_ingest/__main__.py)
                "MIMALLOC_ARENA_EAGER_COMMIT": "0",
                "MIMALLOC_PURGE_DELAY": "0",
                "MALLOC_MMAP_THRESHOLD_": "131072",
            },
        )

        # Least privilege on exact prefixes: GetObject(Version) on raw/, Put on the outputs, and HeadObject on
        # quarantine/ (the idempotency check; ListBucket there makes a missing report a 404 instead of a 403).
        grant_objects(role, bucket, actions=["s3:GetObject", "s3:GetObjectVersion"], prefixes=[RAW_PREFIX],
                      reason="Read uploads under raw/: their file names are chosen by whoever uploads them.")
        grant_objects(role, bucket, actions=["s3:GetObject"], prefixes=[QUARANTINE_PREFIX, table_prefix],
                      reason="Reports under quarantine/ (has this version been processed?) and the table file's ETag "
                             "(its write is a compare-and-swap) are named after the uploads.")
        grant_objects(role, bucket, actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                      prefixes=[table_prefix, QUARANTINE_PREFIX],
                      reason="Table data and quarantine outputs are named after the uploads, which are not known in "
                             "advance.")
        grant_listing(role, bucket, prefixes=[QUARANTINE_PREFIX])

        trigger = ObjectCreatedTrigger(
            self, "RawUploads", bucket=bucket, prefix=RAW_PREFIX, function=self.function,
            description="Objects created under raw/ of the data bucket -> Wi-Fi ingest")
        self.rule, self.dead_letters = trigger.rule, trigger.dead_letters


class WifiStack(Stack):
    """Ingest Lambda + trigger, the Glue table and one Athena named query per seed chart."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, data_bucket: s3.IBucket,
                 database: glue.IDatabase, workgroup: AthenaWorkGroup, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.table = WifiTable(self, "WifiTable", database=database, bucket=data_bucket)
        self.ingest = WifiIngest(self, "Ingest", bucket=data_bucket, table_prefix=self.table.prefix,
                                 runtime=project_runtime(settings))
        acknowledge_runtime_choice(self.ingest.function, settings)
        record_function_decisions(self.ingest.function, failures=ASYNC_FAILURES)
        self.named_queries = NamedQueries(
            self, "NamedQueries",
            workgroup_name=workgroup.resource.ref,
            database_name=settings.glue_database,
            queries=query_files.load(QUERIES_DIR),
        )
        self.named_queries.node.add_dependency(self.table.table)
