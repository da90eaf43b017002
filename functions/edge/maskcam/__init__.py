"""On-device mask classifier: face detection, then SqueezeNet mask / no-mask per face.

Runs on a DeepLens (Python 3.7, awscam), a Greengrass V2 core, a local camera, and in the cloud Lambda.
Everything in this package must parse as Python 3.7; heavy imports stay inside the adapters that need them."""
