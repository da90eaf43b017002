"""QuickSight over Athena: data source on the project workgroup, datasets for mask compliance, silent devices and
free Wi-Fi, the analysis and dashboard of ``functions.analytics.chart_spec``, and the IAM the data source's role needs
to run those queries. Built only when ``quicksight_principal_arn`` is set:
QuickSight needs an account subscription, which CloudFormation cannot create (README "QuickSight dashboard")."""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_quicksight as quicksight
from aws_cdk import aws_s3 as s3
from constructs import Construct, IDependable

from functions.analytics import chart_spec
from functions.analytics import datasets as dataset_defs
from functions.analytics import layout
from functions.wifi_ingest import layout as wifi_layout
from infra.acknowledge import acknowledge_resource_wildcards
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.quicksight_dashboard import QuickSightDashboard
from infra.settings import Settings

# Owner permissions as listed in the QuickSight API reference / console "Owner" role for each resource type.
DATA_SOURCE_OWNER_ACTIONS = (
    "quicksight:DescribeDataSource", "quicksight:DescribeDataSourcePermissions", "quicksight:PassDataSource",
    "quicksight:UpdateDataSource", "quicksight:DeleteDataSource", "quicksight:UpdateDataSourcePermissions",
)
DATA_SET_OWNER_ACTIONS = (
    "quicksight:DescribeDataSet", "quicksight:DescribeDataSetPermissions", "quicksight:PassDataSet",
    "quicksight:DescribeIngestion", "quicksight:ListIngestions", "quicksight:UpdateDataSet",
    "quicksight:DeleteDataSet", "quicksight:CreateIngestion", "quicksight:CancelIngestion",
    "quicksight:UpdateDataSetPermissions",
)
# What QuickSight calls on Athena for a data source bound to one workgroup (console "Amazon Athena" access).
ATHENA_WORKGROUP_ACTIONS = (
    "athena:GetWorkGroup", "athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
    "athena:GetQueryResults", "athena:GetQueryResultsStream", "athena:BatchGetQueryExecution",
    "athena:ListQueryExecutions",
)
ATHENA_CATALOG_ACTIONS = ("athena:GetDataCatalog", "athena:ListDatabases", "athena:GetDatabase",
                          "athena:ListTableMetadata", "athena:GetTableMetadata")
REFRESH_TIME_OF_DAY = "21:00"      # UTC, for daily refreshes: 06:00 KST, before the working day in Korea
GLUE_READ_ACTIONS = ("glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
                     "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition")


def skip_message(settings: Settings) -> str | None:
    """One line saying why the dashboard stack is not built, or None when it is."""
    if settings.quicksight_principal_arn:
        return None
    return (f"note: stack {settings.project}-dashboard skipped: QuickSight needs an account subscription and a "
            f"principal; set -c quicksight_principal_arn=arn:aws:quicksight:<identity-region>:<account>:user/default/"
            f"<name> (README 'QuickSight dashboard')")


class QuickSightServiceAccess(Construct):
    """A role of the project's own for the Athena data source (``AthenaParameters.RoleArn`` overrides the account-wide
    QuickSight service role for this one data source), so the account's other QuickSight authors and data sources
    gain nothing: run queries in the workgroup, read the tables' data and Glue metadata, read and write the
    workgroup's result prefix. Nothing else in the bucket. ``.role``, ``.policy``."""

    def __init__(self, scope: Construct, id: str, *, data_bucket: s3.IBucket,
                 workgroup: AthenaWorkGroup, database_name: str, table_names: Sequence[str],
                 data_prefixes: Sequence[str]) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self, "Role", description="QuickSight, for the project's Athena data source only",
            assumed_by=iam.ServicePrincipal("quicksight.amazonaws.com",
                                            conditions={"StringEquals": {"aws:SourceAccount": stack.account}}))
        workgroup_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=workgroup.name)
        catalog_arn = stack.format_arn(service="athena", resource="datacatalog", resource_name="AwsDataCatalog")
        glue_arns = [stack.format_arn(service="glue", resource="catalog"),
                     stack.format_arn(service="glue", resource="database", resource_name=database_name)]
        glue_arns += [stack.format_arn(service="glue", resource="table", resource_name=f"{database_name}/{t}")
                      for t in table_names]
        read_objects = [data_bucket.arn_for_objects(f"{p}*") for p in data_prefixes]
        results_objects = workgroup.results_objects_arn
        self.policy = iam.ManagedPolicy(
            self, "Policy",
            description="QuickSight data source role: Athena in the project workgroup over the inference and "
                        "Wi-Fi tables (least privilege)",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(sid="AthenaWorkGroup", actions=list(ATHENA_WORKGROUP_ACTIONS),
                                    resources=[workgroup_arn]),
                iam.PolicyStatement(sid="AthenaCatalog", actions=list(ATHENA_CATALOG_ACTIONS),
                                    resources=[catalog_arn]),
                iam.PolicyStatement(sid="GlueTables", actions=list(GLUE_READ_ACTIONS), resources=glue_arns),
                iam.PolicyStatement(sid="BucketListing",
                                    actions=["s3:ListBucket"], resources=[data_bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in (
                                        *data_prefixes, workgroup.results_prefix)]}}),
                iam.PolicyStatement(sid="BucketInfo",
                                    actions=["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                                    resources=[data_bucket.bucket_arn]),
                iam.PolicyStatement(sid="ReadTableData", actions=["s3:GetObject"], resources=read_objects),
                iam.PolicyStatement(sid="QueryResults",
                                    actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                                             "s3:ListMultipartUploadParts"],
                                    resources=[results_objects]),
            ],
        )
        acknowledge_resource_wildcards(
            self.policy, [*read_objects, results_objects],
            "Object wildcards limited to the two tables' data prefixes (read) and the workgroup's result prefix "
            "(read/write): Athena reads every file of a table and names result files per query execution.")


class DashboardStack(Stack):
    """Athena data source (project workgroup), the datasets of ``functions.analytics.datasets``, the analysis and
    dashboard of ``functions.analytics.chart_spec``, permissions for the QuickSight principal, and the data source's
    role. ``views`` is what creates the Athena views (the analytics
    stack's ``views``): the datasets wait for it, as the compliance dataset reads a view."""

    def __init__(self, scope: Construct, id: str, *, settings: Settings, data_bucket: s3.IBucket,
                 database: glue.IDatabase, workgroup: AthenaWorkGroup, inference_table: glue.ITable,
                 wifi_table: glue.ITable, views: IDependable, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        if not settings.quicksight_principal_arn:
            raise ValueError(skip_message(settings))
        principal = settings.quicksight_principal_arn
        project = settings.project
        database_name = settings.glue_database

        self.access = QuickSightServiceAccess(
            self, "DataSourceAccess",
            data_bucket=data_bucket,
            workgroup=workgroup,
            database_name=database_name,
            table_names=[layout.TABLE, wifi_layout.TABLE_NAME,
                         *(dataset_defs.view_name(q) for q in dataset_defs.view_queries())],
            data_prefixes=[layout.DATA_PREFIX, wifi_layout.TABLE_PREFIX],
        )

        self.data_source = quicksight.CfnDataSource(
            self, "AthenaDataSource",
            aws_account_id=Aws.ACCOUNT_ID,
            data_source_id=f"{project}-athena",
            name=f"{project} Athena ({workgroup.name})",
            type="ATHENA",
            data_source_parameters=quicksight.CfnDataSource.DataSourceParametersProperty(
                athena_parameters=quicksight.CfnDataSource.AthenaParametersProperty(
                    work_group=workgroup.name, role_arn=self.access.role.role_arn)),
            ssl_properties=quicksight.CfnDataSource.SslPropertiesProperty(disable_ssl=False),
            permissions=[quicksight.CfnDataSource.ResourcePermissionProperty(
                principal=principal, actions=list(DATA_SOURCE_OWNER_ACTIONS))],
        )
        # QuickSight checks the data source by querying through the role once it exists.
        self.data_source.node.add_dependency(self.access.policy)
        # The tables come from other stacks: reference them so those deploy first.
        self.data_source.node.add_dependency(inference_table, wifi_table)

        self.data_sets = {}
        self.refresh_schedules: dict[str, quicksight.CfnRefreshSchedule] = {}
        specs = dataset_defs.all_datasets(database_name)
        for spec in specs:
            mode = spec.import_mode(settings.quicksight_import_mode)
            self.data_sets[spec.key] = self._data_set(spec, project=project, database_name=database_name,
                                                      import_mode=mode, principal=principal)
            self.data_sets[spec.key].node.add_dependency(views)
            if mode == "SPICE" and spec.spice_refresh:
                self.refresh_schedules[spec.key] = self._refresh_schedule(spec, project)

        self.dashboard = QuickSightDashboard(
            self, "Dashboard", project=project, principal=principal,
            sheets=chart_spec.sheets(settings.silent_device_minutes),
            datasets={spec.key: spec for spec in specs}, data_sets=self.data_sets)

        CfnOutput(self, "DataSourceId", value=f"{project}-athena")
        CfnOutput(self, "DataSetIds", value=",".join(spec.dataset_id(project) for spec in specs))
        CfnOutput(self, "AnalysisId", value=self.dashboard.analysis_id)
        CfnOutput(self, "DashboardId", value=self.dashboard.dashboard_id)

    def _refresh_schedule(self, spec: dataset_defs.Dataset, project: str) -> quicksight.CfnRefreshSchedule:
        interval = spec.spice_refresh or "DAILY"
        """A full refresh of the SPICE copy every ``spec.spice_refresh`` (UTC; daily ones at REFRESH_TIME_OF_DAY),
        so it does not stay as old as its first ingestion (AWS::QuickSight::RefreshSchedule)."""
        frequency = quicksight.CfnRefreshSchedule.ScheduleFrequencyProperty(
            interval=interval, time_zone="UTC", time_of_the_day=None if interval == "HOURLY" else REFRESH_TIME_OF_DAY)
        schedule = quicksight.CfnRefreshSchedule(
            self, f"Refresh-{spec.key}", aws_account_id=Aws.ACCOUNT_ID, data_set_id=spec.dataset_id(project),
            schedule=quicksight.CfnRefreshSchedule.RefreshScheduleMapProperty(
                schedule_id=f"{spec.dataset_id(project)}-{interval.lower()}", refresh_type="FULL_REFRESH",
                schedule_frequency=frequency))
        schedule.add_dependency(self.data_sets[spec.key])
        return schedule

    def _data_set(self, spec: dataset_defs.Dataset, *, project: str, database_name: str, import_mode: str,
                  principal: str) -> quicksight.CfnDataSet:
        columns = [quicksight.CfnDataSet.InputColumnProperty(name=n, type=t) for n, t in spec.columns]
        if spec.sql is not None:
            physical = quicksight.CfnDataSet.PhysicalTableProperty(
                custom_sql=quicksight.CfnDataSet.CustomSqlProperty(
                    data_source_arn=self.data_source.attr_arn, name=spec.key, sql_query=spec.sql, columns=columns))
        elif spec.table is not None:
            physical = quicksight.CfnDataSet.PhysicalTableProperty(
                relational_table=quicksight.CfnDataSet.RelationalTableProperty(
                    data_source_arn=self.data_source.attr_arn, catalog="AwsDataCatalog", schema=database_name,
                    name=spec.table, input_columns=columns))
        else:
            raise ValueError(f"dataset {spec.key} names neither a table nor a custom SQL")
        return quicksight.CfnDataSet(
            self, f"DataSet-{spec.key}",
            aws_account_id=Aws.ACCOUNT_ID,
            data_set_id=spec.dataset_id(project),
            name=f"{project}: {spec.name}",
            import_mode=import_mode,
            physical_table_map={spec.key: physical},
            permissions=[quicksight.CfnDataSet.ResourcePermissionProperty(
                principal=principal, actions=list(DATA_SET_OWNER_ACTIONS))],
        )
