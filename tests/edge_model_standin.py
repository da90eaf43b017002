"""STAND-IN model exports for the edge tests, until the real SqueezeNet export of the model pipeline (issue 4) is
merged: real ONNX graphs built with ``onnx.helper`` with random (seeded) weights, plus a ``manifest.json`` that
follows the export contract. The classifications they produce are meaningless; they exercise loading,
preprocessing, batching and the output contract (1 x 3 x 224 x 224 -> N x 2 softmax probabilities).

- ``tiny``: conv/relu/global-pool/gemm/softmax, milliseconds per face (fast tests);
- ``squeezenet1_1``: the SqueezeNet 1.1 architecture (fire modules, ~0.7M weights, 1x1 conv classifier), so the
  benchmark pays the real model's compute.

Only the ``.onnx`` file is written (no ``-symbol.json`` / ``-0000.params``: building those needs mxnet)."""
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = ["mask", "no_mask"]
INPUT = {"width": 224, "height": 224, "layout": "NCHW", "color": "RGB", "scale": 1 / 255,
         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class _Graph(object):
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, prefix):
        self.n += 1
        return "%s%d" % (prefix, self.n)

    def weight(self, shape, fan_in):
        name = self.name("w")
        value = (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def bias(self, size):
        name = self.name("b")
        self.inits.append(numpy_helper.from_array(np.zeros(size, np.float32), name))
        return name

    def conv(self, x, cin, cout, k, stride=1, pad=0, relu=True):
        out = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, self.weight((cout, cin, k, k), cin * k * k), self.bias(cout)],
                                           [out], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        if not relu:
            return out
        act = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [out], [act]))
        return act

    def maxpool(self, x):
        out = self.name("pool")
        self.nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1))
        return out

    def fire(self, x, cin, squeeze, expand):
        s = self.conv(x, cin, squeeze, 1)
        e1, e3 = self.conv(s, squeeze, expand, 1), self.conv(s, squeeze, expand, 3, pad=1)
        out = self.name("concat")
        self.nodes.append(helper.make_node("Concat", [e1, e3], [out], axis=1))
        return out

    def head(self, x):
        pooled, flat, probs = self.name("gap"), self.name("flat"), "probabilities"
        self.nodes += [helper.make_node("GlobalAveragePool", [x], [pooled]),
                       helper.make_node("Flatten", [pooled], [flat], axis=1)]
        return flat, probs


def _tiny(g):
    x = g.conv("data", 3, 8, 3, stride=4)
    x = g.conv(x, 8, 16, 3, stride=2)
    flat, probs = g.head(x)
    logits = g.name("gemm")
    g.nodes += [helper.make_node("Gemm", [flat, g.weight((len(CLASSES), 16), 16), g.bias(len(CLASSES))], [logits],
                                 transB=1),
                helper.make_node("Softmax", [logits], [probs], axis=1)]


def _squeezenet1_1(g):
    x = g.maxpool(g.conv("data", 3, 64, 3, stride=2))
    x = g.maxpool(g.fire(g.fire(x, 64, 16, 64), 128, 16, 64))
    x = g.maxpool(g.fire(g.fire(x, 128, 32, 128), 256, 32, 128))
    for cin, squeeze, expand in ((256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256)):
        x = g.fire(x, cin, squeeze, expand)
    x = g.conv(x, 512, len(CLASSES), 1)
    flat, probs = g.head(x)
    g.nodes.append(helper.make_node("Softmax", [flat], [probs], axis=1))


ARCHS = {"tiny": _tiny, "squeezenet1_1": _squeezenet1_1}


def write_standin_export(directory, arch="tiny", name=None, seed=0, batch="N"):
    """Writes ``<name>.onnx`` + ``manifest.json`` into ``directory``; returns the directory."""
    name = name or "standin-%s" % arch.replace("_", "-")
    g = _Graph(seed)
    ARCHS[arch](g)
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, len(CLASSES)])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edge-standin")
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(directory, exist_ok=True)
    onnx_file = name + ".onnx"
    onnx.save(model, os.path.join(directory, onnx_file))
    digest = hashlib.sha256(open(os.path.join(directory, onnx_file), "rb").read()).hexdigest()
    manifest = {"name": name, "version": "0-standin", "classes": CLASSES, "input": INPUT,
                "output": "probabilities", "files": {"onnx": onnx_file}, "sha256": {onnx_file: digest},
                "pretrained": False, "standin": True}
    with open(os.path.join(directory, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=2)
    return str(directory)
