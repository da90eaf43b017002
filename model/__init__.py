"""Training, export and publishing of the mask classifier (SqueezeNet 1.1, MXNet Gluon)."""
