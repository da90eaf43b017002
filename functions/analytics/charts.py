"""Local preview of the dashboard: every chart of ``functions.analytics.chart_spec`` drawn to PNG with matplotlib
from the local lake, so a person can see the dashboard without QuickSight.

Each chart is computed the way QuickSight computes its visual: the chart's dataset (the same table, view or custom
SQL as the QuickSight dataset, ``functions.analytics.datasets``) aggregated by the spec's fields
(``preview_sql``: group by category and colour, one aggregate per value, the spec's row filter), run on the lake by
the DuckDB runner (Athena SQL translated by sqlglot). Nothing here knows a chart by name.

API (used by the demo)::

    from functions.analytics.charts import render_charts
    paths = render_charts(lake, out_dir, database="awskrug", as_of=None)   # one <chart id>.png per chart, spec order

``lake`` mirrors the data bucket (``inference/dt=*/`` from ``functions.analytics.writer``,
``tables/free_wifi_standard_data/*.parquet`` from ``functions.wifi_ingest``); ``as_of`` pins "now" for the SQL's
``current_date``/``current_timestamp`` (minutes silent, the lookback window), e.g. the last second of generated data.
A chart without rows is still written, saying so. Korean names are drawn with NanumGothic (SIL Open Font License),
taken from the pinned PyPI package ``koreanize-matplotlib``: only its font files are used, the package is never
imported (its module imports ``distutils``, gone in Python 3.12), and matplotlib's global settings are left alone.
CLI: ``python -m functions.analytics charts --lake DIR --out DIR [--as-of ISO]``.
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path
from collections.abc import Sequence

from functions.analytics import chart_spec, datasets, queries, runner
from functions.analytics.chart_spec import Chart

FONT_PACKAGE = "koreanize_matplotlib"
FONT_FILE = "NanumGothic.ttf"
_FAMILY = "NanumGothic"
OTHER = "Other"   # QuickSight's label for the colours past ColorItemsLimit
# spec aggregation -> SQL aggregate
_SQL_AGGREGATES = {"COUNT": "count({})", "DISTINCT_COUNT": "count(DISTINCT {})", "SUM": "sum({})",
                   "AVERAGE": "avg({})", "MIN": "min({})", "MAX": "max({})"}


class ChartError(RuntimeError):
    """The charts cannot be drawn (e.g. the Hangul font is not installed); the message says how to fix it."""


def hangul_font_path() -> Path:
    """NanumGothic shipped by the ``koreanize-matplotlib`` package, located without importing the package."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "fonts" / FONT_FILE
        if path.is_file():
            return path
    raise ChartError(f"the Hangul font {FONT_FILE} was not found: install the pinned package koreanize-matplotlib "
                     f"(requirements-dev.txt; `make setup`)")


def chart_style() -> dict:
    """matplotlib rc settings for the charts (Hangul font first); use with ``matplotlib.rc_context``."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(hangul_font_path()))
    return {"font.family": [_FAMILY, "DejaVu Sans"], "axes.unicode_minus": False,
            "svg.hashsalt": "maskcam", "figure.dpi": 100}


# -- data: the spec as SQL over the dataset -------------------------------------------------------------------------
def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def preview_sql(chart: Chart, dataset: datasets.Dataset, database: str) -> str:
    """Athena SQL computing ``chart`` from ``dataset`` as QuickSight aggregates it: one row per category (and colour),
    columns named by the spec's roles (``category``, ``color``, ``value0``, ...)."""
    source = f"{database}.{dataset.table}" if dataset.table else f"(\n{dataset.sql}\n) AS ds"
    dims, selects = [], []
    for role, field in chart.fields:
        column = _quoted(field.column)
        if field.aggregation:
            selects.append(f"{_SQL_AGGREGATES[field.aggregation].format(column)} AS {role}")
            continue
        expr = f"date_trunc('{field.granularity.lower()}', {column})" if field.granularity else column
        dims.append(expr)
        selects.append(f"{expr} AS {role}")
    where = (f"\nWHERE {_quoted(chart.at_least.column)} >= {chart.at_least.value!r}" if chart.at_least else "")
    positions = ", ".join(str(i + 1) for i in range(len(dims)))
    return f"SELECT {', '.join(selects)}\nFROM {source}{where}\nGROUP BY {positions}\nORDER BY {positions}"


def preview_rows(lake: Path, *, database: str = "awskrug", as_of: datetime | None = None,
                 charts: Sequence[Chart] | None = None) -> dict[str, list[dict]]:
    """Chart id -> its rows (dicts keyed by role) computed on ``lake``, views created first."""
    charts = chart_spec.charts() if charts is None else charts
    by_key = datasets.by_key(database)
    conn = runner.connect(Path(lake), database)
    runner.run_queries(lake, [q for q in queries.load() if q.is_view], database=database, conn=conn)
    out = {}
    for chart in charts:
        relation = conn.sql(runner.to_duckdb(preview_sql(chart, by_key[chart.dataset], database), as_of))
        out[chart.id] = relation.to_arrow_table().to_pylist()
    return out


def _sorted(chart: Chart, rows: list[dict]) -> list[dict]:
    """Rows in the spec's order (category order for bars with colours: by the category's total)."""
    if chart.sort is None:
        return rows
    role = chart.role_of(chart.sort.by)
    reverse = chart.sort.direction == chart_spec.DESCENDING
    if chart.color is not None and role.startswith("value"):
        totals: dict[object, float] = {}
        for r in rows:
            totals[r["category"]] = totals.get(r["category"], 0) + (r[role] or 0)
        return sorted(rows, key=lambda r: (totals[r["category"]], _text(r["category"])), reverse=reverse)
    return sorted(rows, key=lambda r: (r[role] is not None, r[role] if r[role] is not None else 0,
                                       _text(r["category"])), reverse=reverse)


def _text(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


# -- drawing ---------------------------------------------------------------------------------------------------------
def _figure(width: float = 11, height: float = 6.5):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _no_rows(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no rows: {what}", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _scaled(field: chart_spec.Field, value):
    return None if value is None else float(value) * (100 if field.percent else 1)


def _value_label(field: chart_spec.Field) -> str:
    return f"{field.title} (%)" if field.percent else field.title


def hour_limits(hours: list) -> tuple | None:
    """x-axis limits for a single hour of data (matplotlib would otherwise span years around one point)."""
    distinct = set(hours)
    if len(distinct) != 1:
        return None
    (hour,) = distinct
    return hour - timedelta(hours=1), hour + timedelta(hours=1)


def _draw_bar(ax, chart: Chart, rows: list[dict]) -> None:
    value = chart.values[0]
    rows = _sorted(chart, rows)
    labels = [_text(r["category"]) for r in rows]
    values = [_scaled(value, r["value0"]) or 0 for r in rows]
    if chart.horizontal:   # barh draws the first bar at the bottom: the first in order goes on top
        bars = ax.barh(labels[::-1], values[::-1], color="#2b7bba")
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values[::-1]], padding=3)
        ax.set_xlabel(_value_label(value))
        ax.set_ylabel(chart.category.title)
        ax.margins(x=0.12)
    else:
        bars = ax.bar(labels, values, color="#2b7bba")
        ax.set_ylabel(_value_label(value))
        ax.set_xlabel(chart.category.title)
        ax.tick_params(axis="x", labelrotation=30)


def _draw_colored_bars(ax, chart: Chart, rows: list[dict]) -> None:
    color = chart.color
    if color is None:                          # Chart refuses a clustered or stacked bar chart without one
        raise chart_spec.ChartSpecError(f"chart {chart.id!r}: coloured bars need a colour field, it has none")
    value = chart.values[0]
    totals: dict[str, float] = {}
    for r in rows:
        totals[_text(r["color"])] = totals.get(_text(r["color"]), 0) + (r["value0"] or 0)
    ranked = [c for c, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    kept = ranked[:chart.color_limit] if chart.color_limit else ranked
    colours = kept + ([OTHER] if len(ranked) > len(kept) else [])
    per_category: OrderedDict[str, dict[str, float]] = OrderedDict()
    for r in _sorted(chart, rows):
        colour = _text(r["color"]) if _text(r["color"]) in kept else OTHER
        cell = per_category.setdefault(_text(r["category"]), {})
        cell[colour] = cell.get(colour, 0) + (_scaled(value, r["value0"]) or 0)
    categories = list(per_category)
    positions = list(range(len(categories)))
    bottom = [0.0] * len(categories)
    width = 0.8 / max(1, len(colours)) if chart.kind == chart_spec.CLUSTERED_BAR else 0.8
    for i, (colour, paint) in enumerate(zip(colours, _colors(len(colours)), strict=True)):
        heights = [per_category[c].get(colour, 0) for c in categories]
        if chart.kind == chart_spec.STACKED_BAR:
            ax.bar(positions, heights, bottom=bottom, label=colour, color=paint, width=width)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        else:
            offset = (i - (len(colours) - 1) / 2) * width
            ax.bar([p + offset for p in positions], heights, label=colour, color=paint, width=width)
    ax.set_xticks(positions, categories, rotation=30, ha="right")
    ax.set_ylabel(_value_label(value))
    ax.set_xlabel(chart.category.title)
    ax.legend(title=color.title, loc="upper left", bbox_to_anchor=(1.01, 1))


def _draw_line(ax, fig, chart: Chart, rows: list[dict]) -> None:
    value = chart.values[0]
    series: OrderedDict[str, list[tuple]] = OrderedDict()
    for r in sorted(rows, key=lambda r: (_text(r.get("color")), r["category"])):
        if r["value0"] is not None and r["category"] is not None:
            series.setdefault(_text(r.get("color")), []).append((r["category"], _scaled(value, r["value0"])))
    for (name, points), paint in zip(series.items(), _colors(len(series)), strict=True):
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", markersize=3, label=name, color=paint)
    limits = hour_limits([x for points in series.values() for x, _ in points])
    if limits:
        ax.set_xlim(*limits)
    if value.percent:
        ax.set_ylim(0, 100)
    ax.set_ylabel(_value_label(value))
    ax.set_xlabel(chart.category.title)
    ax.grid(alpha=0.3)
    if chart.color is not None:
        ax.legend(title=chart.color.title, loc="lower left", ncols=min(4, max(1, len(series))))
    fig.autofmt_xdate()


def _draw_table(ax, chart: Chart, rows: list[dict]) -> None:
    ax.axis("off")
    headers = [f.title for _, f in chart.fields]
    cells = [[_text(r[role]) if not isinstance(r[role], float) else f"{_scaled(f, r[role]):,.1f}"
              for role, f in chart.fields] for r in _sorted(chart, rows)]
    table = ax.table(cellText=cells, colLabels=headers, loc="upper center", cellLoc="left", colLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(12)
    table.scale(1, 1.8)
    for (row, _), cell in table.get_celld().items():
        cell.set_facecolor("#dbe8f4" if row == 0 else ("#f6f6f6" if row % 2 else "white"))


def draw(chart: Chart, rows: list[dict], path: Path) -> Path:
    """One chart as a PNG at ``path``."""
    fig = _figure(11, 6.5 if chart.kind != chart_spec.TABLE else max(3.5, 1.2 + 0.45 * (len(rows) + 1)))
    ax = fig.add_subplot()
    if not rows:
        _no_rows(ax, f"dataset {chart.dataset} has none" + (
            f" with {chart.at_least.column} >= {chart.at_least.value:g}" if chart.at_least else ""))
    elif chart.kind == chart_spec.BAR:
        _draw_bar(ax, chart, rows)
    elif chart.kind in (chart_spec.STACKED_BAR, chart_spec.CLUSTERED_BAR):
        _draw_colored_bars(ax, chart, rows)
    elif chart.kind == chart_spec.LINE:
        _draw_line(ax, fig, chart, rows)
    else:
        _draw_table(ax, chart, rows)
    ax.set_title(chart.title)
    fig.savefig(path)
    return path


def render_charts(lake: Path, out_dir: Path, *, database: str = "awskrug",
                  as_of: datetime | None = None) -> list[Path]:
    """Every chart of the spec, computed on ``lake`` and written to ``out_dir/<chart id>.png``; returns the paths in
    spec order."""
    import matplotlib

    lake, out_dir = Path(lake), Path(out_dir)
    if not lake.is_dir():
        raise ChartError(f"lake directory {lake} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = chart_spec.charts()
    rows = preview_rows(lake, database=database, as_of=as_of, charts=charts)
    with matplotlib.rc_context(chart_style()):
        return [draw(chart, rows[chart.id], out_dir / f"{chart.id}.png") for chart in charts]
