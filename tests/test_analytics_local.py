"""Local end-to-end: generated events (with malformed lines) -> local lake -> every named query, checked against
numbers computed directly in Python from the generated events; plus the query-file convention and CLI errors."""
import json
from collections import defaultdict
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from functions.analytics import __main__ as cli
from functions.analytics import layout, queries, runner
from functions.analytics.generator import MALFORMED_KINDS, GeneratorConfig, device_events, generate_day, json_lines
from functions.analytics.writer import ingest_lines

pytestmark = pytest.mark.slow   # a 3-day, 4-device lake written and queried: about 6 s

CFG = GeneratorConfig(devices=4, days=3, interval_s=30, heartbeat_s=60, silent_devices=2, malformed=18, seed=11)
AS_OF = datetime.fromtimestamp(CFG.end_ms / 1000 - 1, timezone.utc)   # 23:59:59 on the last day
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def events():
    return [e for d in range(CFG.days) for e in device_events(generate_day(CFG, d), ingest=True)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("lake")
    # the records as the IoT rule forwards them: with the arrival time ingest_ts the silence queries judge on
    lines = (("gen.jsonl", n, text) for n, text in enumerate(json_lines(CFG, ingest=True), start=1))
    return path, ingest_lines(lines, path, now_ms=CFG.end_ms)


@pytest.fixture(scope="module")
def results(lake):
    return {r.name: r for r in runner.run_queries(lake[0], queries.load(), as_of=AS_OF)}


def day_of(ts):
    return datetime.fromtimestamp(ts / 1000, timezone.utc).strftime("%Y-%m-%d")


def rows(result):
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_counts_add_up_and_malformed_lines_are_kept_with_reasons(lake, events):
    path, report = lake
    assert report.read == report.accepted + report.rejected
    assert (report.accepted, report.rejected) == (len(events), CFG.malformed)
    rejected = [json.loads(line) for line in report.errors_file.read_text().splitlines()]
    assert report.errors_file.parent == path / layout.LOCAL_ERRORS_PREFIX
    assert len(rejected) == CFG.malformed and all(r["problems"] and r["raw"] for r in rejected)
    reasons = " ".join(p for r in rejected for p in r["problems"])
    for expected in ("not JSON", "missing ts", "ts must be an integer", "event_type 'selfie'", "unknown field",
                     "faces/masked/unmasked"):
        assert expected in reasons, expected
    assert len(MALFORMED_KINDS) == 6


def test_lake_layout_is_the_firehose_layout(lake, events):
    path, report = lake
    days = sorted({day_of(e["ts"]) for e in events})
    assert sorted(p.name for p in (path / layout.DATA_PREFIX).iterdir()) == [f"dt={d}" for d in days]
    total = 0
    for file in report.files:
        table = pq.read_table(file, partitioning=None)
        assert table.column_names == list(layout.COLUMN_NAMES)
        assert {day_of(ts) for ts in table.column("ts").to_pylist()} == {file.parent.name[3:]}
        arrived, sent = table.column("ingest_ts").to_pylist(), table.column("ts").to_pylist()
        assert all(0 < a - t <= 2_000 for a, t in zip(arrived, sent, strict=True))   # the generator's delay
        total += table.num_rows
    assert total == report.accepted


def test_unmasked_by_day(results, events):
    expected = defaultdict(lambda: [0, 0, set()])
    for e in events:
        if e["event_type"] == "inference":
            row = expected[day_of(e["ts"])]
            row[0] += e["unmasked"]
            row[1] += e["faces"]
            row[2].add(e["device_id"])
    got = {r["day"]: [int(r["unmasked"]), int(r["faces"]), r["devices"]] for r in rows(results["unmasked_by_day"])}
    assert got == {d: [u, f, len(s)] for d, (u, f, s) in expected.items()}
    assert len(got) == CFG.days and all(v[0] > 0 for v in got.values())


def test_busiest_hours(results, events):
    expected = defaultdict(lambda: [0, 0, 0])
    for e in events:
        if e["event_type"] == "inference":
            row = expected[e["ts"] // 3_600_000 % 24]
            row[0] += e["faces"]
            row[1] += e["unmasked"]
            row[2] += 1
    got = rows(results["busiest_hours"])
    assert {r["hour_of_day"]: [int(r["faces"]), int(r["unmasked"]), r["frames"]] for r in got} == expected
    assert [r["hour_of_day"] for r in got][:1] == [max(expected, key=lambda h: (expected[h][0], -h))]


def test_mask_compliance_by_device_hour_covers_today_only(results, events):
    today = AS_OF.strftime("%Y-%m-%d")
    expected = defaultdict(lambda: [0, 0, 0, 0, 0])
    for e in events:
        if e["event_type"] == "inference" and day_of(e["ts"]) == today:
            row = expected[(e["device_id"], e["ts"] // 3_600_000 * 3_600_000)]
            row[0] += 1
            row[1] += e["faces"]
            row[2] += e["masked"]
            row[3] += e["unmasked"]
            row[4] += e.get("unknown") or 0
    got = {}
    for r in rows(results["mask_compliance_by_device_hour"]):
        key = (r["device_id"], int(r["hour"].timestamp() * 1000))
        got[key] = [r["frames"], int(r["faces"]), int(r["masked"]), int(r["unmasked"]), int(r["unknown"])]
        faces, masked, unmasked = expected[key][1], expected[key][2], expected[key][3]
        assert expected[key][4] == faces - masked - unmasked   # unknown faces are in neither count
        if masked + unmasked:   # compliance over the classified faces: unknown ones are left out
            assert r["compliance_rate"] == pytest.approx(masked / (masked + unmasked), abs=5e-5)
        else:
            assert r["compliance_rate"] is None
    assert got == expected


def test_silent_devices(results, events):
    """Judged on arrival (ingest_ts) of any heartbeat or inference event, not on the device's own ts."""
    as_of_ms = int(AS_OF.timestamp() * 1000)
    last = {}
    for e in events:
        if e["event_type"] in ("heartbeat", "inference"):
            last[e["device_id"]] = max(last.get(e["device_id"], 0), e["ingest_ts"])
    expected = {d: (as_of_ms - ts) // 60_000 for d, ts in last.items() if ts < as_of_ms - 30 * 60_000}
    got = {r["device_id"]: r["minutes_silent"] for r in rows(results["silent_devices"])}
    assert got == expected
    assert len(got) == CFG.silent_devices


def test_silent_minutes_parameter_changes_the_answer(lake):
    (result,) = runner.run_queries(lake[0], [q for q in queries.load() if q.name == "silent_devices"],
                                   params={"silent_minutes": "60"}, as_of=AS_OF)
    assert len(result.rows) == 1   # only the device silent for ~90 minutes


def test_views_are_created_and_agree_with_the_base_table(lake):
    conn = runner.connect(lake[0], "awskrug")
    runner.run_queries(lake[0], queries.load(), as_of=AS_OF, conn=conn)
    view = conn.execute("SELECT sum(faces), sum(unmasked) FROM awskrug.mask_compliance_hourly").fetchone()
    base = conn.execute("SELECT sum(faces), sum(unmasked) FROM awskrug.inference_results "
                    "WHERE event_type = 'inference'").fetchone()
    assert view == base and view[0] > 0
    devices = conn.execute("SELECT count(DISTINCT device_id) FROM awskrug.device_last_heartbeat").fetchone()[0]
    assert devices == CFG.devices


def test_an_empty_lake_answers_with_no_rows(tmp_path):
    results = runner.run_queries(tmp_path, queries.load(), as_of=AS_OF)
    assert results and all(r.rows == [] for r in results)


def test_query_files_follow_the_convention(tmp_path):
    for query in queries.load():
        assert query.template.startswith("-- ") and "${database}." in query.template
    (tmp_path / "no_description.sql").write_text("SELECT 1 FROM ${database}.t\n")
    with pytest.raises(queries.QueryFileError, match="first line"):
        queries.load(tmp_path)
    (tmp_path / "no_description.sql").write_text("-- d\nSELECT ${n} FROM ${database}.t\n")
    with pytest.raises(queries.QueryFileError, match="param: name=default"):
        queries.load(tmp_path)
    (tmp_path / "no_description.sql").write_text("-- d\n-- param: n=1\nSELECT ${n} FROM ${database}.t\n")
    (extra := tmp_path / "extra").mkdir()
    (extra / "no_description.sql").write_text("-- d\nSELECT 1 FROM ${database}.t\n")
    with pytest.raises(queries.QueryFileError, match="defined twice"):
        queries.load(tmp_path, extra)
    (query,) = queries.load(tmp_path)
    assert query.render("db", n=5) == "-- d\n-- param: n=1\nSELECT 5 FROM db.t\n"
    with pytest.raises(queries.QueryFileError, match="must match"):
        query.render("db", n="1; DROP TABLE x")
    with pytest.raises(queries.QueryFileError, match="unknown parameter"):
        query.render("db", m=1)


def test_cli_generate_ingest_query(tmp_path, capsys):
    events_file, lake_dir = tmp_path / "events.jsonl", tmp_path / "lake"
    assert cli.main(["generate", "--devices", "2", "--days", "1", "--interval", "60", "--malformed", "3",
                     "--out", str(events_file)]) == 0
    assert cli.main(["ingest", str(events_file), "--lake", str(lake_dir)]) == 0
    out = capsys.readouterr().out
    lines = len(events_file.read_text().splitlines())
    assert f"{lines}  " in out.splitlines()[2] or str(lines) in out
    assert cli.main(["query", "unmasked_by_day", "--lake", str(lake_dir), "--as-of", "2026-11-01T23:00"]) == 0
    assert "2026-11-01" in capsys.readouterr().out
    assert cli.main(["query", "nope", "--lake", str(lake_dir)]) == 2
    assert "unknown query nope" in capsys.readouterr().err
    assert cli.main(["ingest", str(tmp_path / "missing.jsonl")]) == 2
