"""``python -m maskcam.bench --model <export dir>``: model-only inference vs the full pipeline, side by side, on CPU.

- model only: the classifier on the preprocessed faces of one frame per call (as many faces as the pipeline finds
  in the benchmark frame), with the thread count the pipeline gives it, and for reference with every core;
- pipeline: the real ``Runner`` on a 640x480 stream (one frame repeated): face detection + crop/preprocess on its
  stage thread, the model on the inference thread, events handed to the publisher thread (a JSON-lines sink on
  disk), which never runs on the inference path; for reference also the same work on one thread, unstaged.

The frame is built from a real photo (``--frame`` image, or scikit-image's bundled astronaut twice). Prints a table
and ``pipeline/model`` per face against the 90% target."""
import argparse
import functools
import os
import sys
import tempfile
import threading
import time

import numpy as np

from .app import model_threads, pipeline_factory
from .runner import Dispatcher, Runner
from .spool import Spool


def _frame(path):
    import cv2
    if path:
        frame = cv2.imread(path)
        if frame is None:
            raise SystemExit("error: cannot read frame image %s" % path)
        return cv2.resize(frame, (640, 480))
    try:
        import skimage.data
    except ImportError:
        raise SystemExit("error: give --frame <photo with faces> (scikit-image is not installed)") from None
    head = skimage.data.astronaut()[0:256, 96:352, ::-1]
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:356, 20:276] = head
    frame[120:376, 360:616] = head[:, ::-1]
    return frame


def _rate(fn, seconds):
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


class _Repeat:
    """A frame source that returns the same frame forever (a camera pointed at a still scene)."""

    def __init__(self, frame):
        self.frame = frame

    def read(self):
        return True, self.frame

    def close(self):
        pass


def _runner_fps(pipeline, frame, workdir, seconds):
    from .adapters.publishers import JsonLinesPublisher
    dispatcher = Dispatcher(JsonLinesPublisher(os.path.join(workdir, "events.jsonl")),
                            Spool(os.path.join(workdir, "spool")))
    runner = Runner(lambda: _Repeat(frame), lambda: pipeline, dispatcher, "bench", heartbeat_s=3600.0)
    timer = threading.Timer(seconds, runner.stop)
    start = time.perf_counter()
    timer.start()
    runner.run()
    elapsed = time.perf_counter() - start
    if runner.errors:
        raise SystemExit("error: the pipeline failed during the benchmark (%d errors)" % runner.errors)
    return runner.frames / elapsed


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m maskcam.bench", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="model export directory (manifest.json + .onnx)")
    p.add_argument("--backend", default="onnx", choices=("onnx", "mxnet"))
    p.add_argument("--detectors", default="yunet,mtcnn,haar:0.25:80:1.2,haar",
                   help="comma-separated detector specs to compare (the first decides the faces per frame)")
    p.add_argument("--frame", help="a photo with faces, resized to 640x480 (default: skimage astronaut x2)")
    p.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    p.add_argument("--model-threads", type=int, dest="model_threads",
                   help="the model's threads in the pipeline (default as the app: one core fewer than the machine)")
    args = p.parse_args(argv)

    from .adapters.models import load_classifier
    threads = model_threads({"model_threads": args.model_threads})
    frame = _frame(args.frame)
    # the pipelines exactly as the app builds them (detector and model threads included)
    pipelines = [(spec, pipeline_factory({"model": args.model, "backend": args.backend, "detector": spec,
                                          "model_threads": args.model_threads})())
                 for spec in args.detectors.split(",")]
    first = pipelines[0][1]
    classifier = first.classifier
    prepared = first.prepare(frame)
    faces_per_frame = len(prepared.boxes)
    if not faces_per_frame:
        raise SystemExit("error: detector %s finds no face in the benchmark frame" % pipelines[0][0])
    model_fps = faces_per_frame * _rate(lambda: classifier.predict(prepared.inputs), args.seconds)
    every_core = load_classifier(args.model, args.backend)
    every_core_fps = faces_per_frame * _rate(lambda: every_core.predict(prepared.inputs), args.seconds)
    rows = [("model only, %d thread(s) as in the pipeline" % threads, "-", model_fps),
            ("model only, every core (reference)", "-", every_core_fps)]

    workdir = tempfile.mkdtemp(prefix="maskcam-bench-")
    best = 0.0
    for spec, pipeline in pipelines:
        nfaces = len(pipeline.process(frame).detections)
        fps = _runner_fps(pipeline, frame, workdir, args.seconds)
        best = max(best, fps * nfaces) if nfaces == faces_per_frame else best
        rows.append(("pipeline, %s (%d faces/frame)" % (spec, nfaces), "%.1f" % fps, fps * nfaces))
        one_thread = _rate(functools.partial(pipeline.process, frame), args.seconds)
        rows.append(("  same, one thread, unstaged (reference)", "%.1f" % one_thread, one_thread * nfaces))

    print("model %s %s (%s), backend %s, CPU (%d cores), %g s per row, %d faces per model call"
          % (classifier.name, classifier.version,
             "ImageNet-pretrained" if classifier.manifest.pretrained else "trained from scratch", args.backend,
             os.cpu_count() or 0, args.seconds, faces_per_frame))
    print("%-50s %10s %10s %10s" % ("measure", "frames/s", "faces/s", "vs model"))
    for name, frames, faces_s in rows:
        print("%-50s %10s %10.1f %9.0f%%" % (name, frames, faces_s, 100.0 * faces_s / model_fps))
    verdict = "meets" if best >= 0.9 * model_fps else "MISSES"
    print("target: pipeline >= 90%% of model-only faces/s (same model threads) -> best %.0f%% (%s the target); "
          "%.0f%% of the every-core model-only figure" % (100.0 * best / model_fps, verdict,
                                                          100.0 * best / every_core_fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
