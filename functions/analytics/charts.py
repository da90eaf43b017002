"""Local preview of the dashboard: the same named Athena queries, run on the local lake with the DuckDB runner,
drawn to PNG with matplotlib, so a person can see the charts without QuickSight.

API (used by the demo)::

    from functions.analytics.charts import render_charts
    paths = render_charts(lake, out_dir, database="awskrug", as_of=None, params=None, top_providers=6)

``lake`` mirrors the data bucket (``inference/dt=*/`` from ``functions.analytics.writer``,
``tables/free_wifi_standard_data/*.parquet`` from ``functions.wifi_ingest``); ``as_of`` pins "now" for the queries'
``current_date`` (use it for generated or past data, e.g. the last second of the generated range); ``params``
overrides query parameters (e.g. ``{"days": "3"}`` for the compliance window, default 1 day as in the named query).
Returns the written files, in this order:

- ``wifi_count_by_city.png``: installations per province/city (query ``wifi_count_by_city``);
- ``wifi_count_by_service_provider.png``: installations per city stacked by provider, the ``top_providers``
  largest providers by name and the rest as "other" (query ``wifi_count_by_service_provider``);
- ``mask_compliance_by_device_hour.png``: share of faces with a mask per device and UTC hour (query
  ``mask_compliance_by_device_hour``).

A chart whose query returns no rows is still written, saying so. Korean names are drawn with NanumGothic (SIL Open
Font License), taken from the pinned PyPI package ``koreanize-matplotlib``: only its font files are used, the package
is never imported (its module imports ``distutils``, gone in Python 3.12), and matplotlib's global settings are left
alone. CLI: ``python -m functions.analytics charts --lake DIR --out DIR [--as-of ISO] [--param days=3]``.
"""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from functions.analytics import queries, runner

CHART_QUERIES = ("wifi_count_by_city", "wifi_count_by_service_provider", "mask_compliance_by_device_hour")
FONT_PACKAGE = "koreanize_matplotlib"
FONT_FILE = "NanumGothic.ttf"
_FAMILY = "NanumGothic"


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


def _figure(width: float = 10, height: float = 6):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _no_rows(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no rows: {what}", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xticks([])
    ax.set_yticks([])


def _rows(result: runner.Result) -> List[dict]:
    return [dict(zip(result.columns, row)) for row in result.rows]


def draw_wifi_by_city(result: runner.Result, path: Path) -> Path:
    rows = _rows(result)
    fig = _figure()
    ax = fig.add_subplot()
    if rows:
        rows = sorted(rows, key=lambda r: (r["installations"], r["city"] or ""))   # largest at the top
        labels = [r["city"] or "(none)" for r in rows]
        values = [r["installations"] for r in rows]
        bars = ax.barh(labels, values, color="#2b7bba")
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
        ax.set_xlabel("installations")
        ax.margins(x=0.12)
    else:
        _no_rows(ax, "free_wifi_standard_data is empty")
    ax.set_title("시도별 와이파이 설치 (free public Wi-Fi per province/city)")
    fig.savefig(path)
    return path


def draw_wifi_by_provider(result: runner.Result, path: Path, *, top: int = 6) -> Path:
    rows = _rows(result)
    fig = _figure(11, 6.5)
    ax = fig.add_subplot()
    if rows:
        totals: Dict[str, int] = {}
        for r in rows:
            totals[r["service_provider"] or "(none)"] = totals.get(r["service_provider"] or "(none)", 0) \
                + r["installations"]
        kept = [p for p, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        providers = kept + (["other"] if len(totals) > len(kept) else [])
        per_city: "OrderedDict[str, Dict[str, int]]" = OrderedDict()
        for r in rows:
            city = r["city"] or "(none)"
            provider = r["service_provider"] or "(none)"
            provider = provider if provider in kept else "other"
            per_city.setdefault(city, {}).setdefault(provider, 0)
            per_city[city][provider] += r["installations"]
        cities = sorted(per_city, key=lambda c: -sum(per_city[c].values()))
        bottom = [0] * len(cities)
        colors = _colors(len(providers))
        for provider, color in zip(providers, colors):
            values = [per_city[c].get(provider, 0) for c in cities]
            ax.bar(cities, values, bottom=bottom, label=provider, color=color)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel("installations")
        ax.legend(title="service provider", loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.tick_params(axis="x", labelrotation=30)
    else:
        _no_rows(ax, "free_wifi_standard_data is empty")
    ax.set_title("시도별 와이파이 서비스 제공업체 (installations per city by service provider)")
    fig.savefig(path)
    return path


def hour_limits(hours: list) -> Optional[tuple]:
    """x-axis limits for a single hour of data (matplotlib would otherwise span years around one point)."""
    distinct = set(hours)
    if len(distinct) != 1:
        return None
    (hour,) = distinct
    return hour - timedelta(hours=1), hour + timedelta(hours=1)


def draw_compliance(result: runner.Result, path: Path) -> Path:
    rows = _rows(result)
    fig = _figure(11, 6)
    ax = fig.add_subplot()
    if rows:
        by_device: "OrderedDict[str, List[tuple]]" = OrderedDict()
        for r in sorted(rows, key=lambda r: (r["device_id"], r["hour"])):
            if r["compliance_rate"] is not None:
                by_device.setdefault(r["device_id"], []).append((r["hour"], float(r["compliance_rate"]) * 100))
        for (device, points), color in zip(by_device.items(), _colors(len(by_device))):
            ax.plot([h for h, _ in points], [v for _, v in points], marker="o", markersize=3, label=device,
                    color=color)
        limits = hour_limits([h for points in by_device.values() for h, _ in points])
        if limits:
            ax.set_xlim(*limits)
        ax.set_ylim(0, 100)
        ax.set_ylabel("faces with a mask (%)")
        ax.set_xlabel("hour (UTC)")
        ax.grid(alpha=0.3)
        ax.legend(title="device", loc="lower left", ncols=min(4, max(1, len(by_device))))
        fig.autofmt_xdate()
    else:
        _no_rows(ax, "no inference events in the query window")
    ax.set_title("Mask compliance per device and hour")
    fig.savefig(path)
    return path


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def render_charts(lake: Path, out_dir: Path, *, database: str = "awskrug", as_of: Optional[datetime] = None,
                  params: Optional[Mapping[str, str]] = None, top_providers: int = 6) -> List[Path]:
    """Runs the chart queries on ``lake`` and writes one PNG per chart to ``out_dir``; returns the paths."""
    import matplotlib

    lake, out_dir = Path(lake), Path(out_dir)
    if not lake.is_dir():
        raise ChartError(f"lake directory {lake} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    available = {q.name: q for q in queries.load()}
    chosen = [available[name] for name in CHART_QUERIES]
    views = [q for q in available.values() if q.is_view]
    results = {r.name: r for r in runner.run_queries(lake, views + chosen, database=database, params=params,
                                                      as_of=as_of)}
    with matplotlib.rc_context(chart_style()):
        return [
            draw_wifi_by_city(results["wifi_count_by_city"], out_dir / "wifi_count_by_city.png"),
            draw_wifi_by_provider(results["wifi_count_by_service_provider"],
                                  out_dir / "wifi_count_by_service_provider.png", top=top_providers),
            draw_compliance(results["mask_compliance_by_device_hour"],
                            out_dir / "mask_compliance_by_device_hour.png"),
        ]
