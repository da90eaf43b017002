"""Post-deploy check of the QuickSight side: the Athena data source exists, succeeded and uses the project
workgroup; every dataset of ``functions.analytics.datasets`` exists with the expected import mode and columns; the
analysis and the dashboard exist, succeeded, report no errors (QuickSight's own validation of the definition, e.g.
COLUMN_TYPE_MISMATCH) and have the sheets of ``functions.analytics.chart_spec``.

``python -m functions.analytics.check_dashboard [--project maskcam] [--database awskrug] [--import-mode SPICE]``
(region: the stack's region, where the data source lives, not the QuickSight identity region). Exits 1 listing every
problem, 0 with one ``ok:`` line.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import boto3
from botocore.exceptions import ClientError

from functions.analytics import chart_spec, datasets

OK_STATUSES = ("CREATION_SUCCESSFUL", "UPDATE_SUCCESSFUL")


def data_source_id(project: str) -> str:
    return f"{project}-athena"


def check_data_source(qs, account_id: str, *, project: str) -> list[str]:
    source_id, workgroup = data_source_id(project), f"{project}-analytics"
    try:
        source = qs.describe_data_source(AwsAccountId=account_id, DataSourceId=source_id)["DataSource"]
    except qs.exceptions.ResourceNotFoundException:
        return [f"QuickSight data source {source_id} does not exist (is the dashboard stack deployed?)"]
    problems = []
    if source.get("Type") != "ATHENA":
        problems.append(f"data source {source_id} is of type {source.get('Type')}, not ATHENA")
    used = source.get("DataSourceParameters", {}).get("AthenaParameters", {}).get("WorkGroup")
    if used != workgroup:
        problems.append(f"data source {source_id} uses workgroup {used!r}, not {workgroup}")
    status = source.get("Status")
    if status and status not in OK_STATUSES:
        error = source.get("ErrorInfo", {})
        problems.append(f"data source {source_id} is {status}: {error.get('Type', '')} {error.get('Message', '')}"
                        .rstrip())
    return problems


def _physical_columns(data_set: dict) -> list:
    for table in data_set.get("PhysicalTableMap", {}).values():
        if "CustomSql" in table:
            return table["CustomSql"].get("Columns", [])
        if "RelationalTable" in table:
            return table["RelationalTable"].get("InputColumns", [])
    return []


def check_data_sets(qs, account_id: str, *, project: str, database: str,
                    import_mode: str | None = None) -> list[str]:
    problems = []
    for spec in datasets.all_datasets(database):
        data_set_id = spec.dataset_id(project)
        try:
            data_set = qs.describe_data_set(AwsAccountId=account_id, DataSetId=data_set_id)["DataSet"]
        except qs.exceptions.ResourceNotFoundException:
            problems.append(f"QuickSight dataset {data_set_id} does not exist")
            continue
        except ClientError as err:
            problems.append(f"cannot describe dataset {data_set_id}: {err}")
            continue
        expected = spec.import_mode(import_mode) if import_mode else None
        if expected and data_set.get("ImportMode") != expected:
            problems.append(f"dataset {data_set_id} imports {data_set.get('ImportMode')}, expected {expected}")
        got = [(c["Name"], c["Type"]) for c in _physical_columns(data_set)]
        if got != list(spec.columns):
            problems.append(f"dataset {data_set_id} columns differ: missing "
                            f"{sorted(set(spec.columns) - set(got))}, extra {sorted(set(got) - set(spec.columns))}")
    return problems


def analysis_id(project: str) -> str:
    return f"{project}-analysis"


def dashboard_id(project: str) -> str:
    return f"{project}-dashboard"


def _asset_problems(what: str, status: str | None, errors: list, sheets: list) -> list[str]:
    problems = []
    if status not in OK_STATUSES:
        problems.append(f"{what} is {status}")
    for error in errors or []:
        problems.append(f"{what} reports {error.get('Type', 'an error')}: {error.get('Message', '')}".rstrip(": "))
    want = [s.id for s in chart_spec.sheets()]
    got = [s.get("SheetId") for s in sheets or []]
    if got != want:
        problems.append(f"{what} has sheets {got}, the chart spec {want}")
    return problems


def check_analysis_and_dashboard(qs, account_id: str, *, project: str) -> list[str]:
    problems = []
    # (kind, id, describe call, the part of its answer with Status / Errors / Sheets)
    for kind, asset_id, describe, part in (
            ("analysis", analysis_id(project),
             lambda i: qs.describe_analysis(AwsAccountId=account_id, AnalysisId=i),
             lambda answer: answer["Analysis"]),
            ("dashboard", dashboard_id(project),
             lambda i: qs.describe_dashboard(AwsAccountId=account_id, DashboardId=i),
             lambda answer: answer["Dashboard"].get("Version", {}))):
        try:
            asset = part(describe(asset_id))
            problems += _asset_problems(f"{kind} {asset_id}", asset.get("Status"), asset.get("Errors"),
                                        asset.get("Sheets"))
        except qs.exceptions.ResourceNotFoundException:
            problems.append(f"QuickSight {kind} {asset_id} does not exist")
        except ClientError as err:
            problems.append(f"cannot describe {kind} {asset_id}: {err}")
    return problems


def check(qs, account_id: str, *, project: str, database: str, import_mode: str | None = None) -> list[str]:
    """Every problem found (empty when the QuickSight side looks right)."""
    return (check_data_source(qs, account_id, project=project)
            + check_data_sets(qs, account_id, project=project, database=database, import_mode=import_mode)
            + check_analysis_and_dashboard(qs, account_id, project=project))


def main(argv: Sequence[str] | None = None, session=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.analytics.check_dashboard", description=__doc__)
    parser.add_argument("--project", default="maskcam")
    parser.add_argument("--database", default="awskrug")
    parser.add_argument("--import-mode", choices=("SPICE", "DIRECT_QUERY"), default=None,
                        help="expected import mode (the quicksight_import_mode setting); default: not checked")
    parser.add_argument("--region", default=None, help="the stacks' region (default: your AWS configuration's)")
    args = parser.parse_args(argv)
    session = session or boto3.Session(region_name=args.region)
    account_id = session.client("sts").get_caller_identity()["Account"]
    problems = check(session.client("quicksight"), account_id, project=args.project, database=args.database,
                     import_mode=args.import_mode)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    ids = ", ".join(d.dataset_id(args.project) for d in datasets.all_datasets(args.database))
    print(f"ok: data source {data_source_id(args.project)} (Athena, workgroup {args.project}-analytics), "
          f"datasets {ids}, analysis {analysis_id(args.project)}, dashboard {dashboard_id(args.project)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
