"""End to end: the ``make demo`` path on a smaller input, numbers checked at every hop.

frames -> inference events (edge classifier, real Haar detector, real SqueezeNet export) -> lake rows (writer) ->
query results (every named query, local runner), plus the Wi-Fi CSV -> table -> chart queries. Expected query results
are computed in plain Python from the events themselves (the device's JSON lines and the generator's history), not
from the lake, so a loss or duplication in any hop shows up.

Step 1 (synth) is skipped here (``synth=False``): synthesis with the gates on is what the session fixture ``project``
and tests/test_gates.py check. The model is the session fixture ``model_export``: the same ``python -m model.testing``
export the demo builds (the demo's build-once logic is tested separately below).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from functions.analytics import generator, layout, queries
from functions.demo import __main__ as demo_cli
from functions.demo import samples, steps
from maskcam import schema
from functions.wifi_ingest import layout as wifi_layout

pytestmark = pytest.mark.slow   # the demo's steps on real frames, the lake and every query

FRAMES = 8                 # two of each sample scene
HISTORY_DAYS, HISTORY_DEVICES = 2, 2
WIFI_RECORDS = 60


@pytest.fixture(scope="module")
def demo(tmp_path_factory, model_export):
    out = tmp_path_factory.mktemp("demo")
    printed = []
    result = demo_cli.run(demo_cli.Options(out=out, frames=FRAMES, model=model_export, synth=False,
                                           history_days=HISTORY_DAYS, history_devices=HISTORY_DEVICES,
                                           wifi_records=WIFI_RECORDS), echo=printed.append)
    result.printed = "\n".join(printed)
    return result


def _history_rows(demo) -> list:
    """The generator's days up to the run; the last camera stops QUIET_MINUTES before it (the demo's rule)."""
    cfg = steps.history_config(HISTORY_DAYS, HISTORY_DEVICES, demo.as_of.date())
    as_of_ms = demo.as_of.timestamp() * 1000
    quiet_from = as_of_ms - steps.QUIET_MINUTES * 60_000
    return [row for day in range(cfg.days) for row in generator.generate_day(cfg, day).to_pylist()
            if row["ingest_ts"] <= as_of_ms
            and not (row["device_id"] == cfg.device_ids[-1] and row["ts"] > quiet_from)]


def _last_seen(rows, keep=lambda r: True) -> dict:
    """device -> newest arrival (``ingest_ts``) of a heartbeat or inference event, as the silence queries judge it.
    The device's own lines are stamped when the demo ingests them, after their ``ts``: ``ts`` is a lower bound of
    that, enough to tell that the camera is not silent."""
    last = {}
    for r in rows:
        if r["event_type"] in ("heartbeat", "inference") and keep(r):
            seen = r.get("ingest_ts") or r["ts"]
            last[r["device_id"]] = max(last.get(r["device_id"], 0), seen)
    return last


def _all_events(demo) -> list:
    """History rows and the device's events, each with the partition value ``dt`` (UTC day of ``ts``)."""
    rows = _history_rows(demo) + [dict(e) for e in demo.edge.events]
    for row in rows:
        row["dt"] = datetime.fromtimestamp(row["ts"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    return rows


def _within(rows, as_of, days, event_type):
    """The queries' filter: ``dt > current_date - days`` and the event type."""
    first_excluded = (as_of.date() - timedelta(days=days)).isoformat()
    return [r for r in rows if r["dt"] > first_excluded and r["event_type"] == event_type]


def _result(demo, name):
    found = [r for r in demo.results if r.name == name]
    assert len(found) == 1, f"query {name} missing from the demo's results"
    return found[0]


def _records(result) -> list:
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_frames_become_inference_events(demo):
    assert len(demo.frame_files) == FRAMES and all(p.is_file() for p in demo.frame_files)
    edge = demo.edge
    inference = edge.of_type("inference")
    assert edge.frames == FRAMES == len(inference)
    lines = [line for line in edge.events_file.read_text().splitlines() if line.strip()]
    assert len(lines) == len(edge.events)
    # every emitted event was published (local JSON-lines publisher): nothing pending, dropped or refused
    assert edge.stats["submitted"] == edge.stats["published"] == len(edge.events)
    assert edge.pending == edge.stats["dropped"] == edge.stats["rejected"] == 0
    assert edge.of_type("heartbeat") and not edge.of_type("error")
    for event in edge.events:
        assert schema.problems(event) == [] and event["device_id"] == steps.DEVICE_ID
    for path, event in zip(demo.frame_files, inference, strict=True):
        scene = path.stem.split("-", 2)[2]
        assert event["faces"] == len(event["detections"]) == event["masked"] + event["unmasked"] + event["unknown"]
        if scene in ("astronaut", "group", "masked", "rocket"):  # coffee: the Haar cascade once saw faces there
            assert event["faces"] == samples.SCENE_FACES[scene], (path.name, event["detections"])
        assert event["model_version"] == demo.manifest["version"]


def test_events_become_lake_rows(demo):
    lake = demo.options.out / "lake"
    li = demo.lake
    assert li.read == len(demo.edge.events) == li.accepted + li.rejected
    assert li.rejected == 0 and li.rejected_file is None
    history = _history_rows(demo)
    assert li.history_rows == len(history)
    assert li.history_devices == [f"cam-{i:03d}" for i in range(HISTORY_DEVICES)]
    files = sorted((lake / layout.DATA_PREFIX).glob("dt=*/*.parquet"))
    assert len(files) == li.parquet_files
    per_device, per_partition = Counter(), Counter()
    for path in files:
        table = pq.read_table(path)
        per_device.update(table.column("device_id").to_pylist())
        for ts in table.column("ts").to_pylist():
            assert datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d") == path.parent.name[3:]
        per_partition[path.parent.name] += table.num_rows
    assert per_device[steps.DEVICE_ID] == li.accepted
    assert sum(per_device.values()) == len(history) + li.accepted
    assert sum(per_partition.values()) == sum(per_device.values())


def test_every_named_query_answers(demo):
    expected = {q.name for q in queries.load() if not q.is_view}
    assert {r.name for r in demo.results} == expected


def test_inference_queries_match_the_events(demo):
    rows, as_of = _all_events(demo), demo.as_of

    # today's compliance per device and hour: the generated cameras and the device
    hourly = defaultdict(Counter)
    for r in _within(rows, as_of, 1, "inference"):
        hour = datetime.fromtimestamp(r["ts"] // 3_600_000 * 3600, tz=timezone.utc)
        hourly[(r["device_id"], hour)].update(frames=1, faces=r["faces"], masked=r["masked"], unmasked=r["unmasked"],
                                              unknown=r["unknown"] or 0)
    got = _records(_result(demo, "mask_compliance_by_device_hour"))
    assert {(g["device_id"], g["hour"]) for g in got} == set(hourly)
    assert {g["device_id"] for g in got} == {steps.DEVICE_ID, *demo.lake.history_devices}
    for g in got:
        want = hourly[(g["device_id"], g["hour"])]
        assert [int(g[k]) for k in ("frames", "faces", "masked", "unmasked", "unknown")] == \
               [want[k] for k in ("frames", "faces", "masked", "unmasked", "unknown")]
        classified = want["masked"] + want["unmasked"]   # unknown faces are left out of the rate
        rate = round(want["masked"] / classified, 4) if classified else None
        assert g["compliance_rate"] == pytest.approx(rate) if rate is not None else g["compliance_rate"] is None
    assert sum(int(g["frames"]) for g in got if g["device_id"] == steps.DEVICE_ID) == FRAMES

    daily = defaultdict(lambda: [0, 0, set()])
    for r in _within(rows, as_of, 30, "inference"):
        daily[r["dt"]][0] += r["unmasked"]
        daily[r["dt"]][1] += r["faces"]
        daily[r["dt"]][2].add(r["device_id"])
    got = _records(_result(demo, "unmasked_by_day"))
    assert [(g["day"], int(g["unmasked"]), int(g["faces"]), g["devices"]) for g in got] == \
           [(day, u, f, len(d)) for day, (u, f, d) in sorted(daily.items())]
    assert len(got) == HISTORY_DAYS + 1  # full history days + today (history so far and the device)

    hours = defaultdict(Counter)
    for r in _within(rows, as_of, 30, "inference"):
        hours[(r["ts"] // 3_600_000) % 24].update(faces=r["faces"], unmasked=r["unmasked"], frames=1)
    got = _records(_result(demo, "busiest_hours"))
    assert {g["hour_of_day"]: (int(g["faces"]), int(g["unmasked"]), g["frames"]) for g in got} == \
           {h: (c["faces"], c["unmasked"], c["frames"]) for h, c in hours.items()}
    assert [int(g["faces"]) for g in got] == sorted((int(g["faces"]) for g in got), reverse=True)

    first_excluded = (as_of.date() - timedelta(days=7)).isoformat()
    last = _last_seen(rows, lambda r: r["dt"] > first_excluded)
    cutoff_ms = (as_of - timedelta(minutes=30)).timestamp() * 1000
    got = _records(_result(demo, "silent_devices"))
    assert sorted(g["device_id"] for g in got) == sorted(d for d, ts in last.items() if ts < cutoff_ms)
    assert [g["device_id"] for g in got] == [demo.lake.quiet_device] == [f"cam-{HISTORY_DEVICES - 1:03d}"]


def test_wifi_csv_to_chart_queries(demo):
    lake = demo.options.out / "lake"
    raw = lake / wifi_layout.RAW_PREFIX / samples.WIFI_FILE_NAME
    data = raw.read_bytes()
    assert b"\r\n" in data and data.decode("cp949")   # the sample is what the portal ships
    w = demo.wifi
    assert (w.encoding, w.line_ending) == ("cp949", "CRLF")
    assert w.rows_in == WIFI_RECORDS + len(samples.BAD_WIFI_VALUES) == w.rows_ok + w.rows_rejected
    assert w.rows_rejected == len(samples.BAD_WIFI_VALUES)
    rejects = list(csv.reader(io.StringIO(Path(w.outputs["rejects"]).read_text(encoding="utf-8-sig"))))
    assert len(rejects) - 1 == w.rows_rejected
    assert pq.read_table(w.outputs["data"]).num_rows == w.rows_ok

    records = list(csv.DictReader(io.StringIO(data.decode("cp949"), newline="")))
    bad = {tuple(b.items())[0] for b in samples.BAD_WIFI_VALUES}
    columns = {c.header: c.name for c in wifi_layout.COLUMNS}
    good = [r for r in records if not any(r[h] == v for h, name in columns.items() for n, v in bad if n == name)]
    assert len(good) == w.rows_ok
    by_city = Counter(r["설치시도명"] for r in good)
    got = _records(_result(demo, "wifi_count_by_city"))
    assert {g["city"]: g["installations"] for g in got} == dict(by_city)
    by_provider = Counter((r["설치시도명"], r["서비스제공사명"]) for r in good)
    got = _records(_result(demo, "wifi_count_by_service_provider"))
    assert {(g["city"], g["service_provider"]): g["installations"] for g in got} == dict(by_provider)


def test_output_says_the_weights_are_a_stand_in(demo):
    assert demo.manifest["pretrained"] is False
    assert "pretrained: false" in demo.printed
    assert "STAND-IN WEIGHTS, NOT A MASK CLASSIFIER" in demo.printed
    assert "[7/7] charts" in demo.printed and "demo finished in" in demo.printed


def test_charts_step_writes_the_dashboard_preview_one_png_per_spec_chart(demo, tmp_path):
    from functions.analytics import chart_spec

    names = [f"{c.id}.png" for c in chart_spec.charts()]
    assert [p.name for p in demo.charts] == names
    for path in demo.charts:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        assert str(path) in demo.printed
    assert f"charts: {len(names)} PNG files" in demo.printed
    (tmp_path / "old.png").write_bytes(b"stale")
    lake = demo.options.out / "lake"
    assert [p.name for p in steps.render_charts(lake, tmp_path, as_of=demo.as_of)] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)   # the stale file is gone


def test_model_is_built_once_then_reused(model_export, tmp_path, monkeypatch):
    export = tmp_path / "model"
    shutil.copytree(model_export, export)
    monkeypatch.setattr(steps, "MODEL_PYTHON", tmp_path / "no-model-venv" / "python")  # building would fail
    assert steps.build_model(export)["version"] == json.loads((model_export / "manifest.json").read_text())["version"]
    shutil.rmtree(export)
    with pytest.raises(steps.DemoError, match="make model-setup"):
        steps.build_model(export)


def test_cli_refuses_unusable_input(model_export, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        demo_cli.main(["--frames", "0", "--no-synth"])
    assert err.value.code == 2
    missing = tmp_path / "no-such-video.mp4"
    assert demo_cli.main(["--no-synth", "--out", str(tmp_path / "out"), "--model", str(model_export),
                          "--source", str(missing)]) == 1
    assert f"source {missing} does not exist" in capsys.readouterr().err


def test_cli_runs_with_stdout_redirected_to_a_string(monkeypatch):
    """``main`` made stdout line-buffered assuming a file (mypy: a TextIO has no ``reconfigure``); redirected to a
    StringIO (``contextlib.redirect_stdout``, a notebook) it failed with AttributeError before checking anything."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with pytest.raises(SystemExit) as err:
        demo_cli.main(["--frames", "0", "--no-synth"])
    assert err.value.code == 2


def test_the_demo_prints_the_alerts_the_evaluator_would_send(demo):
    """Expected from the events themselves: silent = last arrival (heartbeat or inference) older than the threshold;
    low compliance = the window's classified faces (masked + unmasked, hour buckets from floor_hour(as_of - window))
    at least the minimum, masked share of them below it."""
    from functions.alerts.evaluate import LOW_COMPLIANCE, SILENT, window_start_ms

    th = demo.alerts.thresholds
    as_of_ms = int(demo.as_of.timestamp() * 1000)
    rows = _all_events(demo)
    window = defaultdict(Counter)
    start = window_start_ms(as_of_ms, th.window_hours)
    last = _last_seen(rows)
    for r in rows:
        if r["event_type"] == "inference" and start <= r["ts"] // 3_600_000 * 3_600_000 <= as_of_ms:
            window[r["device_id"]].update(faces=r["masked"] + r["unmasked"], masked=r["masked"])
    expected = {(SILENT, d) for d, ts in last.items() if as_of_ms - ts > th.silent_minutes * 60_000}
    expected |= {(LOW_COMPLIANCE, d) for d, c in window.items()
                 if c["faces"] >= th.min_faces and c["masked"] / c["faces"] < th.compliance_min}
    assert {(a.kind, a.device_id) for a in demo.alerts.alerts} == expected
    assert (SILENT, demo.lake.quiet_device) in expected
    assert (LOW_COMPLIANCE, demo.lake.low_compliance_device) in expected   # enough faces even at night
    assert f"ALERT {demo.lake.quiet_device} silent since " in demo.printed
    assert f"ALERT {demo.lake.low_compliance_device} mask compliance " in demo.printed
