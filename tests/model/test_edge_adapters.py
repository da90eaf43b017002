"""The edge classifier's MXNet and ONNX Runtime adapters load a real export made by the model pipeline and agree.

Runs in .venv-model (mxnet 1.9.1); the edge package is pure Python plus numpy here (no OpenCV needed)."""
import numpy as np
import pytest

from maskcam.adapters.models import MXNetClassifier, OnnxClassifier, load_classifier

pytestmark = pytest.mark.mxnet


def face_crops(count=5, seed=0):
    """BGR uint8 crops of different sizes, as the detector hands them to the classifier."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(60 + 17 * i, 50 + 13 * i, 3), dtype=np.uint8) for i in range(count)]


def test_mxnet_and_onnx_adapters_load_the_export_and_give_the_same_probabilities(exported):
    export_dir, manifest = exported
    mx_clf, ort_clf = MXNetClassifier(str(export_dir)), OnnxClassifier(str(export_dir))
    for clf in (mx_clf, ort_clf):
        assert (clf.name, clf.version, clf.classes) == (manifest["name"], manifest["version"], manifest["classes"])
    crops = face_crops()
    mx_probs, ort_probs = mx_clf.classify(crops), ort_clf.classify(crops)
    assert mx_probs.shape == ort_probs.shape == (len(crops), len(manifest["classes"]))
    assert np.allclose(mx_probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(mx_probs[:, 0]) > 1e-6  # different faces give different outputs: the comparison is not vacuous
    np.testing.assert_allclose(mx_probs, ort_probs, atol=1e-4)


def test_auto_backend_prefers_onnx_and_mxnet_is_selectable(exported):
    export_dir, _ = exported
    assert isinstance(load_classifier(str(export_dir)), OnnxClassifier)
    assert isinstance(load_classifier(str(export_dir), backend="mxnet"), MXNetClassifier)
