"""The two chart queries answer from normalized data, through the project's one query loader and local runner
(Athena SQL -> DuckDB by sqlglot) over a local lake laid out like the data bucket."""
from __future__ import annotations

import shutil
from collections import Counter

import sqlglot

from functions.analytics import queries, runner
from functions.wifi_ingest import layout, sample
from functions.wifi_ingest.__main__ import main

CHARTS = {"wifi_count_by_city", "wifi_count_by_service_provider"}


def test_query_files_follow_the_convention():
    found = {q.name: q for q in queries.load(layout.QUERIES_DIR)}
    assert set(found) == CHARTS
    for q in found.values():
        assert q.description and "${database}.free_wifi_standard_data" in q.template
        sqlglot.parse_one(q.render("awskrug"), read="athena")  # valid Athena SQL
    assert CHARTS <= {q.name for q in queries.load()}  # part of the project's named queries


def test_chart_queries_over_normalized_parquet(tmp_path, capsys):
    recs = sample.records(500, seed=12)
    recs[0]["latitude"] = "bad"  # rejected rows must not be counted
    src = tmp_path / "wifi.csv"
    src.write_bytes(sample.file_bytes(recs))
    assert main(["normalize", str(src), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    capsys.readouterr()
    kept = recs[1:]

    lake = tmp_path / "lake"
    (lake / layout.TABLE_PREFIX).mkdir(parents=True)
    for parquet in (tmp_path / "out").glob("*.parquet"):
        shutil.copy(parquet, lake / layout.TABLE_PREFIX / parquet.name)
    results = {r.name: r.rows for r in runner.run_queries(lake, queries.load(layout.QUERIES_DIR))}

    want_city = Counter(r["city"] for r in kept)
    assert dict(results["wifi_count_by_city"]) == want_city
    assert [n for _, n in results["wifi_count_by_city"]] == sorted(want_city.values(), reverse=True)

    by_provider = results["wifi_count_by_service_provider"]
    want = Counter((r["city"], r["service_provider"]) for r in kept)
    assert {(c, p): n for c, p, n in by_provider} == want
    assert sum(n for *_, n in by_provider) == len(kept)


def test_an_empty_lake_answers_the_charts_with_no_rows(tmp_path):
    results = runner.run_queries(tmp_path, queries.load(layout.QUERIES_DIR))
    assert {r.name for r in results} == CHARTS and all(r.rows == [] for r in results)
