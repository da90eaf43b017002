"""Athena named queries in the project workgroup, one per ``.sql`` file (``functions.analytics.queries``)."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_athena as athena
from constructs import Construct

from functions.analytics.queries import NamedQuery


class NamedQueries(Construct):
    """``.queries``: query name -> CfnNamedQuery, rendered for ``database_name``."""

    def __init__(self, scope: Construct, id: str, *, workgroup_name: str, database_name: str,
                 queries: Sequence[NamedQuery]) -> None:
        super().__init__(scope, id)
        self.queries = {}
        for query in queries:
            self.queries[query.name] = athena.CfnNamedQuery(
                self, query.name,
                name=query.name,
                description=query.description[:1024],
                database=database_name,
                work_group=workgroup_name,
                query_string=query.render(database_name),
            )
