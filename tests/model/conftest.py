"""Fixtures of the `mxnet` tests (run in .venv-model by `make test`, with --confcutdir=tests/model so the main
tests/conftest.py, which imports aws_cdk, is not loaded here). One small synthetic dataset and one 2-epoch training
run per session keep these tests well under two minutes on 2 cores."""
from __future__ import annotations

import pytest

CLASSES = ["mask", "no_mask"]


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    from model import synthetic

    return synthetic.make_dataset(tmp_path_factory.mktemp("data") / "faces", per_class=12, seed=0, size=64)


@pytest.fixture(scope="session")
def trained_run(synthetic_data, tmp_path_factory):
    from model import train

    run_dir = tmp_path_factory.mktemp("run")
    metrics = train.train(synthetic_data, run_dir, CLASSES, epochs=2, batch_size=8, val_fraction=0.25, seed=0,
                          pretrained=False, progress=False)
    return run_dir, metrics


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    from model import export

    out = tmp_path_factory.mktemp("export")
    manifest = export.export(trained_run[0], out, name="mask-classifier", version="1")
    return out, manifest


@pytest.fixture(scope="session")
def split_data(synthetic_data, tmp_path_factory):
    """The synthetic images as ``python -m model dataset`` lays them out: 6 train, 4 val, 2 test per class (val and
    test of different sizes, so a test can tell which one a figure came from)."""
    import shutil

    root = tmp_path_factory.mktemp("split") / "data"
    for split in ("train", "val", "test"):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
    for cls in CLASSES:
        for i, f in enumerate(sorted((synthetic_data / cls).glob("*.jpg"))):
            shutil.copy(f, root / ("train" if i < 6 else "val" if i < 10 else "test") / cls / f.name)
    return root
