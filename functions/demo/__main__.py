"""``python -m functions.demo [--out .demo] [--frames 40] [--source PATH]``: the whole system on one machine, offline.

Synthesizes and checks every stack, runs the edge classifier on sample frames (or ``--source``), feeds its events
and generated history through the local lake, normalizes a generated Wi-Fi CSV, runs every named Athena query
locally, prints the results and writes the charts. ``make demo`` runs it after setting up what is missing.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from string import Template

from tabulate import tabulate

from functions.analytics import queries
from functions.demo import samples, steps

TABLE_ROWS = 12  # rows printed per result table (the full results are in the output folder)


@dataclass
class Options:
    out: Path = Path(".demo")
    frames: int = 40
    source: str | None = None          # camera index, video file, image folder or URL; default: sample frames
    model: Path | None = None          # an export directory; default: the project's own, built once (model.build)
    cdk_out: Path = Path("cdk.out")
    synth: bool = True
    history_days: int = 7
    history_devices: int = 3
    wifi_records: int = 400


@dataclass
class Demo:
    """What every step produced (the end-to-end test checks these numbers hop by hop)."""
    options: Options
    synth_summary: str | None = None
    manifest: dict = field(default_factory=dict)
    frame_files: list[Path] = field(default_factory=list)
    edge: steps.EdgeRun | None = None
    lake: steps.EventsIngest | None = None
    wifi: object = None
    as_of: datetime | None = None
    results: list = field(default_factory=list)
    alerts: steps.AlertsRun | None = None
    charts: list[Path] | None = None
    seconds: float = 0.0


class Progress:
    def __init__(self, total: int, echo=print):
        self.total, self.echo, self.n = total, echo, 0
        self.started = time.perf_counter()

    def start(self, what: str) -> float:
        self.n += 1
        self.echo(f"\n[{self.n}/{self.total}] {what} ...")
        return time.perf_counter()

    def done(self, since: float, what: str) -> None:
        self.echo(f"[{self.n}/{self.total}] {what} ({time.perf_counter() - since:.1f} s)")


def _table(rows, headers, limit: int = TABLE_ROWS) -> str:
    """The first and the last rows of a long table (the last hold the latest hours), all of a short one."""
    if len(rows) <= limit:
        return tabulate(rows, headers=headers, floatfmt=".4g")
    head, tail = limit - limit // 3, limit // 3
    lines = tabulate(rows[:head] + rows[-tail:], headers=headers, floatfmt=".4g").splitlines()
    return "\n".join(lines[:2 + head] + [f"... {len(rows) - limit} more rows"] + lines[2 + head:])


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def scene_table(edge: steps.EdgeRun, frame_files: list[Path]) -> list:
    """Per sample scene: frames, faces in the scene, faces detected, labels. Inference event i is frame i (the
    folder source reads in name order and every sample frame is readable)."""
    per: dict[str, Counter[str]] = {}
    for path, event in zip(frame_files, edge.of_type("inference"), strict=False):  # a frame that fails has no event
        scene = path.stem.split("-", 2)[2]
        row = per.setdefault(scene, Counter())
        row["frames"] += 1
        row["expected"] += samples.SCENE_FACES[scene]
        row["faces"] += event["faces"]
        row["mask"] += event["masked"]
        row["no_mask"] += event["unmasked"]
        row["unknown"] += event.get("unknown") or 0
    return [[s, c["frames"], c["expected"], c["faces"], c["mask"], c["no_mask"], c["unknown"]]
            for s, c in per.items()]


def run(opts: Options, echo=print) -> Demo:
    demo = Demo(options=opts)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(8 if opts.synth else 7, echo)
    echo(f"demo: the whole system on this machine, offline; outputs go to {out.resolve()}  ({steps.cpu_load()})")

    export_dir = opts.model or steps.MODEL_EXPORT
    t = progress.start(f"model: SqueezeNet 1.1 export in {export_dir}/" +
                       ("" if opts.model or steps.model_is_built(export_dir)
                        else " (first run: the model pipeline builds it: real faces with masks put on, training "
                             "from scratch in .venv-model, export; about 30-60 min on 2 cores, progress below)"))
    demo.manifest = steps.build_model(export_dir) if opts.model is None else steps.load_manifest(opts.model)
    m = demo.manifest
    echo(f"    {steps.model_summary(m)}")
    caveat = steps.model_caveat(m)
    if caveat:
        echo(_indent(f"!! {caveat}"))
    progress.done(t, f"model: {m['name']} {m['version']} ready")

    if opts.synth:
        t = progress.start(f"synth: every stack into {opts.cdk_out}/ with the gates on (cdk-nag AwsSolutions, CDK "
                           "validation) and this model in the Greengrass component; the first run also bundles the "
                           "Lambda dependencies with pip")
        demo.synth_summary = steps.synthesize(opts.cdk_out, export_dir)
        stacks = sum(1 for line in demo.synth_summary.splitlines() if not line.startswith(" "))
        echo(_indent(demo.synth_summary))
        progress.done(t, f"synth: {stacks} stacks synthesized, no unacknowledged nag finding, validation passed")

    source: Path | str
    if opts.source is None:
        source = out / "frames"
        demo.frame_files = samples.write_frames(source, opts.frames)
        what = (f"{opts.frames} frames ({', '.join(samples.SCENES)}: photos shipped with scikit-image; masked: a "
                f"mask put on) in {source}/")
    else:
        source = opts.source
        what = f"up to {opts.frames} frames from {source}"
    t = progress.start(f"edge classifier: maskcam ({steps.detector_name()} face detector + ONNX Runtime) on {what}")
    demo.edge = edge = steps.classify(str(source), export_dir, out / "edge", max_frames=opts.frames)
    if demo.frame_files:
        echo(_indent(_table(scene_table(edge, demo.frame_files),
                            ["scene", "frames", "faces in scene", "faces detected", "mask", "no_mask",
                             "unknown"])))
        echo("    (faces detected beyond the faces in a scene are the detector's false positives; unknown: top "
             "probability below the threshold)")
    echo(f"    {edge.summary}")
    echo(f"    events: {edge.events_file}   latest annotated frame: {edge.annotated or '-'}")
    kinds = Counter(e["event_type"] for e in edge.events)
    progress.done(t, f"edge classifier: {edge.frames} frames -> {kinds['inference']} inference events, "
                     f"{kinds['heartbeat']} heartbeats, {kinds['error']} errors (device id {steps.DEVICE_ID})")

    lake = out / "lake"
    demo.as_of = as_of = steps.now_utc()
    t = progress.start(f"lake: generated history + the device's events into {lake}/ (Firehose layout, Parquet)")
    demo.lake = li = steps.ingest_events(lake, edge.events_file, history_days=opts.history_days,
                                         history_devices=opts.history_devices, as_of=demo.as_of)
    echo(f"    history (generated, functions.analytics.generator): {li.history_rows:,} events from "
         f"{', '.join(li.history_devices)}, {li.history_start} 00:00 .. {demo.as_of:%Y-%m-%d %H:%M} UTC" +
         (f"; {li.quiet_device} went quiet {steps.QUIET_MINUTES} minutes ago" if li.quiet_device else ""))
    echo(f"    device {steps.DEVICE_ID}: read {li.read} = accepted {li.accepted} + rejected {li.rejected}" +
         (f" (kept in {li.rejected_file})" if li.rejected_file else ""))
    progress.done(t, f"lake: {li.history_rows + li.accepted:,} events in {li.parquet_files} Parquet files")

    t = progress.start(f"Wi-Fi: a generated portal CSV ({opts.wifi_records} records + "
                       f"{len(samples.BAD_WIFI_VALUES)} bad ones, CP949, CRLF) -> the free_wifi_standard_data table")
    demo.wifi = w = steps.ingest_wifi(lake, opts.wifi_records)
    echo(f"    {w.source}: {w.encoding}, {w.line_ending}, layout {w.layout}, {w.bytes_in:,} bytes")
    echo(f"    rows: in {w.rows_in} = ok {w.rows_ok} + rejected {w.rows_rejected} "
         f"(by column: {dict(w.rejected_by_column) or '-'}); rejects in {w.outputs.get('rejects') or '-'}")
    progress.done(t, f"Wi-Fi: {w.rows_ok} rows in {w.outputs['data']}")

    t = progress.start(f"queries: every named Athena query on the local lake (DuckDB via sqlglot), as of "
                       f"{demo.as_of:%Y-%m-%d %H:%M:%S} UTC")
    demo.results = steps.run_queries(lake, demo.as_of)
    descriptions = {q.name: Template(q.description).safe_substitute(q.params) for q in queries.load()}
    for result in demo.results:
        echo(f"\n  == {result.name} ({len(result.rows)} rows): {descriptions[result.name]}")
        echo(_indent(_table(result.rows, result.columns)))
    progress.done(t, f"queries: {len(demo.results)} queries answered "
                     f"(device events are {steps.DEVICE_ID}, the rest is generated history)")

    demo.alerts = show_alerts(lake, as_of, demo, progress, echo)

    t = progress.start(f"charts: the dashboard preview (every chart of functions/analytics/chart_spec.py, as the "
                       f"QuickSight dashboard shows it) into {out / 'charts'}/")
    demo.charts = steps.render_charts(lake, out / "charts", as_of=demo.as_of)
    echo(_indent("\n".join(str(p) for p in demo.charts)))
    progress.done(t, f"charts: {len(demo.charts)} PNG files in {out / 'charts'}/")

    demo.seconds = time.perf_counter() - progress.started
    echo(f"\ndemo finished in {demo.seconds:.1f} s ({steps.cpu_load()}); outputs in {out.resolve()}/: "
         "frames/, model/, edge/events.jsonl, lake/ (inference/, tables/, raw/, quarantine/), charts/")
    return demo


def show_alerts(lake: Path, as_of: datetime, demo: Demo, progress: Progress, echo) -> steps.AlertsRun:
    """The business alerts the deployed evaluator would send on this lake (docs/operations.md)."""
    t = progress.start("alerts: the device alerts the deployed evaluator (functions/alerts) would send on this data")
    run = steps.evaluate_alerts(lake, as_of)
    th = run.thresholds
    echo(f"    rules (cdk.json): silent > {th.silent_minutes} min; compliance < {th.compliance_min:.0%} with "
         f">= {th.min_faces} classified faces over the last {th.window_hours} h (whole UTC hours)")
    if demo.lake:
        echo(f"    generated on purpose: {demo.lake.quiet_device or '-'} goes quiet, {demo.lake.low_compliance_device} "
             f"masks {steps.LOW_MASKED_RATIO:.0%} of faces")
    from functions.alerts import messages

    for alert in run.alerts:
        echo(f"    ALERT {messages.headline(alert)}")
    progress.done(t, f"alerts: {len(run.alerts)} would be sent (once per episode), "
                     f"{run.ignored_rows} unusable query rows ignored")
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m functions.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Options.out, help="output folder (default .demo)")
    p.add_argument("--frames", type=int, default=Options.frames, help="frames to classify (default 40)")
    p.add_argument("--source", help="camera index, video file, image folder or stream URL instead of the samples")
    p.add_argument("--model", type=Path, help="a model export directory instead of the project's own")
    p.add_argument("--cdk-out", type=Path, default=Options.cdk_out, dest="cdk_out")
    p.add_argument("--no-synth", action="store_false", dest="synth", help="skip step 1 (synth)")
    p.add_argument("--history-days", type=int, default=Options.history_days, dest="history_days")
    p.add_argument("--wifi-records", type=int, default=Options.wifi_records, dest="wifi_records")
    args = p.parse_args(argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)   # a StringIO it is redirected to has none
    if reconfigure is not None:
        reconfigure(line_buffering=True)
    if args.frames < 1 or args.history_days < 0 or args.wifi_records < 0:
        p.error("--frames must be at least 1, --history-days and --wifi-records not negative")
    try:
        run(Options(**vars(args)))
    except steps.DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
