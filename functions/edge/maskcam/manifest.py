"""The model export contract (written by ``python -m model export``): a directory holding ``manifest.json`` plus
``<name>-symbol.json``, ``<name>-0000.params`` and ``<name>.onnx``. Pure stdlib so it loads anywhere.

The device side reads exports with this module; the model tooling (``model.contract``) writes and fully checks them
and takes the input spec, file name and checksum from here, so both sides cannot drift apart."""
import hashlib
import json
import os

MANIFEST_FILE = "manifest.json"
DEFAULT_INPUT = {"width": 224, "height": 224, "layout": "NCHW", "color": "RGB", "scale": 1.0 / 255,
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def sha256_file(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ManifestError(ValueError):
    """An export directory that cannot be used; the message names the directory and the problem."""


class ModelManifest:
    """Parsed ``manifest.json``: name, version, classes, input spec and the file paths of the export."""

    def __init__(self, directory, data):
        self.directory = directory
        self.data = data
        self.name = str(data["name"])
        self.version = str(data["version"])
        self.classes = [str(c) for c in data["classes"]]
        spec = dict(DEFAULT_INPUT)
        spec.update(data.get("input") or {})
        self.input = spec
        self.files = dict(data.get("files") or {})
        self.pretrained = bool(data.get("pretrained", False))

    def path(self, kind):
        """Absolute path of the ``symbol``, ``params`` or ``onnx`` file; raises ManifestError when missing."""
        name = self.files.get(kind)
        if not name:
            raise ManifestError("%s: manifest lists no %s file" % (self.directory, kind))
        full = os.path.join(self.directory, name)
        if not os.path.isfile(full):
            raise ManifestError("%s: %s file %s is missing" % (self.directory, kind, name))
        self.verify(name, full, kind)
        return full

    def verify(self, name, full, kind=None):
        """Checks the file against the manifest's sha256 (keyed by file name or by kind) when it records one."""
        sums = self.data.get("sha256")
        expected = (sums.get(name) or sums.get(kind)) if isinstance(sums, dict) else None
        if not expected:
            return
        if sha256_file(full) != expected:
            raise ManifestError("%s: %s does not match its sha256 in the manifest (corrupt or partial download)"
                                % (self.directory, name))


def load_manifest(directory):
    """Reads and checks ``<directory>/manifest.json``."""
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ManifestError("%s: no %s (expected a model export directory)" % (directory, MANIFEST_FILE))
    try:
        with open(path) as handle:
            data = json.load(handle)
    except ValueError as err:
        raise ManifestError("%s: %s is not valid JSON: %s" % (directory, MANIFEST_FILE, err)) from err
    missing = [k for k in ("name", "version", "classes") if not data.get(k)]
    if missing:
        raise ManifestError("%s: manifest misses %s" % (directory, ", ".join(missing)))
    if not isinstance(data["classes"], list) or len(data["classes"]) < 2:
        raise ManifestError("%s: manifest classes must list at least two class names" % directory)
    output = data.get("output", "probabilities")
    if output != "probabilities":
        raise ManifestError("%s: output %r is not 'probabilities' (softmax must be in the graph)" % (directory, output))
    return ModelManifest(directory, data)
