"""Local chart preview: a small generated lake + normalized Wi-Fi sample -> three non-trivial PNGs, Hangul drawn
with a real Hangul font (no missing-glyph warnings), empty lakes still give a chart, CLI errors."""
from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timezone

import matplotlib
import numpy as np
import pytest
from matplotlib import image

from functions.analytics import __main__ as cli
from functions.analytics import charts
from functions.analytics.generator import GeneratorConfig, json_lines
from functions.analytics.writer import ingest_lines
from functions.wifi_ingest import layout as wifi_layout
from functions.wifi_ingest import sample
from functions.wifi_ingest.__main__ import main as wifi_main

CFG = GeneratorConfig(devices=3, days=1, interval_s=60, heartbeat_s=300, seed=5)
AS_OF = datetime.fromtimestamp(CFG.end_ms / 1000 - 1, timezone.utc)
NAMES = ["wifi_count_by_city.png", "wifi_count_by_service_provider.png", "mask_compliance_by_device_hour.png"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("charts")
    lake = root / "lake"
    lines = (("gen.jsonl", n, text) for n, text in enumerate(json_lines(CFG), start=1))
    report = ingest_lines(lines, lake, now_ms=CFG.end_ms)
    assert report.accepted > 0
    src = root / "wifi.csv"
    src.write_bytes(sample.file_bytes(sample.records(300, seed=4)))
    assert wifi_main(["normalize", str(src), "--out", str(root / "wifi"), "--no-progress"]) == 0
    (lake / wifi_layout.TABLE_PREFIX).mkdir(parents=True)
    for parquet in (root / "wifi").glob("*.parquet"):
        shutil.copy(parquet, lake / wifi_layout.TABLE_PREFIX / parquet.name)
    return lake


def pixels(path):
    img = image.imread(str(path))[..., :3]
    return img, len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))


def test_render_charts_writes_three_non_trivial_pngs_with_hangul_glyphs(lake, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = charts.render_charts(lake, tmp_path / "out", as_of=AS_OF)
    capsys.readouterr()
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert missing == []   # every Hangul label had a glyph (DejaVu alone would warn for each)
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000, path
        img, colours = pixels(path)
        assert img.shape[0] >= 500 and img.shape[1] >= 900
        assert img.std() > 0.05, f"{path.name} is nearly blank"
        assert colours > 50, f"{path.name} has only {colours} colours"


def test_provider_chart_stacks_the_top_providers_and_groups_the_rest(lake, tmp_path):
    from functions.analytics import queries, runner

    result = next(r for r in runner.run_queries(lake, queries.load(wifi_layout.QUERIES_DIR))
                  if r.name == "wifi_count_by_service_provider")
    providers = {p for _, p, _ in result.rows}
    assert len(providers) > 2
    with matplotlib.rc_context(charts.chart_style()):
        few = charts.draw_wifi_by_provider(result, tmp_path / "few.png", top=2)
        many = charts.draw_wifi_by_provider(result, tmp_path / "all.png", top=len(providers))
    assert few.stat().st_size != many.stat().st_size   # a different legend ("other" instead of the rest)


def test_an_empty_lake_still_gives_three_charts_saying_no_rows(tmp_path):
    (tmp_path / "lake").mkdir()
    paths = charts.render_charts(tmp_path / "lake", tmp_path / "out")
    assert [p.name for p in paths] == NAMES
    for path in paths:
        img, colours = pixels(path)
        assert img.std() > 0.01 and colours > 2   # axes and the "no rows" text


def test_cli_writes_the_charts_and_rejects_a_missing_lake(lake, tmp_path, capsys):
    assert cli.main(["charts", "--lake", str(lake), "--out", str(tmp_path / "c"),
                     "--as-of", AS_OF.isoformat(), "--param", "days=1"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "c" / n) for n in NAMES]
    assert cli.main(["charts", "--lake", str(tmp_path / "nope"), "--out", str(tmp_path / "d")]) == 2
    assert "lake directory" in capsys.readouterr().err


def test_missing_font_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(charts, "FONT_PACKAGE", "no_such_font_package")
    with pytest.raises(charts.ChartError, match="koreanize-matplotlib"):
        charts.hangul_font_path()


def test_a_single_hour_of_compliance_gets_a_two_hour_axis_not_years():
    from datetime import datetime, timedelta, timezone

    from functions.analytics.charts import hour_limits

    hour = datetime(2026, 11, 27, 20, tzinfo=timezone.utc)
    assert hour_limits([hour, hour]) == (hour - timedelta(hours=1), hour + timedelta(hours=1))
    assert hour_limits([hour, hour + timedelta(hours=1)]) is None  # matplotlib's own limits are right then
    assert hour_limits([]) is None
