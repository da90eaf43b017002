"""Local chart preview: one PNG per chart of the spec from a small generated lake + normalized Wi-Fi sample, each
non-trivial and with real Hangul glyphs; the numbers drawn are the spec's aggregations over the datasets and agree
with the named queries and with figures computed in plain Python from the generated events; empty lakes still give
every chart; CLI errors."""
from __future__ import annotations

import shutil
import warnings
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np
import pytest
from matplotlib import image

from functions.analytics import __main__ as cli
from functions.analytics import chart_spec, charts, datasets, queries, runner
from functions.analytics.generator import GeneratorConfig, generate_day, json_lines
from functions.analytics.writer import ingest_lines
from functions.wifi_ingest import layout as wifi_layout
from functions.wifi_ingest import sample
from functions.wifi_ingest.__main__ import main as wifi_main

pytestmark = pytest.mark.slow   # matplotlib renders every chart to PNG, twice

CFG = GeneratorConfig(devices=3, days=1, interval_s=60, heartbeat_s=300, seed=5, silent_devices=1)
AS_OF = datetime.fromtimestamp(CFG.end_ms / 1000 - 1, timezone.utc)
NAMES = [f"{c.id}.png" for c in chart_spec.charts()]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("charts")
    lake = root / "lake"
    lines = (("gen.jsonl", n, text) for n, text in enumerate(json_lines(CFG, ingest=True), start=1))
    report = ingest_lines(lines, lake, now_ms=CFG.end_ms)
    assert report.accepted > 0
    src = root / "wifi.csv"
    src.write_bytes(sample.file_bytes(sample.records(300, seed=4)))
    assert wifi_main(["normalize", str(src), "--out", str(root / "wifi"), "--no-progress"]) == 0
    (lake / wifi_layout.TABLE_PREFIX).mkdir(parents=True)
    for parquet in (root / "wifi").glob("*.parquet"):
        shutil.copy(parquet, lake / wifi_layout.TABLE_PREFIX / parquet.name)
    return lake


@pytest.fixture(scope="module")
def rows(lake):
    return charts.preview_rows(lake, as_of=AS_OF)


def pixels(path):
    img = image.imread(str(path))[..., :3]
    return img, len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))


def test_render_charts_writes_one_non_trivial_png_per_spec_chart_with_hangul_glyphs(lake, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = charts.render_charts(lake, tmp_path / "out", as_of=AS_OF)
    capsys.readouterr()
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert missing == []   # every Hangul label had a glyph (DejaVu alone would warn for each)
    assert [p.name for p in paths] == NAMES and len(NAMES) == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(NAMES)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000, path
        img, colours = pixels(path)
        assert img.shape[1] >= 900
        assert img.std() > 0.05, f"{path.name} is nearly blank"
        assert colours > 20, f"{path.name} has only {colours} colours"


def test_preview_sql_reads_the_charts_dataset_and_names_every_spec_field():
    by_key = datasets.by_key("awskrug")
    for chart in chart_spec.charts():
        sql = charts.preview_sql(chart, by_key[chart.dataset], "awskrug")
        dataset = by_key[chart.dataset]
        assert (f"FROM awskrug.{dataset.table}" in sql) if dataset.table else (dataset.sql in sql)
        for role, field in chart.fields:
            assert f'"{field.column}"' in sql and f" AS {role}" in sql
        if chart.at_least:
            assert f'WHERE "{chart.at_least.column}" >= {chart.at_least.value}' in sql


def _named(lake, name):
    (result,) = [r for r in runner.run_queries(lake, queries.load(), as_of=AS_OF) if r.name == name]
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_the_wifi_charts_agree_with_the_seeds_named_queries(lake, rows):
    by_city = {r["city"]: r["installations"] for r in _named(lake, "wifi_count_by_city")}
    assert {r["category"]: r["value0"] for r in rows["wifi-count-by-city"]} == by_city
    by_provider = {(r["city"], r["service_provider"]): r["installations"]
                   for r in _named(lake, "wifi_count_by_service_provider")}
    assert {(r["category"], r["color"]): r["value0"] for r in rows["wifi-count-by-service-provider"]} == by_provider


def test_the_compliance_chart_is_the_masked_share_per_device_and_hour_of_the_generated_events(rows):
    classified, masked = defaultdict(int), defaultdict(int)   # faces judged mask or no mask
    for day in range(CFG.days):
        for event in generate_day(CFG, day).to_pylist():
            if event["event_type"] == "inference":
                hour = datetime.fromtimestamp(event["ts"] // 3_600_000 * 3600, timezone.utc).replace(tzinfo=None)
                classified[(event["device_id"], hour)] += event["masked"] + event["unmasked"]
                masked[(event["device_id"], hour)] += event["masked"]
    want = {k: masked[k] / classified[k] for k in classified if classified[k]}
    got = {(r["color"], r["category"]): r["value0"] for r in rows["mask-compliance-by-device-hour"]
           if r["value0"] is not None}
    assert got.keys() == want.keys() and len(got) > 24
    assert all(abs(got[k] - want[k]) < 1e-9 for k in want)


def test_the_silent_table_lists_the_devices_the_named_query_calls_silent(lake, rows):
    silent = {r["device_id"]: r["minutes_silent"] for r in _named(lake, "silent_devices")}
    got = {r["category"]: r["value1"] for r in rows["silent-devices"]}
    assert got == silent and set(got) == {CFG.device_ids[-1]} and got[CFG.device_ids[-1]] >= 45
    last = {r["category"]: r["value0"] for r in rows["silent-devices"]}[CFG.device_ids[-1]]
    assert isinstance(last, datetime) and last.tzinfo is None   # tz-free, like the dataset's DATETIME column


def test_colours_past_the_limit_become_other(tmp_path):
    chart = next(c for c in chart_spec.charts() if c.color_limit)
    rows = [{"category": "c", "color": f"p{i}", "value0": 10 - i} for i in range(chart.color_limit + 2)]
    import matplotlib

    with matplotlib.rc_context(charts.chart_style()):
        charts.draw(chart, rows, tmp_path / "limited.png")
        few = chart_spec.Chart(**{**chart.__dict__, "color_limit": 2})
        charts.draw(few, rows, tmp_path / "two.png")
    assert (tmp_path / "limited.png").stat().st_size != (tmp_path / "two.png").stat().st_size


def test_an_empty_lake_still_gives_every_chart_saying_no_rows(tmp_path):
    (tmp_path / "lake").mkdir()
    paths = charts.render_charts(tmp_path / "lake", tmp_path / "out")
    assert [p.name for p in paths] == NAMES
    for path in paths:
        img, colours = pixels(path)
        assert img.std() > 0.01 and colours > 2   # axes and the "no rows" text


def test_cli_writes_the_charts_and_rejects_a_missing_lake(lake, tmp_path, capsys):
    assert cli.main(["charts", "--lake", str(lake), "--out", str(tmp_path / "c"), "--as-of", AS_OF.isoformat()]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "c" / n) for n in NAMES]
    assert cli.main(["charts", "--lake", str(tmp_path / "nope"), "--out", str(tmp_path / "d")]) == 2
    assert "lake directory" in capsys.readouterr().err


def test_missing_font_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(charts, "FONT_PACKAGE", "no_such_font_package")
    with pytest.raises(charts.ChartError, match="koreanize-matplotlib"):
        charts.hangul_font_path()


def test_a_single_hour_of_compliance_gets_a_two_hour_axis_not_years():
    from datetime import timedelta

    hour = datetime(2026, 11, 27, 20, tzinfo=timezone.utc)
    assert charts.hour_limits([hour, hour]) == (hour - timedelta(hours=1), hour + timedelta(hours=1))
    assert charts.hour_limits([hour, hour + timedelta(hours=1)]) is None  # matplotlib's own limits are right then
    assert charts.hour_limits([]) is None
