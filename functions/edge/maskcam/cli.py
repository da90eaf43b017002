"""``python -m maskcam``: run the classifier on a webcam, stream, video file or image folder (see README)."""
import argparse
import logging
import signal
import sys

from .app import DEFAULTS, ConfigError, build_runner, summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m maskcam", description="Face-mask classifier on a frame source.")
    p.add_argument("--source", default=DEFAULTS["source"],
                   help="camera index (0), rtsp:// or http:// URL, video file, image folder, or 'deeplens'")
    p.add_argument("--model", required=True,
                   help="model export directory (manifest.json + .onnx/.params) or deeplens:<model name|.xml>")
    p.add_argument("--backend", choices=("auto", "onnx", "mxnet"), default=DEFAULTS["backend"])
    p.add_argument("--model-threads", type=int, dest="model_threads",
                   help="ONNX Runtime threads (default: one core fewer than the machine has, min 1)")
    p.add_argument("--classes", default=DEFAULTS["classes"], help="class order of a deeplens: model")
    p.add_argument("--detector", default=DEFAULTS["detector"],
                   help="auto (default: yunet where its wheel installs, else mtcnn, else haar), "
                        "yunet[:long side px[:threshold]], mtcnn[:long side px[:min face px]], "
                        "haar[:scale[:min face px[:step]]] or deeplens[:ssd.xml]")
    p.add_argument("--min-confidence", type=float, default=DEFAULTS["min_confidence"], dest="min_confidence",
                   help="a face whose top class probability is below this is reported as 'unknown', counted neither "
                        "masked nor unmasked (default %(default)s)")
    p.add_argument("--publisher", default=DEFAULTS["publisher"],
                   help="'-' (stdout), jsonl:<file>, ipc (Greengrass V2) or deeplens (Greengrass V1)")
    p.add_argument("--topic", help="MQTT topic (default $aws/things/<thing>/infer for deeplens, "
                                   "maskcam/<thing>/infer for ipc)")
    p.add_argument("--display", default=DEFAULTS["display"], help="none, file:<path.jpg>, window or fifo[:path]")
    p.add_argument("--rate", type=float, help="at most this many frames per second")
    p.add_argument("--spool", default=DEFAULTS["spool"], help="directory of events waiting to be published")
    p.add_argument("--spool-max", type=int, default=DEFAULTS["spool_max"], dest="spool_max")
    p.add_argument("--device-id", dest="device_id", help="default: $AWS_IOT_THING_NAME or the host name")
    p.add_argument("--heartbeat", type=float, default=DEFAULTS["heartbeat"], help="seconds between heartbeats")
    p.add_argument("--max-frames", type=int, dest="max_frames", help="stop after this many frames")
    p.add_argument("--loop", action="store_true", help="start an image folder over at its end")
    p.add_argument("--log-level", default="INFO", dest="log_level")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {k: v for k, v in vars(args).items() if k != "log_level"}
    try:
        runner = build_runner(options)
    except (ConfigError, ValueError, OSError) as err:
        sys.stderr.write("error: %s\n" % err)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: runner.stop())
    runner.run()
    sys.stderr.write(summary(runner) + "\n")
    return 3 if runner.stalled else 0   # a hung detector: exit so the supervisor (Greengrass) restarts us
