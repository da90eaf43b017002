"""The export directory contract shared by `export`, `publish` and the edge classifier's adapters.

Pure standard library (no mxnet, no numpy), so the main venv, the publisher and device code can all check an export.

An export directory holds::

    <name>-symbol.json    MXNet graph, DeepLens-optimizer friendly (see ``optimizer_problems``)
    <name>-0000.params    MXNet weights
    <name>.onnx           the same graph for ONNX Runtime
    manifest.json         what a loader needs: classes, input contract, file names, checksums, versions, metrics

Both graphs take ``data`` (N, 3, 224, 224) float32, RGB, ``(pixel * scale - mean) / std`` per channel, and end in a
softmax named ``probabilities``: they return class probabilities in the order of ``manifest["classes"]``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import cast

from maskcam.manifest import DEFAULT_INPUT, MANIFEST_FILE, sha256_file

MANIFEST = MANIFEST_FILE
INPUT_NAME = "data"
OUTPUT_NAME = "probabilities"
# DEFAULT_INPUT is an untyped dict of mixed values (the device code runs on Python 3.7): the casts only name the types.
WIDTH, HEIGHT = cast(int, DEFAULT_INPUT["width"]), cast(int, DEFAULT_INPUT["height"])
SCALE = cast(float, DEFAULT_INPUT["scale"])
MEAN = tuple(cast("list[float]", DEFAULT_INPUT["mean"]))
STD = tuple(cast("list[float]", DEFAULT_INPUT["std"]))
DEFAULT_CLASSES = ("mask", "no_mask")

INPUT_SPEC = dict(DEFAULT_INPUT, name=INPUT_NAME)

# Names the DeepLens model optimizer accepts: a layer name, optionally followed by one parameter suffix. Gluon's
# export adds `<prefix>..._fwd` style names, which the optimizer rejects; `export` renames every node to this form.
PARAM_SUFFIXES = ("weight", "bias", "gamma", "beta", "running_mean", "running_var")
_GOOD_NAME = re.compile(r"^[a-z]+[0-9]*(_(%s))?$" % "|".join(PARAM_SUFFIXES))
_REJECTED_PARTS = ("_fwd", "_output", "_bwd")


class ExportError(Exception):
    """An export directory that does not follow the contract; the message names the problem."""


def file_names(name: str) -> dict:
    return {"symbol": f"{name}-symbol.json", "params": f"{name}-0000.params", "onnx": f"{name}.onnx"}


def optimizer_problems(symbol: dict) -> list:
    """What the DeepLens model optimizer would choke on in an MXNet symbol (parsed JSON); empty when fine.

    Rules (from the DeepLens developer guide and its forum threads): no layer name with Gluon's `_fwd`-style suffixes,
    every Pooling layer states its stride explicitly.
    """
    problems = []
    for node in symbol.get("nodes", []):
        name, op = node.get("name", ""), node.get("op")
        if any(part in name for part in _REJECTED_PARTS) or not _GOOD_NAME.match(name):
            problems.append(f"layer name {name!r} ({op}) is not of the form <layer><n>[_<param>]")
        if op == "Pooling" and "stride" not in (node.get("attrs") or {}):
            problems.append(f"pooling layer {name!r} has no explicit stride")
    return problems


def symbol_class_count(symbol: dict) -> int:
    """Number of outputs of the classifier: ``num_filter`` of the last convolution (SqueezeNet's output layer)."""
    convs = [n for n in symbol.get("nodes", []) if n.get("op") == "Convolution"]
    if not convs:
        raise ExportError("the symbol has no Convolution layer, so it is not a SqueezeNet classifier")
    return int(convs[-1]["attrs"]["num_filter"])


def symbol_output_op(symbol: dict) -> str:
    heads = symbol.get("heads") or [[len(symbol["nodes"]) - 1, 0, 0]]
    return symbol["nodes"][heads[0][0]].get("op", "")


def load_manifest(export_dir: Path) -> dict:
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{path}: missing; is {export_dir} an export directory (python -m model export)?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None


_MANIFEST_KEYS = ("name", "version", "classes", "input", "output", "files", "sha256", "frameworks", "metrics",
                  "pretrained")
_FILE_ROLES = ("symbol", "params", "onnx")


def check_export(export_dir) -> dict:
    """Validates an export directory against the contract and returns its manifest; raises ExportError naming
    every problem found (missing files, checksum mismatch, class count mismatch, optimizer-hostile symbol)."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir}: not a directory")
    manifest = load_manifest(export_dir)
    problems = [f"manifest has no {key!r}" for key in _MANIFEST_KEYS if key not in manifest]
    if problems:
        raise ExportError(f"{export_dir}: broken export: " + "; ".join(problems))
    problems.extend(_manifest_problems(manifest))
    problems.extend(_file_problems(export_dir, manifest))
    problems.extend(_symbol_problems(export_dir, manifest))
    if problems:
        raise ExportError(f"{export_dir}: broken export: " + "; ".join(problems))
    return manifest


def _manifest_problems(manifest: dict) -> list:
    """The manifest's own fields against the contract: classes, output name, input spec, pretrained flag."""
    problems = []
    classes = manifest["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes):
        problems.append(f"classes must be a list of at least 2 distinct names, got {classes!r}")
    if manifest["output"] != OUTPUT_NAME:
        problems.append(f"output must be {OUTPUT_NAME!r}, got {manifest['output']!r}")
    for key, want in INPUT_SPEC.items():
        got = manifest["input"].get(key)
        if not _input_matches(got, want):
            problems.append(f"input.{key} is {got!r}, the contract says {want!r}")
    if not isinstance(manifest["pretrained"], bool):
        problems.append("pretrained must be true or false")
    return problems


def _input_matches(got, want) -> bool:
    """Floats (and lists of floats) match within 1e-9 and element for element, anything else exactly."""
    if not (isinstance(want, float) or (isinstance(want, list) and want and isinstance(want[0], float))):
        return got == want
    if got is None:
        return False
    got, want = _as_list(got), _as_list(want)
    # Same length first, then element by element (no zip(strict=True): this module must run on Python 3.7).
    return len(got) == len(want) and all(abs(got[i] - want[i]) < 1e-9 for i in range(len(want)))


def _file_problems(export_dir: Path, manifest: dict) -> list:
    """Every model file the manifest names is present and matches its recorded sha256."""
    problems = []
    files = manifest["files"]
    for role in _FILE_ROLES:
        fname = files.get(role)
        if not fname:
            problems.append(f"files.{role} is missing from the manifest")
            continue
        path = export_dir / fname
        if not path.is_file():
            problems.append(f"{fname} ({role}) is missing")
            continue
        want = manifest["sha256"].get(fname)
        if want is None:
            problems.append(f"no sha256 for {fname} in the manifest")
        elif sha256_file(path) != want:
            problems.append(f"{fname}: sha256 does not match the manifest (file changed or truncated)")
    return problems


def _symbol_problems(export_dir: Path, manifest: dict) -> list:
    """The MXNet symbol (when present) parses, has as many outputs as the manifest has classes, ends in a softmax
    and suits the DeepLens optimizer."""
    files = manifest["files"]
    symbol_path = export_dir / files.get("symbol", "")
    if not (files.get("symbol") and symbol_path.is_file()):
        return []
    try:
        symbol = json.loads(symbol_path.read_text())
    except json.JSONDecodeError as e:
        return [f"{symbol_path.name}: not valid JSON ({e})"]
    problems = []
    classes = manifest["classes"]
    try:
        n = symbol_class_count(symbol)
        if isinstance(classes, list) and n != len(classes):
            problems.append(f"class count mismatch: the model has {n} outputs, the manifest lists "
                            f"{len(classes)} classes {classes}")
    except ExportError as e:
        problems.append(str(e))
    if symbol_output_op(symbol) != "softmax":
        problems.append("the symbol does not end in a softmax, so it would not return probabilities")
    problems.extend(optimizer_problems(symbol))
    return problems


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]
