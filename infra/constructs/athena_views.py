"""Athena views created at deploy time: a custom resource (``Custom::AthenaViews``) whose handler
(``functions/athena_views/handler.py``) runs each view's ``CREATE OR REPLACE VIEW`` in the project workgroup and waits
for it; a DDL that Athena refuses fails the deploy. The DDL texts are the resource's properties, so editing a view
file re-runs it on the next deploy."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from functions.analytics import datasets, layout
from functions.analytics.queries import NamedQuery
from infra.acknowledge import acknowledge
from infra.constructs.athena_workgroup import AthenaWorkGroup
from infra.constructs.python_function import PythonFunction
from infra.lambda_runtime import CUSTOM_RESOURCE_FAILURES, record_function_decisions
from infra.logs import function_role

RESOURCE_TYPE = "Custom::AthenaViews"
HANDLER_TIMEOUT = Duration.minutes(5)  # the handler stops polling 20 s before this (SAFETY_MARGIN_SECONDS)


class AthenaViews(Construct):
    """The views of ``queries`` (``CREATE VIEW`` query files) in ``database_name``, created after ``table``.

    ``.resource``: the custom resource (depend on it to use the views), ``.function``: its handler, ``.names``."""

    def __init__(self, scope: Construct, id: str, *, queries: Sequence[NamedQuery], database_name: str,
                 workgroup: AthenaWorkGroup, table: glue.ITable, runtime: lambda_.Runtime) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.names = [datasets.view_name(q) for q in queries]
        views = [{"Name": name, "Ddl": datasets.view_ddl(q, database_name)}
                 for name, q in zip(self.names, queries, strict=True)]

        role, log_group = function_role(
            self, description=f"Athena views in {database_name}: run their DDL in {workgroup.name}")
        self.function = PythonFunction(
            self, "Function",
            package="functions/athena_views",
            handler="functions.athena_views.handler.on_event",
            runtime=runtime,
            role=role,
            log_group=log_group,
            description=f"Creates the Athena views of {database_name} at deploy time (CREATE OR REPLACE VIEW)",
            timeout=HANDLER_TIMEOUT,
        )
        self._grant(role, stack, workgroup, database_name)

        # The framework function gets a role of its own without AWSLambdaBasicExecutionRole: logs go to one group.
        provider_role, provider_logs = function_role(
            self, description="CDK provider framework for the Athena views resource", role_id="ProviderRole",
            logs_id="ProviderLogs")
        provider = cr.Provider(self, "Provider", on_event_handler=self.function,
                               framework_on_event_role=provider_role, log_group=provider_logs)
        for function in (self.function, provider.node.find_child("framework-onEvent")):
            record_function_decisions(function, failures=CUSTOM_RESOURCE_FAILURES)
        # grantInvoke adds "<function arn>:*"; cdk-nag names it after the function's logical id.
        logical_id, attribute = stack.resolve(self.function.function_arn)["Fn::GetAtt"]
        acknowledge(provider_role, f"AwsSolutions-IAM5[Resource::<{logical_id}.{attribute}>:*]",
                    "The CDK provider framework may invoke any version of the views handler (lambda:InvokeFunction "
                    "on '<handler arn>:*'); the wildcard covers versions of this one function only.")

        self.resource = CustomResource(
            self, "Resource", service_token=provider.service_token, resource_type=RESOURCE_TYPE,
            properties={"WorkGroup": workgroup.name, "Database": database_name, "Views": views})
        self.resource.node.add_dependency(table)

    def _grant(self, role: iam.Role, stack: Stack, workgroup: AthenaWorkGroup, database_name: str) -> None:
        """Least privilege for ``CREATE OR REPLACE VIEW`` / ``DROP VIEW`` on exactly these views."""
        def table_arn(name: str) -> str:
            return stack.format_arn(service="glue", resource="table", resource_name=f"{database_name}/{name}")

        catalog_and_database = [stack.format_arn(service="glue", resource="catalog"),
                                stack.format_arn(service="glue", resource="database", resource_name=database_name)]
        for statement in (
            iam.PolicyStatement(sid="RunInWorkGroup",
                                actions=["athena:StartQueryExecution", "athena:GetQueryExecution"],
                                resources=[stack.format_arn(service="athena", resource="workgroup",
                                                            resource_name=workgroup.name)]),
            iam.PolicyStatement(sid="ManageViews",
                                actions=["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
                                         "glue:DeleteTable"],
                                resources=[*catalog_and_database, *(table_arn(n) for n in self.names)]),
            iam.PolicyStatement(sid="ReadViewSource", actions=["glue:GetTable"],
                                resources=[table_arn(layout.TABLE)]),
        ):
            role.add_to_policy(statement)
        workgroup.grant_query_results(role)
