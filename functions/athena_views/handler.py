"""CloudFormation custom resource (``Custom::AthenaViews``, via the CDK Provider framework): runs each view's
``CREATE OR REPLACE VIEW`` in the project workgroup on Create/Update and waits for it, so a view Athena refuses fails
the deploy (and rolls it back) with the view's name and Athena's reason. Delete drops the views; a drop that fails is
logged, not raised, so it cannot block deleting the stack. A view whose file is removed is left in place (logged).

Properties: ``WorkGroup``, ``Database``, ``Views`` (a list of ``{"Name", "Ddl"}``, run in that order). Any change to
a DDL text changes the properties, so CloudFormation sends an Update and the DDL runs again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import boto3

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

POLL_SECONDS = 1.5
# Stop polling this long before Lambda would kill the function, so the failure message still gets out.
SAFETY_MARGIN_SECONDS = 20


class ViewError(RuntimeError):
    """A view DDL that failed, was cancelled or did not finish in time; the message says which and why."""


def run_and_wait(athena, sql: str, *, name: str, workgroup: str, database: str, deadline: float,
                 poll_seconds: float = POLL_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> str:
    """Starts ``sql`` in ``workgroup`` and polls until it succeeds (returns the execution id); raises ViewError on
    FAILED/CANCELLED (with Athena's StateChangeReason) or when ``clock()`` passes ``deadline``."""
    execution_id = athena.start_query_execution(
        QueryString=sql, WorkGroup=workgroup, QueryExecutionContext={"Database": database})["QueryExecutionId"]
    while True:
        status = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            return execution_id
        if state in ("FAILED", "CANCELLED"):
            raise ViewError(f"view {database}.{name}: Athena query {execution_id} {state}: "
                            f"{status.get('StateChangeReason', 'no reason given')}")
        if clock() >= deadline:
            raise ViewError(f"view {database}.{name}: Athena query {execution_id} still {state} when the time "
                            f"left for this deploy step ran out; see the workgroup's query history")
        sleep(poll_seconds)


def create_views(athena, views: Sequence[dict], *, workgroup: str, database: str, deadline: float) -> None:
    for view in views:
        execution_id = run_and_wait(athena, view["Ddl"], name=view["Name"], workgroup=workgroup, database=database,
                                    deadline=deadline)
        logger.info("created view %s.%s (query %s)", database, view["Name"], execution_id)


def drop_views(athena, names: Sequence[str], *, workgroup: str, database: str, deadline: float) -> None:
    for name in names:
        try:
            run_and_wait(athena, f"DROP VIEW IF EXISTS {database}.{name}", name=name, workgroup=workgroup,
                         database=database, deadline=deadline)
            logger.info("dropped view %s.%s", database, name)
        except Exception:  # noqa: BLE001 - logged; a view left behind must not block the stack's deletion
            logger.exception("could not drop view %s.%s; drop it by hand", database, name)


def on_event(event, context, athena=None):
    props = event["ResourceProperties"]
    workgroup, database, views = props["WorkGroup"], props["Database"], props["Views"]
    athena = athena or boto3.client("athena")
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    kind = event["RequestType"]
    if kind == "Delete":
        drop_views(athena, [v["Name"] for v in views], workgroup=workgroup, database=database, deadline=deadline)
    else:
        create_views(athena, views, workgroup=workgroup, database=database, deadline=deadline)
        if kind == "Update":
            # The role may only touch the views defined now (least privilege), so a view whose file was removed is
            # reported rather than dropped.
            names = {v["Name"] for v in views}
            old_views = event.get("OldResourceProperties", {}).get("Views", [])
            gone = [v["Name"] for v in old_views if v["Name"] not in names]
            if gone:
                logger.warning("views no longer defined, left in %s: %s; drop them by hand", database, ", ".join(gone))
    # Same id for the same database: an Update never makes CloudFormation delete (drop) the views just replaced.
    return {"PhysicalResourceId": f"athena-views/{database}",
            "Data": {"Views": ",".join(v["Name"] for v in views)}}
