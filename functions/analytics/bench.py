"""Benchmark: the seed's layout (one JSON object per message, unpartitioned) vs this one (Parquet, dt=day partitions,
one file per 15-minute flush), for three dashboard queries: bytes Athena would scan and local DuckDB run time.

``python -m functions.analytics.bench [--devices 20 --days 30 --interval 5]`` (default: 30 days x 20 devices, one
inference event per 5 s per device plus a heartbeat per minute, ~10.4 M + 0.9 M events).

Bytes scanned are computed, not measured on Athena: JSON = every object's bytes (no partitions, a row format is read
whole); Parquet = for the files in the partitions the query's ``dt`` predicates keep, the footer plus the compressed
column chunks of the columns the query references (from each file's Parquet metadata).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from tabulate import tabulate
from tqdm import tqdm

from functions.analytics import layout, queries, runner
from functions.analytics.generator import GeneratorConfig, generate_day
from functions.analytics.writer import write_table
from maskcam import schema

DASHBOARD = (("mask_compliance_by_device_hour", {"days": "1"}, "one day"),
             ("unmasked_by_day", {"days": "30"}, "full range"),
             ("busiest_hours", {"days": "30"}, "full range"))
FIELDS_BY_TYPE = {t: tuple(schema.REQUIRED) + schema.REQUIRED_BY_TYPE[t] for t in ("inference", "heartbeat")}


@dataclass
class Written:
    events: int = 0
    json_bytes: int = 0
    json_objects: int = 0


def write_both(cfg: GeneratorConfig, root: Path) -> Written:
    seed, lake = root / "seed", root / "lake"
    seed.mkdir(parents=True)
    out = Written()
    con = duckdb.connect()
    for day in tqdm(range(cfg.days), desc="generate + write", unit="day"):
        table = generate_day(cfg, day)
        ts = table.column("ts")
        table = table.set_column(table.schema.get_field_index("ingest_ts"), "ingest_ts",
                                 pc.add(ts, pa.scalar(1500, pa.int64())))
        table = table.set_column(table.schema.get_field_index("source_topic"), "source_topic",
                                 pc.binary_join_element_wise("maskcam/", table.column("device_id"), "/infer", ""))
        write_table(table, lake)
        out.events += table.num_rows
        con.register("day_events", table)
        for kind, fields in FIELDS_BY_TYPE.items():  # device payloads: only the fields of that event type
            path = seed / f"{kind}-{day:03d}.jsonl"
            con.execute(f"COPY (SELECT {', '.join(fields)} FROM day_events WHERE event_type = '{kind}') "
                        f"TO '{path}' (FORMAT JSON)").fetchall()
            rows = pc.sum(pc.equal(table.column("event_type"), kind)).as_py()
            out.json_bytes += path.stat().st_size - rows   # one S3 object per message: no newline
            out.json_objects += rows
        con.unregister("day_events")
    return out


def referenced_columns(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    names = {c.name for c in tree.find_all(exp.Column)}
    return sorted(names & set(layout.COLUMN_NAMES))


def kept_partitions(sql: str, partitions: list[str]) -> list[str]:
    """Partitions the query's WHERE conjuncts on ``dt`` alone keep (what partition projection prunes to)."""
    where = sqlglot.parse_one(sql, read="duckdb").find(exp.Where)
    conjuncts = list(where.this.flatten()) if where and isinstance(where.this, exp.And) else \
        ([where.this] if where else [])
    on_dt = [c for c in conjuncts if {col.name for col in c.find_all(exp.Column)} == {layout.PARTITION_KEY[0]}]
    if not on_dt:
        return partitions
    values = ", ".join(f"('{p}')" for p in partitions)
    predicate = " AND ".join(c.sql("duckdb") for c in on_dt)
    return [r[0] for r in duckdb.execute(f"SELECT dt FROM (VALUES {values}) t(dt) WHERE {predicate}").fetchall()]


def parquet_scan_bytes(lake: Path, sql: str) -> int:
    by_day: dict[str, list[Path]] = {}
    for path in runner.lake_files(lake):
        by_day.setdefault(path.parent.name.split("=", 1)[1], []).append(path)
    columns = referenced_columns(sql)
    total = 0
    for day in kept_partitions(sql, sorted(by_day)):
        for path in by_day[day]:
            meta = pq.ParquetFile(path).metadata
            total += meta.serialized_size + 8
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for c in range(group.num_columns):
                    chunk = group.column(c)
                    if chunk.path_in_schema.split(".")[0] in columns:
                        total += chunk.total_compressed_size
    return total


def seed_connection(seed: Path, database: str) -> duckdb.DuckDBPyConnection:
    """``<database>.inference_results`` over the seed JSON; ``dt`` derived from ts (the seed has no partitions)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f'CREATE SCHEMA "{database}"')
    duck = {"int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE", "string": "VARCHAR"}
    cols = {n: duck.get(t, "STRUCT(label VARCHAR, probability DOUBLE, box INTEGER[])[]")
            for n, t, _ in schema.COLUMNS}
    spec = "{" + ", ".join(f"'{n}': '{t}'" for n, t in cols.items()) + "}"
    con.execute(f"CREATE VIEW \"{database}\".{layout.TABLE} AS SELECT *, "
                f"strftime(to_timestamp(ts / 1000), '%Y-%m-%d') AS dt "
                f"FROM read_json('{seed}/*.jsonl', format = 'newline_delimited', columns = {spec})")
    return con


def timed(con, sql: str) -> tuple:
    start = time.perf_counter()
    rows = con.sql(sql).to_arrow_table().num_rows
    return time.perf_counter() - start, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m functions.analytics.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    cfg = GeneratorConfig(devices=args.devices, days=args.days, interval_s=args.interval, start=date(2026, 10, 1))
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    try:
        started = time.perf_counter()
        written = write_both(cfg, root)
        write_s = time.perf_counter() - started
        lake_bytes = sum(p.stat().st_size for p in runner.lake_files(root / "lake"))
        print(f"\nscale: {cfg.devices} devices x {cfg.days} days, one inference event per {cfg.interval_s} s per "
              f"device + a heartbeat per {cfg.heartbeat_s} s = {written.events:,} events (written in {write_s:.0f} s)")
        print(f"seed style: {written.json_objects:,} JSON objects, {written.json_bytes / 1e9:.2f} GB; "
              f"this layout: {len(runner.lake_files(root / 'lake')):,} Parquet files, {lake_bytes / 1e9:.3f} GB\n")
        as_of = datetime.fromtimestamp(cfg.end_ms / 1000 - 1, timezone.utc)
        by_name = {q.name: q for q in queries.load()}
        lake_con = runner.connect(root / "lake", "awskrug")
        seed_con = seed_connection(root / "seed", "awskrug")
        table = []
        for name, params, scope in DASHBOARD:
            sql = runner.to_duckdb(by_name[name].render("awskrug", **params), as_of)
            parquet_bytes = parquet_scan_bytes(root / "lake", sql)
            json_s, json_rows = timed(seed_con, sql)
            parquet_s, parquet_rows = timed(lake_con, sql)
            assert json_rows == parquet_rows, (name, json_rows, parquet_rows)
            table.append([f"{name} ({scope})", f"{written.json_bytes / 1e6:,.1f}", f"{parquet_bytes / 1e6:,.2f}",
                          f"{written.json_bytes / parquet_bytes:,.0f}x", f"{json_s:.2f}", f"{parquet_s:.2f}",
                          f"{json_s / parquet_s:,.1f}x"])
        print(tabulate(table, headers=["query", "JSON MB scanned", "Parquet MB scanned", "fewer bytes",
                                       "JSON local s", "Parquet local s", "faster"]))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
