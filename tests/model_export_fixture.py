"""A real (tiny) SqueezeNet 1.1 export for main-venv tests, built once per session by the model venv.

The main venv has no mxnet, so the export is made by a subprocess: `.venv-model/bin/python -m model.testing OUT`
(synthetic data, one epoch from scratch, the full export of model.contract; about 10 s on 2 cores). Use it with::

    from tests.model_export_fixture import model_export  # noqa: F401  (pytest fixture)

    def test_something(model_export):  # pathlib.Path of the export directory; treat it as read-only
        ...

Tests that need to break an export copy it first (shutil.copytree). The weights are not a mask classifier
(manifest "pretrained": false).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_PYTHON = ROOT / ".venv-model" / "bin" / "python"


def build_model_export(out_dir, seed: int = 0, timeout: float = 300) -> Path:
    """Runs `python -m model.testing out_dir --seed N` in the model venv; returns ``out_dir``."""
    if not MODEL_PYTHON.exists():
        raise RuntimeError(f"{MODEL_PYTHON} not found: the model venv is missing; run `make model-setup` "
                           f"(or `make test`, which creates it)")
    proc = subprocess.run([str(MODEL_PYTHON), "-m", "model.testing", str(out_dir), "--seed", str(seed)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"python -m model.testing failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return Path(out_dir)


@pytest.fixture(scope="session")
def model_export(tmp_path_factory) -> Path:
    """Directory of a genuine export (mask-classifier, version test-seed0), built once per test session: with
    pytest-xdist (`make test` runs ``-n auto``) once for all workers, by whichever asks first, under a file lock in the
    run's own temporary root (the workers' base directories are inside it), so no worker trains it again."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build_model_export(tmp_path_factory.mktemp("model-export") / "export")
    shared = tmp_path_factory.getbasetemp().parent / "model-export"   # this run's, beside popen-gw0, popen-gw1, ...
    shared.mkdir(exist_ok=True)
    export, done = shared / "export", shared / "built"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes, also when a build fails
        if not done.exists():
            shutil.rmtree(export, ignore_errors=True)   # a failed build's leftovers; the next worker builds afresh
            build_model_export(export)
            done.write_text("model.testing seed 0\n")
    return export
