"""The two chart queries answer from normalized data: Athena SQL -> DuckDB (sqlglot) over the Parquet output."""
from __future__ import annotations

from collections import Counter

import duckdb
import sqlglot

from functions.wifi_ingest import named_queries, sample
from functions.wifi_ingest.__main__ import main


def test_query_files_follow_the_convention():
    queries = {q.name: q for q in named_queries.load()}
    assert set(queries) == {"wifi_count_by_city", "wifi_count_by_service_provider"}
    for q in queries.values():
        assert q.description and "${database}.free_wifi_standard_data" in q.template
        sqlglot.parse_one(q.render("awskrug"), read="athena")  # valid Athena SQL


def test_chart_queries_over_normalized_parquet(tmp_path, capsys):
    recs = sample.records(500, seed=12)
    recs[0]["latitude"] = "bad"  # rejected rows must not be counted
    src = tmp_path / "wifi.csv"
    src.write_bytes(sample.file_bytes(recs))
    assert main(["normalize", str(src), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    capsys.readouterr()
    kept = recs[1:]

    con = duckdb.connect()
    con.execute("CREATE SCHEMA awskrug")
    con.execute(f"CREATE VIEW awskrug.free_wifi_standard_data AS "
                f"SELECT * FROM read_parquet('{tmp_path / 'out'}/*.parquet')")
    queries = {q.name: q for q in named_queries.load()}

    def run(name):
        sql = sqlglot.transpile(queries[name].render("awskrug"), read="athena", write="duckdb")[0]
        return con.execute(sql).fetchall()

    by_city = run("wifi_count_by_city")
    want_city = Counter(r["city"] for r in kept)
    assert dict(by_city) == want_city
    assert [n for _, n in by_city] == sorted(want_city.values(), reverse=True)

    by_provider = run("wifi_count_by_service_provider")
    want = Counter((r["city"], r["service_provider"]) for r in kept)
    assert {(c, p): n for c, p, n in by_provider} == want
    assert sum(n for *_, n in by_provider) == len(kept)
