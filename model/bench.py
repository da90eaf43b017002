"""`python -m model.bench` (or `make bench-model`): training throughput, per-image 224x224 inference latency of MXNet
vs ONNX Runtime on CPU, and model size on disk, printed side by side. Synthetic data; about a minute on 2 cores."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _latency_ms(run, x, repeats: int) -> dict:
    for _ in range(5):
        run(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))], "min": times[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=96, help="synthetic training images (half per class)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=100, help="timed inferences per runtime")
    args = parser.parse_args(argv)

    import mxnet as mx
    import onnxruntime

    from model import contract, dataset, export, synthetic, train

    with tempfile.TemporaryDirectory(prefix="model-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data = synthetic.make_dataset(tmp / "data", per_class=args.images // 2, seed=0, size=96)
        # Two epochs: the first includes graph building and allocation, the second is the steady state.
        metrics = train.train(data, tmp / "run", ["mask", "no_mask"], epochs=2, batch_size=args.batch_size,
                              val_fraction=0.125, seed=0, pretrained=False, progress=False)
        steady = metrics["history"][-1]
        manifest = export.export(tmp / "run", tmp / "export", version="bench")
        files = {role: tmp / "export" / name for role, name in manifest["files"].items()}

        face = dataset.list_images(data, ["mask", "no_mask"])[:1]
        x = next(dataset.batches(face, 1))[0]
        net = export.load_mxnet(files["symbol"], files["params"])
        net.hybridize(static_alloc=True, static_shape=True)
        mx_run = lambda batch: net(mx.nd.array(batch)).asnumpy()  # noqa: E731
        session = export.load_onnx(files["onnx"])
        ort_run = lambda batch: session.run(None, {contract.INPUT_NAME: batch})[0]  # noqa: E731
        lat_mx, lat_ort = _latency_ms(mx_run, x, args.repeats), _latency_ms(ort_run, x, args.repeats)
        max_diff = float(np.abs(mx_run(x) - ort_run(x)).max())

        params = mx.nd.load(str(files["params"]))
        n_params = sum(int(np.prod(v.shape)) for v in params.values())
        head = [k for k in params if k.startswith("arg:conv") and k.endswith("_weight")][-1]
        channels = params[head].shape[1]
        imagenet = n_params - (params[head].size + params[head.replace("_weight", "_bias")].size) \
            + channels * 1000 + 1000
        sizes = {role: path.stat().st_size / 1e6 for role, path in files.items()}

    threads = os.cpu_count()
    print(f"model benchmark: SqueezeNet 1.1, 2 classes, CPU ({threads} cores), mxnet {mx.__version__}, "
          f"onnxruntime {onnxruntime.__version__}\n")
    print(f"training (from scratch; fine-tuning costs the same per image), batch {args.batch_size}, 224x224,"
          f" {metrics['train_images']} images/epoch incl. JPEG decode + augmentation:")
    print(f"  {steady['train_images_per_s']:.1f} images/s (steady-state epoch), "
          f"first epoch {metrics['history'][0]['train_images_per_s']:.1f} images/s\n")
    print(f"inference, one 224x224 image per call, {args.repeats} calls after 5 warm-up calls:")
    print(f"  {'runtime':<16}{'median ms':>10}{'p90 ms':>10}{'min ms':>10}{'images/s':>10}")
    for label, lat in (("MXNet (symbol)", lat_mx), ("ONNX Runtime", lat_ort)):
        print(f"  {label:<16}{lat['median']:>10.2f}{lat['p90']:>10.2f}{lat['min']:>10.2f}"
              f"{1000 / lat['median']:>10.1f}")
    print(f"  ONNX Runtime / MXNet median: {lat_ort['median'] / lat_mx['median']:.2f}x;"
          f" max |p_mxnet - p_onnx| = {max_diff:.1e}\n")
    print("model size on disk:")
    print(f"  {'MXNet params':<34}{sizes['params']:>7.2f} MB")
    print(f"  {'MXNet symbol (JSON)':<34}{sizes['symbol']:>7.2f} MB")
    print(f"  {'ONNX':<34}{sizes['onnx']:>7.2f} MB")
    print(f"  parameters: {n_params:,} float32 = {n_params * 4 / 1e6:.2f} MB; with the 1000-class ImageNet head "
          f"(as DeepLens ships it): {imagenet:,} = {imagenet * 4 / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
