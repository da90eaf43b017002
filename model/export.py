"""`python -m model export`: best checkpoint -> DeepLens-ready MXNet symbol/params, ONNX file and manifest.

Gluon's export names layers `<prefix>conv0_fwd` and so on; the DeepLens model optimizer rejects such names, so every
node is renamed to `<layer><n>` (parameters `<layer><n>_weight`...), and every pooling layer gets an explicit stride.
The graph ends in a softmax named `probabilities`, in both the MXNet and the ONNX file.
"""
from __future__ import annotations

import json
import logging
import platform
import re
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import mxnet as mx
import numpy as np

from model import calibration, contract, dataset, network, train

# ONNX opset of the exported file: every operator SqueezeNet uses has had its current semantics since opset 13, and
# 13 keeps the file loadable by older ONNX Runtime builds (the last one for Python 3.7, as on a DeepLens, is 1.14).
ONNX_OPSET = 13
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LAYER_PREFIX = {"Convolution": "conv", "Activation": "relu", "Pooling": "pool", "Concat": "concat",
                 "Dropout": "dropout", "Flatten": "flatten", "FullyConnected": "fc", "BatchNorm": "batchnorm"}


def deeplens_symbol(symbol: dict):
    """Renames nodes to optimizer-friendly names and makes pooling strides explicit. Returns (symbol, renames)."""
    nodes = symbol["nodes"]
    head = symbol["heads"][0][0]
    counts: Counter[str] = Counter()
    renames: dict[str, str] = {}
    for index, node in enumerate(nodes):
        if node["op"] == "null":
            continue
        new = _layer_name(node, index == head, counts)
        renames[node["name"]] = new
        if node["op"] == "Pooling":
            _make_stride_explicit(node)
        renames.update(_param_renames(node, nodes, new))
    for node in nodes:
        node["name"] = renames.get(node["name"], node["name"])
    return symbol, renames


def _layer_name(node: dict, is_head: bool, counts: Counter) -> str:
    """`probabilities` for the softmax head, else `<layer><n>`, numbering each layer prefix in ``counts``."""
    if is_head and node["op"] == "softmax":
        return contract.OUTPUT_NAME
    prefix = _LAYER_PREFIX.get(node["op"]) or re.sub(r"[^a-z]", "", node["op"].lower())
    if node["op"] == "Activation":
        prefix = node["attrs"]["act_type"]
    new = f"{prefix}{counts[prefix]}"
    counts[prefix] += 1
    return new


def _make_stride_explicit(node: dict) -> None:
    """A pooling layer without a stride gets (1, 1) when global, its kernel otherwise (MXNet's defaults)."""
    attrs = node.setdefault("attrs", {})
    if "stride" not in attrs:
        global_pool = attrs.get("global_pool", "False") in ("True", "true", "1")
        attrs["stride"] = "(1, 1)" if global_pool else attrs["kernel"]


def _param_renames(node: dict, nodes: list, new: str) -> dict:
    """{old: `<new>_<suffix>`} for the parameter inputs of ``node`` (the graph's data input is left alone)."""
    renames = {}
    for input_index, _, _ in node["inputs"]:
        param = nodes[input_index]
        if param["op"] != "null" or param["name"] == contract.INPUT_NAME:
            continue
        suffix = next((s for s in contract.PARAM_SUFFIXES if param["name"].endswith("_" + s)), None)
        if suffix is None:
            raise ValueError(f"unexpected parameter {param['name']!r} of layer {node['name']!r}")
        renames[param["name"]] = f"{new}_{suffix}"
    return renames


def _onnx_cleanup(path: Path, classes) -> None:
    """Initializers out of the graph inputs (ORT warns and skips constant folding otherwise), unused ones dropped,
    opset pinned to ONNX_OPSET, class names as metadata; then the ONNX checker validates the result."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    initializer_names = {init.name for init in keep}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    del graph.input[:]
    graph.input.extend(inputs)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = ONNX_OPSET
    model.metadata_props.add(key="classes", value=json.dumps(list(classes)))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def export(run_dir, out_dir, name="mask-classifier", version=None) -> dict:
    """Writes the export directory (see model.contract) and returns the manifest."""
    import onnx
    import onnxruntime
    from mxnet.onnx import export_model

    if not _NAME.match(name):
        raise contract.ExportError(f"model name {name!r}: use lower-case letters, digits, '-' or '_' (max 63)")
    version = version or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if not _NAME.match(version):
        raise contract.ExportError(f"version {version!r}: use lower-case letters, digits, '-' or '_' (max 63)")
    logits, config, metrics = train.load_checkpoint(run_dir)
    classes = config["classes"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = contract.file_names(name)

    decision = decision_offset(logits, config)
    net = network.WithProbabilities(logits, decision and [decision["offset"], 0.0])
    net.hybridize()
    probe = mx.nd.array(np.random.RandomState(0).uniform(-2, 2, (2, 3, contract.HEIGHT, contract.WIDTH)))
    expected = net(probe).asnumpy()
    with tempfile.TemporaryDirectory() as tmp:
        net.export(str(Path(tmp) / "gluon"))
        symbol = json.loads((Path(tmp) / "gluon-symbol.json").read_text())
        params = mx.nd.load(str(Path(tmp) / "gluon-0000.params"))
    symbol, renames = deeplens_symbol(symbol)
    (out_dir / files["symbol"]).write_text(json.dumps(symbol, indent=2) + "\n")
    renamed = {}
    for key, value in params.items():
        kind, old = key.split(":", 1)
        renamed[f"{kind}:{renames[old]}"] = value
    mx.nd.save(str(out_dir / files["params"]), renamed)

    reloaded = load_mxnet(out_dir / files["symbol"], out_dir / files["params"])
    got = reloaded(probe).asnumpy()
    if not np.allclose(got, expected, atol=1e-6):
        raise contract.ExportError(f"the renamed MXNet graph differs from the trained network by "
                                   f"{np.abs(got - expected).max():.2e}")

    logging.getLogger().setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # mxnet 1.9.1 uses onnx.mapping, deprecated in onnx 1.15
        export_model(str(out_dir / files["symbol"]), str(out_dir / files["params"]),
                     in_shapes=[(1, 3, contract.HEIGHT, contract.WIDTH)], in_types=[np.float32],
                     onnx_file_path=str(out_dir / files["onnx"]), dynamic=True,
                     dynamic_input_shapes=[(None, 3, contract.HEIGHT, contract.WIDTH)])
    _onnx_cleanup(out_dir / files["onnx"], classes)

    summary = {k: metrics[k] for k in ("best_epoch", "best_val_acc", "best_val_loss", "train_images", "val_images",
                                       "test_acc", "test_images", "split") if k in metrics}
    manifest = {
        "name": name,
        "version": version,
        "classes": classes,
        "input": dict(contract.INPUT_SPEC),
        "output": contract.OUTPUT_NAME,
        "files": files,
        "sha256": {f: contract.sha256_file(out_dir / f) for f in files.values()},
        "frameworks": {"mxnet": mx.__version__, "onnx": onnx.__version__, "onnx_opset": ONNX_OPSET,
                       "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                       "python": platform.python_version()},
        "metrics": summary,
        "pretrained": bool(config.get("pretrained", False)),
        "architecture": "squeezenet1.1",
        "training": {k: config[k] for k in ("seed", "epochs", "batch_size", "lr", "lr_schedule", "train_images",
                                            "val_images", "test_images", "split") if k in config},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if decision:
        manifest["decision"] = decision
    (out_dir / contract.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return contract.check_export(out_dir)


def decision_offset(logits_net, config):
    """model.calibration's offset for the ``mask`` logit, chosen on the run's validation split, with the recalls
    before and after on val and test; None for a run without identity splits or not of two classes."""
    data_dir, classes = Path(config.get("data_dir", "")), config["classes"]
    if len(classes) != 2 or not str(config.get("split", "")).startswith("by identity"):
        return None
    if not dataset.has_splits(data_dir):
        raise contract.ExportError(f"{data_dir}: the run was trained on this identity-split dataset, which is not "
                                   f"there any more; the decision offset is chosen on its val split (rebuild it "
                                   f"with the same recipe, or export from the folder the run used)")
    parts = dataset.list_splits(data_dir, classes)
    try:   # before the forward pass: a manifest that is not this dataset's fails at once
        groups, grouped_by = dataset.identity_groups(data_dir, parts["val"])
    except dataset.DatasetError as e:
        raise contract.ExportError(str(e)) from None

    def logits_of(samples) -> tuple[np.ndarray, np.ndarray]:
        rows = [logits_net(mx.nd.array(x)).asnumpy() for x, _ in dataset.batches(samples, 64)]
        return np.concatenate(rows), np.array([s.label for s in samples])

    val = calibration.decide(*logits_of(parts["val"]), groups)
    result = {"offset": val["offset"], "class": classes[0],
              "chosen_on": f"val ({val['images']} images, {val['groups']} {grouped_by})",
              "at_limit": val["at_limit"], "offset_found": val["offset_found"], "kept": val["kept"],
              "interval": val["interval"], "resamples": val["resamples"], "reason": val["reason"],
              "rule": "minimizes the worse of the two classes' miss rates on val (ties: fewest misses, then the "
                      f"middle of the tied offsets), kept only when the central {calibration.AGREEMENT:.0%} of the "
                      f"offsets found on {val['resamples']} bootstrap resamples of the val groups is on its side of 0; "
                      "val also chose the checkpoint, so only the test recalls are unbiased",
              "val_recall_before": dict(zip(classes, val["recall_before"], strict=True)),
              "val_recall_after": dict(zip(classes, val["recall_after"], strict=True))}
    if parts["test"]:
        test_logits, test_labels = logits_of(parts["test"])
        for key, offset in (("test_recall_before", 0.0), ("test_recall_after", val["offset"])):
            result[key] = dict(zip(classes, calibration.recalls(test_logits, test_labels, offset), strict=True))
    return result


def load_mxnet(symbol_path, params_path):
    """The exported graph as a Gluon SymbolBlock (input ``data``, output class probabilities)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Cannot decide type for data": it is float32
        return mx.gluon.SymbolBlock.imports(str(symbol_path), [contract.INPUT_NAME], str(params_path))


def load_onnx(onnx_path, threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
