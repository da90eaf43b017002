"""SqueezeNet 1.1 (the model DeepLens ships) with a new output layer for our classes. Needs mxnet."""
from __future__ import annotations

import mxnet as mx
from mxnet import gluon
from mxnet.gluon.model_zoo import vision

WEIGHTS_URL_HINT = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/models/squeezenet1.1-33ba0f93.zip"


class PretrainedUnavailable(Exception):
    """ImageNet weights could not be loaded (typically: no internet and no local copy)."""


def build(num_classes: int, pretrained: bool, weights_dir=None) -> gluon.HybridBlock:
    """SqueezeNet 1.1 returning logits; with ``pretrained`` its feature layers carry the ImageNet weights.

    The output layer is Gluon's own SqueezeNet head (1x1 conv to ``num_classes``, relu, 13x13 average pooling with
    an explicit stride, flatten), freshly initialized, as in the DeepLens fine-tuning samples.
    """
    net = vision.squeezenet1_1(classes=num_classes, prefix="squeezenet_")
    if pretrained:
        kwargs = {"root": str(weights_dir)} if weights_dir else {}
        try:
            imagenet = vision.squeezenet1_1(pretrained=True, **kwargs)
        except Exception as e:  # requests' ConnectionError, a truncated file, a sha1 mismatch, ...
            where = weights_dir or "~/.mxnet/models"
            raise PretrainedUnavailable(
                f"could not load the ImageNet weights of SqueezeNet 1.1 from {where} or the internet "
                f"({type(e).__name__}: {e}). Without internet: unzip squeezenet1.1-33ba0f93.params from "
                f"{WEIGHTS_URL_HINT} (on a machine that has internet) into a folder and pass --weights-dir FOLDER; "
                f"or train from scratch with --no-pretrained (far less accurate on small datasets)") from None
        net.features = imagenet.features
    else:
        net.features.initialize(mx.init.MSRAPrelu())  # He init: the features are a plain ReLU stack
    # The new layer starts small and with a positive bias, so its ReLU is not dead from the first step.
    for name, param in net.output.collect_params().items():  # init= here overrides Conv2D's own zero bias init
        param.initialize(init=mx.init.Constant(0.1) if name.endswith("bias") else mx.init.Normal(0.01))
    return net


class WithProbabilities(gluon.HybridBlock):
    """Adds the softmax to a logits network, so the exported graph returns class probabilities. With ``offsets``
    (one per class, model.calibration) a fixed layer adds them to the logits first: a fully connected layer with
    the identity as weights and the offsets as bias, an operator every runtime of the export has."""

    def __init__(self, logits: gluon.HybridBlock, offsets=None, **kwargs):
        super().__init__(prefix="", **kwargs)
        self.logits = logits
        self.offset = None
        if offsets is not None:
            n = len(offsets)
            self.offset = gluon.nn.Dense(n, in_units=n, prefix="offset_")
            self.offset.initialize()
            self.offset.weight.set_data(mx.nd.eye(n))
            self.offset.bias.set_data(mx.nd.array(offsets))
            self.offset.collect_params().setattr("grad_req", "null")

    def hybrid_forward(self, F, x):
        logits = self.logits(x)
        if self.offset is not None:
            logits = self.offset(logits)
        return F.softmax(logits, axis=-1)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)
