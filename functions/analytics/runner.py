"""Runs the named Athena queries locally with DuckDB over the lake, translating Trino -> DuckDB with sqlglot.

``as_of`` pins ``current_date``/``current_timestamp`` (replaced in the syntax tree) so results over a past or
generated lake are reproducible; without it they mean "now", as in Athena.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from functions.analytics import layout
from functions.analytics.arrow_schema import EVENT_SCHEMA
from functions.analytics.queries import NamedQuery


@dataclass
class Result:
    name: str
    columns: list[str]
    rows: list[tuple]


def to_duckdb(athena_sql: str, as_of: datetime | None = None) -> str:
    """Translates one Athena (Trino) statement to DuckDB, pinning the current time to ``as_of`` (UTC) if given."""
    tree = sqlglot.parse_one(athena_sql, read="trino")
    if as_of is not None:
        as_of = as_of.astimezone(timezone.utc)

        def pin(node):
            if isinstance(node, exp.CurrentDate):
                return exp.cast(exp.Literal.string(as_of.date().isoformat()), "DATE")
            if isinstance(node, (exp.CurrentTimestamp, exp.CurrentDatetime)):
                return exp.cast(exp.Literal.string(as_of.strftime("%Y-%m-%d %H:%M:%S.%f+00")), "TIMESTAMPTZ")
            return node

        tree = tree.transform(pin)
    return tree.sql(dialect="duckdb")


def lake_files(lake: Path) -> list[Path]:
    return sorted((Path(lake) / layout.DATA_PREFIX).glob(f"{layout.PARTITION_KEY[0]}=*/*.parquet"))


def _sql_list(paths) -> str:
    """File paths as a SQL list of quoted string literals."""
    return ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)


def _wifi_view(conn: duckdb.DuckDBPyConnection, lake: Path, database: str) -> None:
    """``<database>.free_wifi_standard_data`` over the normalized Parquet under the lake's table prefix."""
    from functions.wifi_ingest import layout as wifi

    files = sorted((Path(lake) / wifi.TABLE_PREFIX).glob("*.parquet"))
    table = f'"{database}"."{wifi.TABLE_NAME}"'
    if files:
        conn.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{_sql_list(files)}])")
    else:
        columns = ", ".join(f'CAST(NULL AS {"REAL" if c.glue_type == "float" else c.glue_type.upper()}) AS "{c.name}"'
                            for c in wifi.COLUMNS)
        conn.execute(f"CREATE VIEW {table} AS SELECT {columns} WHERE false")


def connect(lake: Path, database: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over a local lake that mirrors the data bucket: ``<database>.inference_results`` reads
    ``inference/dt=*/`` (hive partition ``dt`` as text), ``<database>.free_wifi_standard_data`` reads
    ``tables/free_wifi_standard_data/``. Missing data gives empty tables, not errors."""
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(f'CREATE SCHEMA "{database}"')
    files = lake_files(lake)
    table = f'"{database}"."{layout.TABLE}"'
    if files:
        conn.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{_sql_list(files)}], "
                     f"hive_partitioning = true, hive_types = {{'{layout.PARTITION_KEY[0]}': 'VARCHAR'}})")
    else:
        empty = pa.Table.from_batches([], schema=EVENT_SCHEMA.append(pa.field(layout.PARTITION_KEY[0], pa.string())))
        conn.register("_empty_lake", empty)
        conn.execute(f"CREATE VIEW {table} AS SELECT * FROM _empty_lake")
    _wifi_view(conn, lake, database)
    return conn


def run_queries(lake: Path, queries: Sequence[NamedQuery], *, database: str = "awskrug",
                params: Mapping[str, str] | None = None, as_of: datetime | None = None,
                conn: duckdb.DuckDBPyConnection | None = None) -> list[Result]:
    """Creates the views among ``queries`` first, then runs the others; returns one Result per non-view query."""
    from functions.analytics.queries import applicable

    conn = conn or connect(lake, database)
    params = dict(params or {})
    results = []
    for query in sorted(queries, key=lambda q: not q.is_view):
        sql = to_duckdb(query.render(database, **applicable(params, query)), as_of)
        relation = conn.sql(sql)
        if query.is_view:
            continue
        table = relation.to_arrow_table()
        results.append(Result(query.name, table.column_names, [tuple(r.values()) for r in table.to_pylist()]))
    return results
