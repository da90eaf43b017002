"""``python -m functions.analytics generate|ingest|query|charts`` - the embedded default on one machine."""
from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone
from pathlib import Path

from tabulate import tabulate
from tqdm import tqdm


def _generate(args) -> int:
    from functions.analytics.generator import GeneratorConfig, json_lines

    cfg = GeneratorConfig(devices=args.devices, days=args.days, start=args.start, interval_s=args.interval,
                          masked_ratio=args.masked_ratio, silent_devices=args.silent_devices,
                          malformed=args.malformed, seed=args.seed)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    count = 0
    try:
        for line in json_lines(cfg):
            out.write(line + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"generated {count} lines ({cfg.malformed} malformed) to {args.out}", file=sys.stderr)
    return 0


def _ingest(args) -> int:
    from functions.analytics.writer import ingest_lines, read_json_lines

    missing = [p for p in args.files if not Path(p).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    with tqdm(unit=" lines", disable=None, file=sys.stderr) as bar:
        report = ingest_lines(read_json_lines(args.files), Path(args.lake), progress=bar)
    print(tabulate([[report.read, report.accepted, report.rejected, len(report.files),
                     report.errors_file or "-"]],
                   headers=["read", "accepted", "rejected", "parquet files", "rejected lines in"]))
    return 0 if report.read == report.accepted + report.rejected else 1


def _query(args) -> int:
    from functions.analytics import queries, runner

    try:
        dirs = [Path(d) for d in args.queries_dir] or [queries.QUERIES_DIR]
        available = queries.load(*dirs)
        params = queries.parse_overrides(args.param)
    except queries.QueryFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    by_name = {q.name: q for q in available}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        print(f"error: unknown query {', '.join(unknown)}; available: {', '.join(by_name)}", file=sys.stderr)
        return 2
    chosen = [by_name[n] for n in args.names] if args.names else [q for q in available if not q.is_view]
    views = [q for q in available if q.is_view and q not in chosen]
    try:
        results = runner.run_queries(Path(args.lake), views + chosen, database=args.database, params=params,
                                     as_of=args.as_of)
    except queries.QueryFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for result in results:
        print(f"\n== {result.name} ({len(result.rows)} rows)")
        print(tabulate(result.rows, headers=result.columns))
    return 0


def _charts(args) -> int:
    from functions.analytics import charts, queries

    try:
        paths = charts.render_charts(Path(args.lake), Path(args.out), database=args.database, as_of=args.as_of)
    except (charts.ChartError, queries.QueryFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic device events as JSON lines")
    gen.add_argument("--devices", type=int, default=3)
    gen.add_argument("--days", type=int, default=2)
    gen.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1), help="first day (UTC)")
    gen.add_argument("--interval", type=int, default=5, help="seconds between inference events per device")
    gen.add_argument("--masked-ratio", type=float, default=0.8)
    gen.add_argument("--silent-devices", type=int, default=0)
    gen.add_argument("--malformed", type=int, default=0, help="bad lines to mix in")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--out", default="-", help="output file (default stdout)")
    gen.set_defaults(run=_generate)

    ing = sub.add_parser("ingest", help="JSON-lines files -> local Parquet lake (rejected lines kept with reasons)")
    ing.add_argument("files", nargs="+")
    ing.add_argument("--lake", default="lake")
    ing.set_defaults(run=_ingest)

    qry = sub.add_parser("query", help="run named Athena queries on the local lake with DuckDB")
    qry.add_argument("names", nargs="*", help="query names (default: all but the view definitions)")
    qry.add_argument("--lake", default="lake")
    qry.add_argument("--database", default="awskrug")
    qry.add_argument("--queries-dir", action="append", default=[], help="extra/other query directories")
    qry.add_argument("--param", action="append", default=[], help="name=value, e.g. silent_minutes=10")
    qry.add_argument("--as-of", type=_timestamp, default=None,
                     help="pin current_date/current_timestamp (ISO time, UTC unless given)")
    qry.set_defaults(run=_query)

    cht = sub.add_parser("charts", help="render the dashboard's charts (functions/analytics/chart_spec.py) to PNG "
                                        "from the local lake (no QuickSight)")
    cht.add_argument("--lake", default="lake")
    cht.add_argument("--out", default="charts")
    cht.add_argument("--database", default="awskrug")
    cht.add_argument("--as-of", type=_timestamp, default=None,
                     help="pin current_date/current_timestamp (ISO time, UTC unless given)")
    cht.set_defaults(run=_charts)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
