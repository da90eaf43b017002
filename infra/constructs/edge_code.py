"""Where the device application lives and what of it is deployed (the Lambda asset and the Greengrass artifact)."""
from __future__ import annotations

from pathlib import Path

EDGE_DIR = Path(__file__).resolve().parents[2] / "functions" / "edge"


def check_installed_package() -> None:
    """The ``maskcam`` this process imports (the settings, the schema, the IoT SQL come from it) must be the one the
    assets are built from: an editable install made in another checkout would make the two disagree."""
    import maskcam

    where = Path(maskcam.__file__).resolve().parent.parent
    if where != EDGE_DIR:
        raise RuntimeError(f"maskcam is imported from {where}, not from this checkout's {EDGE_DIR}: the venv's "
                           f"editable install points elsewhere; re-run `make setup` here")


check_installed_package()
# Development files stay out of the Lambda and Greengrass assets, so their hashes (and the component's version) depend
# only on the code: linter caches appear wherever `make lint` ran, and the packaging (pyproject.toml: `maskcam`,
# installed editable by requirements-dev.txt) leaves maskcam.egg-info (and a build/ folder for a wheel) wherever
# `make setup` ran.
EDGE_EXCLUDES = ["tests", "**/tests", "**/__pycache__", "*.pyc", "**/*.pyc", ".pytest_cache", "*.egg-info",
                 "maskcam-spool", "*.jsonl", ".ruff_cache", "**/.ruff_cache", ".mypy_cache", "ruff.toml",
                 "pyproject.toml", "build/**", "dist/**"]   # top-level only: CDK matches "build" at any depth

# The cloud Lambda's dependencies (maskcam.cloud; a layer) and the files of them it never loads, removed after pip
# to stay under Lambda's 250 MB unzipped limit (everything installed is ~295 MB; see docs/cloud-classifier.md).
CLOUD_REQUIREMENTS = EDGE_DIR.parent / "cloud_classifier_layer" / "requirements.txt"
CLOUD_PRUNE = (
    "onnxruntime/capi/libonnxruntime.so.*",  # C API library for native programs; the Python binding is self-contained
    "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools",  # offline model tooling
    "numpy/**/tests",
    # OpenCV's other cascades (the detector uses haarcascade_frontalface_default.xml)
    "cv2/data/haarcascade_frontalface_alt_tree.xml", "cv2/data/haarcascade_profileface.xml",
    "cv2/data/haarcascade_*body.xml", "cv2/data/haarcascade_*eye*.xml", "cv2/data/haarcascade_*cat*.xml",
    "cv2/data/haarcascade_*plate*.xml", "cv2/data/haarcascade_smile.xml",
)
