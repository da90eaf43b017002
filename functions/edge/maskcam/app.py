"""Builds the runner from plain options (CLI flags or DeepLens environment variables): adapters chosen by name."""
import os
import socket
import time

from . import schema
from .manifest import load_manifest
from .pipeline import FramePipeline
from .runner import Backoff, Dispatcher, Runner
from .spool import Spool

DEFAULTS = {
    "source": "0",
    "model": None,              # export directory, or deeplens:<model name or .xml> for the awscam classifier
    "backend": "auto",          # onnx | mxnet | auto (export directories)
    "model_threads": None,      # ONNX Runtime intra-op threads; None: one core fewer than the machine has
    "classes": "mask,no_mask",  # only for deeplens: models, which carry no manifest
    "detector": "auto",          # yunet where its wheel installs, else mtcnn, else haar (adapters.models)
    "publisher": "-",
    "topic": None,
    "display": "none",
    "rate": None,
    "spool": "maskcam-spool",
    "spool_max": 10000,
    "device_id": None,
    "heartbeat": 60.0,
    "max_frames": None,
    "loop": False,
    "margin": 0.1,
    "min_confidence": schema.DEFAULT_MIN_CONFIDENCE,   # a face below it is reported as unknown
    "backoff": 0.5,
}


class ConfigError(ValueError):
    """Options that cannot work; the message says which and why."""


def check(options):
    """Fails fast on what retrying cannot fix (missing model export, missing file source)."""
    model = options.get("model")
    if not model:
        raise ConfigError("--model is required: a model export directory or deeplens:<model>")
    if not str(model).startswith("deeplens:"):
        try:
            load_manifest(model)
        except ValueError as err:
            raise ConfigError(str(err)) from err
    source = str(options["source"])
    if source not in ("deeplens", "awscam") and not source.isdigit() and "://" not in source \
            and not os.path.exists(source):
        raise ConfigError("source %s does not exist (use a camera index, a URL, a video file, an image folder "
                          "or deeplens)" % source)
    if options.get("rate") is not None and float(options["rate"]) <= 0:
        raise ConfigError("--rate must be a positive number of frames per second")
    if options.get("min_confidence") is not None and not 0.0 <= float(options["min_confidence"]) <= 1.0:
        raise ConfigError("--min-confidence must be between 0 and 1 (a face below it is reported as unknown)")
    if options.get("model_threads") is not None and int(options["model_threads"]) < 1:
        raise ConfigError("--model-threads must be at least 1")


# The runner's stage thread detects faces on one core (OpenCV's own worker threads would compete with the model).
DETECTOR_THREADS = 1


def model_threads(options):
    """The model's CPU threads: the runner's stage thread (detection, preprocessing) keeps one core busy, so by
    default the model gets the others rather than competing with it for every core."""
    if options.get("model_threads"):
        return int(options["model_threads"])
    return max(1, (os.cpu_count() or 2) - 1)


def classifier_factory(options):
    model = str(options["model"])
    if model.startswith("deeplens:"):
        from .adapters.models import AwscamClassifier
        classes = [c.strip() for c in options["classes"].split(",") if c.strip()]
        return lambda: AwscamClassifier(model[len("deeplens:"):], classes)
    from .adapters.models import load_classifier
    return lambda: load_classifier(model, options["backend"], model_threads(options))


def pipeline_factory(options):
    """``load_pipeline()`` for the runner (it calls it again after a failure): detector + classifier as configured."""
    from .adapters.models import load_detector
    options = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    load_classifier = classifier_factory(options)

    def load_pipeline():
        return FramePipeline(load_detector(options["detector"], DETECTOR_THREADS), load_classifier(),
                             margin=float(options["margin"]), timer=getattr(time, "monotonic", time.time),
                             min_confidence=float(options["min_confidence"]))
    return load_pipeline


def build_runner(options):
    options = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    check(options)
    from .adapters.display import make_display
    from .adapters.frames import open_source
    from .adapters.publishers import make_publisher

    load_pipeline = pipeline_factory(options)

    def open_frames():
        return open_source(options["source"], loop=bool(options["loop"]))

    spool = Spool(options["spool"], int(options["spool_max"]))
    dispatcher = Dispatcher(make_publisher(options["publisher"], options["topic"]), spool,
                            rejected_path=os.path.join(options["spool"], "rejected.jsonl"))
    device_id = options["device_id"] or os.environ.get("AWS_IOT_THING_NAME") or socket.gethostname()
    return Runner(open_frames, load_pipeline, dispatcher, device_id,
                  display=make_display(options["display"]),
                  rate=float(options["rate"]) if options["rate"] else None,
                  heartbeat_s=float(options["heartbeat"]),
                  backoff=Backoff(float(options["backoff"]), 2.0, 30.0),
                  max_frames=int(options["max_frames"]) if options["max_frames"] else None)


SUMMARY_KEYS = ("submitted", "published", "replayed", "spooled", "pending", "queued", "dropped", "rejected",
                "carried_over", "lost", "dead_lettered", "clock_rejected", "spool_errors", "rejected_write_errors")


def summary(runner):
    """The exit line. Every event is accounted for: ``submitted + carried_over = published + replayed + pending +
    queued + dropped + rejected``, with ``queued=0`` after the run (``lost``: part of dropped, deleted from the spool
    by someone else; ``dead_lettered`` and ``clock_rejected``: part of rejected)."""
    counts = runner.dispatcher.counts()
    return "frames=%d errors=%d " % (runner.frames, runner.errors) + \
        " ".join("%s=%d" % (key, counts[key]) for key in SUMMARY_KEYS)
