"""Post-deploy check: the Glue table, Athena views, Athena workgroup, Firehose stream and IoT rules exist, are enabled
and match the layout contract. ``python -m functions.analytics.check_deployment --project maskcam --stream <name>``;
exits 1 listing every problem. (The views are created by the analytics stack's deploy, ``Custom::AthenaViews``.)"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import boto3

from functions.analytics import datasets, layout

DEEPLENS_TOPIC = "$aws/things/+/infer"


def expected_rules(project: str) -> list[str]:
    return [layout.rule_name(project, DEEPLENS_TOPIC), layout.rule_name(project, "devices/+/infer")]


def check(session, *, project: str, database: str, stream: str | None) -> list[str]:
    """Every problem found (empty when the deployment looks right)."""
    glue, athena, iot = session.client("glue"), session.client("athena"), session.client("iot")
    problems = check_table(glue, database)
    problems += check_views(glue, database)
    problems += check_workgroup(athena, f"{project}-analytics")
    problems += check_rules(iot, project)
    if stream:
        problems += check_stream(session.client("firehose"), stream)
    return problems


def check_table(glue, database: str) -> list[str]:
    """The Glue table: the layout's columns, partition projection, partitioned by the layout's key."""
    problems = []
    try:
        table = glue.get_table(DatabaseName=database, Name=layout.TABLE)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return [f"Glue table {database}.{layout.TABLE} does not exist"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    wanted = [(name, kind) for name, kind, _ in layout.COLUMNS]
    if columns != wanted:
        problems.append(f"table {database}.{layout.TABLE} columns differ from the layout: "
                        f"missing {sorted(set(wanted) - set(columns))}, extra {sorted(set(columns) - set(wanted))}")
    params = table.get("Parameters", {})
    if params.get("projection.enabled") != "true":
        problems.append(f"table {database}.{layout.TABLE} has no partition projection")
    if [k["Name"] for k in table.get("PartitionKeys", [])] != [layout.PARTITION_KEY[0]]:
        problems.append(f"table {database}.{layout.TABLE} is not partitioned by {layout.PARTITION_KEY[0]}")
    return problems


def check_workgroup(athena, workgroup: str) -> list[str]:
    """The Athena workgroup: enabled, enforcing its configuration, with a bytes-scanned cutoff."""
    try:
        wg = athena.get_work_group(WorkGroup=workgroup).get("WorkGroup")  # moto answers {} instead of raising
    except athena.exceptions.InvalidRequestException:
        wg = None
    if not wg:
        return [f"Athena workgroup {workgroup} does not exist"]
    problems = []
    config = wg.get("Configuration", {})
    if wg.get("State") != "ENABLED":
        problems.append(f"workgroup {workgroup} is {wg.get('State')}")
    if not config.get("EnforceWorkGroupConfiguration"):
        problems.append(f"workgroup {workgroup} does not enforce its configuration")
    if not config.get("BytesScannedCutoffPerQuery"):
        problems.append(f"workgroup {workgroup} has no bytes-scanned cutoff")
    return problems


def check_rules(iot, project: str) -> list[str]:
    """The IoT topic rules exist and are enabled."""
    problems = []
    for rule in expected_rules(project):
        try:
            if iot.get_topic_rule(ruleName=rule)["rule"].get("ruleDisabled"):
                problems.append(f"IoT rule {rule} is disabled")
        except (iot.exceptions.ResourceNotFoundException, iot.exceptions.UnauthorizedException):
            problems.append(f"IoT rule {rule} does not exist")
    return problems


def check_stream(firehose, stream: str) -> list[str]:
    """The Firehose delivery stream exists and is active."""
    try:
        status = firehose.describe_delivery_stream(DeliveryStreamName=stream)["DeliveryStreamDescription"]
    except firehose.exceptions.ResourceNotFoundException:
        return [f"delivery stream {stream} does not exist"]
    if status["DeliveryStreamStatus"] != "ACTIVE":
        return [f"delivery stream {stream} is {status['DeliveryStreamStatus']}"]
    return []


def check_views(glue, database: str) -> list[str]:
    """Each view of the query files exists as a Glue ``VIRTUAL_VIEW`` (what Athena's ``CREATE VIEW`` makes)."""
    problems = []
    for name in (datasets.view_name(q) for q in datasets.view_queries()):
        try:
            kind = glue.get_table(DatabaseName=database, Name=name)["Table"].get("TableType")
        except glue.exceptions.EntityNotFoundException:
            problems.append(f"view {database}.{name} does not exist (the analytics stack's deploy creates it)")
            continue
        if kind != "VIRTUAL_VIEW":
            problems.append(f"{database}.{name} is not a view: TableType {kind!r}, not VIRTUAL_VIEW")
    return problems


def main(argv: Sequence[str] | None = None, session=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.analytics.check_deployment", description=__doc__)
    parser.add_argument("--project", default="maskcam")
    parser.add_argument("--database", default="awskrug")
    parser.add_argument("--stream", help="delivery stream name (stack output DeliveryStreamName)")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    session = session or boto3.Session(region_name=args.region)
    problems = check(session, project=args.project, database=args.database, stream=args.stream)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    views = ", ".join(datasets.view_name(q) for q in datasets.view_queries())
    print(f"ok: {args.database}.{layout.TABLE}, views {views}, workgroup {args.project}-analytics, rules "
          f"{', '.join(expected_rules(args.project))}" + (f", stream {args.stream}" if args.stream else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
