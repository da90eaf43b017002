"""`python -m model.testing OUT_DIR [--seed N]`: a real, tiny SqueezeNet 1.1 export for tests of other components.

Generates a small synthetic dataset, trains from scratch for one epoch and exports to OUT_DIR following
model.contract. The weights are NOT a usable mask classifier (manifest "pretrained": false, version "test-seed<N>");
they exist so adapters can load a genuine export. Needs the model venv (.venv-model); about 15 s on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def build_test_export(out_dir, seed: int = 0, epochs: int = 1, per_class: int = 8, progress: bool = False) -> dict:
    """Trains on synthetic data and exports to ``out_dir``; returns the manifest."""
    from model import export, synthetic, train

    with tempfile.TemporaryDirectory(prefix="model-testing-") as tmp:
        data = synthetic.make_dataset(Path(tmp) / "data", per_class=per_class, seed=seed, size=64)
        train.train(data, Path(tmp) / "run", ["mask", "no_mask"], epochs=epochs, batch_size=8, lr=0.0003,
                    val_fraction=0.25, seed=seed, pretrained=False, progress=progress)
        return export.export(Path(tmp) / "run", out_dir, name="mask-classifier", version=f"test-seed{seed}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.testing", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build_test_export(args.out_dir, seed=args.seed)
    print(f"{args.out_dir}: {manifest['name']} {manifest['version']} classes={manifest['classes']} "
          f"pretrained={manifest['pretrained']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
