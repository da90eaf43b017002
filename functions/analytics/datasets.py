"""The QuickSight datasets, described once for the CDK stack and the post-deploy check: id, name, where the rows come
from (a Glue table or view of the project database, or a custom SQL) and the column types.

Column types are derived, not typed in twice: the Wi-Fi table's from ``functions.wifi_ingest.layout.COLUMNS``; the
compliance dataset's from the view's own SELECT (``queries/view_mask_compliance_hourly.sql``), typed by
``output_types`` over the table columns in ``functions.analytics.layout.COLUMNS``. A column whose type cannot be
inferred stops synth with its name, rather than defaulting to STRING.

The compliance dataset reads the view ``mask_compliance_hourly`` itself: the analytics stack creates the views at
deploy time (``infra.constructs.athena_views``), and the dashboard stack's datasets depend on that resource. The
silent-devices dataset is a custom SQL over the view ``device_last_heartbeat`` (``dataset_sql/device_silence.sql``):
its ``minutes_silent`` is computed when QuickSight runs the query, which a view's columns could not say.

Freshness: the silent-devices dataset is always ``DIRECT_QUERY`` (``fixed_mode``): its rows say "silent for N
minutes *now*", which a SPICE copy would freeze at the last refresh (and it is small: one row per device). The other
datasets follow the ``quicksight_import_mode`` setting; in SPICE mode each gets a refresh schedule
(``spice_refresh``: compliance hourly, Wi-Fi daily; the portal file changes monthly at most).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from functions.analytics import layout, queries

COMPLIANCE_VIEW_QUERY = "view_mask_compliance_hourly"
DATASET_SQL_DIR = Path(__file__).resolve().parent / "dataset_sql"   # custom SQL of datasets (not named queries)

# Glue/Athena type -> QuickSight input column type (DataSet InputColumn.Type).
QUICKSIGHT_TYPES = {
    "string": "STRING", "varchar": "STRING", "char": "STRING",
    "tinyint": "INTEGER", "smallint": "INTEGER", "int": "INTEGER", "integer": "INTEGER", "bigint": "INTEGER",
    "float": "DECIMAL", "real": "DECIMAL", "double": "DECIMAL", "decimal": "DECIMAL",
    "boolean": "BOOLEAN",
    "date": "DATETIME", "timestamp": "DATETIME",
}


class DatasetError(ValueError):
    """A dataset whose columns cannot be typed; the message names the dataset and the column."""


@dataclass(frozen=True)
class Dataset:
    key: str                               # stable suffix of the dataset id: "<project>-<key>"
    name: str                              # shown in QuickSight
    columns: tuple[tuple[str, str], ...]   # (name, QuickSight type)
    table: str | None = None            # Glue table in the project database, or
    sql: str | None = None              # a custom Athena SQL statement
    fixed_mode: str | None = None       # this import mode whatever the setting (None: the setting's)
    spice_refresh: str | None = None    # refresh interval in SPICE mode (HOURLY, DAILY, ...; RefreshSchedule)

    def dataset_id(self, project: str) -> str:
        return f"{project}-{self.key}"

    def import_mode(self, setting: str) -> str:
        """The dataset's import mode under the ``quicksight_import_mode`` setting."""
        return self.fixed_mode or setting


def quicksight_type(glue_type: str, *, where: str) -> str:
    base = re.split(r"[(<]", glue_type.strip().lower(), maxsplit=1)[0]
    try:
        return QUICKSIGHT_TYPES[base]
    except KeyError:
        raise DatasetError(f"{where}: type {glue_type!r} has no QuickSight column type") from None


_CREATE_VIEW_RE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:(\S+)\.)?(\S+)\s+AS\s+", re.IGNORECASE)


def split_view(ddl: str) -> tuple[str | None, str, str]:
    """(database or None, view name, SELECT) of a ``CREATE [OR REPLACE] VIEW [<db>.]<name> AS <select>`` text;
    comment lines are dropped."""
    body = "\n".join(line for line in ddl.splitlines() if not line.lstrip().startswith("--"))
    match = _CREATE_VIEW_RE.match(body)
    if match is None:
        raise DatasetError(f"not a CREATE VIEW <name> AS SELECT statement:\n{ddl}")
    return match.group(1), match.group(2), body[match.end():].strip()


def view_name(query: queries.NamedQuery) -> str:
    """The name of the view a ``CREATE VIEW`` query file creates (without the database)."""
    return split_view(query.render("db"))[1]


def view_select(query: queries.NamedQuery, database: str) -> str:
    """The SELECT of a ``CREATE [OR REPLACE] VIEW <name> AS <select>`` query file, rendered for ``database``, as
    written in the file (comment lines dropped)."""
    return split_view(query.render(database))[2]


def view_ddl(query: queries.NamedQuery, database: str) -> str:
    """The file's ``CREATE OR REPLACE VIEW`` statement for ``database`` without its comment lines (what Athena runs)."""
    return f"CREATE OR REPLACE VIEW {database}.{view_name(query)} AS\n{view_select(query, database)}"


def view_queries() -> tuple[queries.NamedQuery, ...]:
    return tuple(q for q in queries.load(queries.QUERIES_DIR) if q.is_view)


def _trino_types():
    """sqlglot's Trino typing, corrected where it differs from what Trino (Athena engine v3) really returns:
    ``from_unixtime``, ``current_timestamp``/``now()`` and ``AT TIME ZONE`` give ``timestamp(3) with time zone``
    (sqlglot: plain timestamp); ``date_trunc``, ``date_add`` and ``max_by``/``min_by`` return their argument's type
    (sqlglot: unknown, or a fixed type)."""
    from sqlglot import exp
    from sqlglot.dialects.dialect import Dialect

    with_tz = exp.DataType.build("timestamp(3) with time zone", dialect="trino")
    fixed = {"annotator": lambda self, e: self._set_type(e, with_tz)}
    like_this = {"annotator": lambda self, e: self._annotate_by_args(e, "this")}
    return {
        **Dialect.get_or_raise("trino").EXPRESSION_METADATA,
        **{kind: fixed for kind in (exp.UnixToTime, exp.CurrentTimestamp, exp.AtTimeZone)},
        **{kind: like_this for kind in (exp.TimestampTrunc, exp.DateTrunc, exp.DateAdd, exp.TimestampAdd,
                                        exp.ArgMax, exp.ArgMin)},
    }


def output_types(sql: str, database: str, *, over_views: bool = False) -> tuple[tuple[str, str], ...]:
    """(column, Athena type) of each output column of ``sql`` over ``<database>.inference_results`` (and, with
    ``over_views``, the project's views), as Trino types them (``_trino_types``); e.g. ``("hour", "timestamp(3)")``."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    table = {name: kind for name, kind, _ in layout.COLUMNS if not kind.startswith(("array", "struct", "map"))}
    table[layout.PARTITION_KEY[0]] = layout.PARTITION_KEY[1]
    tables: dict[str, dict[str, str]] = {layout.TABLE: table}
    if over_views:
        for view in view_queries():
            tables[view_name(view)] = dict(output_types(view_select(view, database), database))
    schema: dict[str, object] = {database: tables}
    tree = annotate_types(qualify(sqlglot.parse_one(sql, read="trino"), schema=schema, dialect="trino"),
                          schema=schema, dialect="trino", expression_metadata=_trino_types())
    if not isinstance(tree, exp.Selectable):
        raise DatasetError(f"not a query, it has no output columns:\n{sql}")
    out = []
    for column in tree.selects:
        kind = column.type
        if kind is None or kind.is_type(exp.DataType.Type.UNKNOWN):
            raise DatasetError(f"cannot infer the type of output column {column.alias_or_name!r} of:\n{sql}")
        out.append((column.alias_or_name, kind.sql(dialect="trino").lower()))
    return tuple(out)


def compliance(database: str) -> Dataset:
    """Mask compliance per device and UTC hour (faces, masked, unmasked, compliance_rate): the view
    ``mask_compliance_hourly``. Partition ``dt`` is kept so QuickSight's date filters prune partitions in
    direct-query mode (Athena inlines the view)."""
    view = next(q for q in view_queries() if q.name == COMPLIANCE_VIEW_QUERY)
    columns = tuple((name, quicksight_type(kind, where=f"compliance column {name}"))
                    for name, kind in output_types(view_select(view, database), database))
    return Dataset(key="mask-compliance-hourly", name="Mask compliance per device and hour", columns=columns,
                   table=view_name(view), spice_refresh="HOURLY")


def sql_text(query: queries.NamedQuery, database: str, **params: object) -> str:
    """A query file rendered for ``database`` without its comment lines (QuickSight nests custom SQL in its own
    queries, where a trailing comment would swallow what follows)."""
    rendered = query.render(database, **params)
    return "\n".join(line for line in rendered.splitlines() if not line.lstrip().startswith("--")).strip()


def device_silence(database: str) -> Dataset:
    """Per device heard from in the lookback window: when it was last heard from and the whole minutes since
    (``dataset_sql/device_silence.sql``), for the silent-devices table; always direct query (module docstring)."""
    (query,) = [q for q in queries.load(DATASET_SQL_DIR) if q.name == "device_silence"]
    sql = sql_text(query, database)
    columns = tuple((name, quicksight_type(kind, where=f"device-silence column {name}"))
                    for name, kind in output_types(sql, database, over_views=True))
    return Dataset(key="device-silence", name="Devices and minutes since they were last heard from", columns=columns,
                   sql=sql, fixed_mode="DIRECT_QUERY")


def wifi() -> Dataset:
    """The free Wi-Fi table as is: the seed's charts count rows by city and by service provider."""
    from functions.wifi_ingest import layout as wifi_layout

    columns = tuple((c.name, quicksight_type(c.glue_type, where=f"{wifi_layout.TABLE_NAME}.{c.name}"))
                    for c in wifi_layout.COLUMNS)
    return Dataset(key="free-wifi", name="Free public Wi-Fi (data.go.kr 15013116)", columns=columns,
                   table=wifi_layout.TABLE_NAME, spice_refresh="DAILY")


def all_datasets(database: str) -> tuple[Dataset, ...]:
    return (compliance(database), wifi(), device_silence(database))


def by_key(database: str) -> dict:
    return {d.key: d for d in all_datasets(database)}
