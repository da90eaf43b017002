"""The pure core and the offline adapters on real images: skimage's bundled astronaut photo, OpenCV's bundled Haar
cascade, and a real SqueezeNet 1.1 export made by the model pipeline (tests/model_export_fixture.py: trained one
epoch on synthetic faces, so its probabilities mean nothing about masks; the tests check mechanics, not accuracy)."""
import ast
import json

import cv2
import numpy as np
import pytest

from maskcam import faces, schema
from maskcam.adapters.models import HaarFaceDetector, OnnxClassifier, load_classifier
from maskcam.manifest import ManifestError, load_manifest
from maskcam.pipeline import FramePipeline, check_classes
from maskcam.preprocess import make_batch, resize_bilinear, to_tensor
from tests.edge_support import EDGE_DIR, STREAM_FACES, astronaut_bgr, overlaps, stream_frame

HEAVY = {"cv2", "awscam", "mo", "mxnet", "onnxruntime", "greengrasssdk", "awsiot", "boto3", "botocore"}


@pytest.fixture(scope="module")
def export(model_export):
    return str(model_export)


def edge_files():
    return sorted(p for p in EDGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_device_file_parses_as_python_3_7():
    files = edge_files()
    assert len(files) >= 15
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))


def module_level_imports(tree):
    """Imports executed when the module is imported (not those inside functions, run only when called)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module or ""
        stack.extend(ast.iter_child_nodes(node))


def test_heavy_packages_are_imported_only_inside_adapters():
    for path in edge_files():
        if "adapters" in path.parts:
            continue
        names = set(module_level_imports(ast.parse(path.read_text())))
        assert not {n.split(".")[0] for n in names} & HEAVY, (path, names)
    probe = ast.parse("import os\nclass A:\n    import cv2\ndef f():\n    import mxnet\n")
    assert set(module_level_imports(probe)) == {"os", "cv2"}  # a class body runs at import; a function's does not


def test_bilinear_resize_matches_opencv_on_a_real_photo():
    img = astronaut_bgr()
    for size in ((224, 224), (300, 300), (640, 480), (97, 133)):
        ours = resize_bilinear(img, *size)
        theirs = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1.0, size


def test_to_tensor_applies_training_normalization_in_rgb_chw():
    crop = np.zeros((50, 40, 3), np.uint8)
    crop[:, :] = (255, 128, 0)  # BGR: blue 255, green 128, red 0
    tensor = to_tensor(crop)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32
    expected = [(0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]  # R, G, B
    assert np.allclose(tensor[:, 100, 100], expected, atol=1e-5)
    assert make_batch([crop, crop]).shape == (2, 3, 224, 224)
    with pytest.raises(ValueError, match="HxWx3"):
        to_tensor(np.zeros((5, 5), np.uint8))


def test_batch_follows_the_manifest_color_order_layout_and_normalization():
    crop = np.zeros((30, 20, 3), np.uint8)
    crop[:, :] = (200, 100, 50)  # B, G, R
    spec = {"width": 8, "height": 6, "layout": "NHWC", "color": "BGR", "scale": 0.5, "mean": [1.0, 2.0, 3.0],
            "std": [2.0, 4.0, 5.0]}
    batch = make_batch([crop, crop], spec)
    assert batch.shape == (2, 6, 8, 3) and batch.dtype == np.float32
    assert np.allclose(batch[1, 3, 4], [(100 - 1) / 2, (50 - 2) / 4, (25 - 3) / 5])
    assert make_batch([], spec).shape == (0, 6, 8, 3)


def test_ssd_parse_result_is_scaled_to_frame_pixels_and_thresholded():
    objects = [{"label": 1, "prob": 0.9, "xmin": 30, "ymin": 60, "xmax": 150, "ymax": 240},
               {"label": 1, "prob": 0.1, "xmin": 0, "ymin": 0, "xmax": 10, "ymax": 10},
               {"label": 1, "prob": 0.5, "xmin": 250, "ymin": -5, "xmax": 320, "ymax": 40}]
    boxes = faces.from_ssd(objects, (480, 640, 3), input_size=(300, 300), threshold=0.25)
    assert [tuple(b[:4]) for b in boxes] == [(64, 96, 320, 384), (533, 0, 640, 64)]  # scaled, clipped, best first


def test_opencv_rects_and_crops_are_clipped_to_the_frame():
    frame = np.zeros((100, 200, 3), np.uint8)
    boxes = faces.from_rects([(150, 80, 100, 100), (10, 10, 20, 20)], frame.shape)
    assert [tuple(b[:4]) for b in boxes] == [(150, 80, 200, 100), (10, 10, 30, 30)]
    assert faces.crop(frame, boxes[1], margin=0.5).shape == (40, 40, 3)


def test_haar_detector_finds_the_face_on_a_real_photo():
    boxes = HaarFaceDetector().detect(astronaut_bgr())
    assert len(boxes) == 1
    assert overlaps(boxes[0][:4], (177, 66, 272, 161))


def test_haar_detector_finds_both_faces_of_the_640x480_stream_frame():
    for scale in (1.0, 0.5):
        boxes = HaarFaceDetector(scale=scale).detect(stream_frame())
        assert len(boxes) == 2, scale
        for expected in STREAM_FACES:
            assert any(overlaps(b[:4], expected) for b in boxes), (scale, boxes)


def test_squeezenet_onnx_export_loads_through_its_manifest(export):
    clf = load_classifier(export)
    assert isinstance(clf, OnnxClassifier)
    assert clf.classes == ["mask", "no_mask"] and clf.version == "test-seed0"
    crops = [astronaut_bgr()[66:161, 177:272], stream_frame()[186:281, 440:535]]
    probs = clf.classify(crops)
    assert probs.shape == (2, 2)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and (probs >= 0).all()
    assert np.allclose(probs[1:], clf.classify(crops[1:]), atol=1e-5)  # batching does not change a face's result


def test_pipeline_on_a_real_frame_gives_a_schema_valid_event(export):
    pipeline = FramePipeline(HaarFaceDetector(), load_classifier(export), margin=0.1)
    result = pipeline.process(stream_frame())
    event = pipeline.event("cam-1", result, 1767225600000)
    schema.validate(event)
    assert event["faces"] == 2 and event["masked"] + event["unmasked"] + event["unknown"] == 2
    assert event["model_name"] == "mask-classifier" and event["latency_ms"] > 0
    for det in event["detections"]:
        assert any(overlaps(det["box"], expected) for expected in STREAM_FACES)
        assert 0.5 <= det["probability"] <= 1.0
    assert len(schema.to_json(event)) < 2000


def test_pipeline_refuses_classes_the_event_schema_does_not_know():
    with pytest.raises(ValueError, match="not event labels"):
        check_classes(["mask", "cat"])


def test_broken_exports_are_refused_with_the_problem_named(tmp_path, export):
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(str(tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    manifest = json.loads(open(export + "/manifest.json").read())
    (bad / "manifest.json").write_text(json.dumps(dict(manifest, output="logits")))
    with pytest.raises(ManifestError, match="softmax"):
        load_manifest(str(bad))
    (bad / "manifest.json").write_text(json.dumps(manifest))
    (bad / manifest["files"]["onnx"]).write_bytes(b"truncated")
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(str(bad)).path("onnx")
    (bad / manifest["files"]["symbol"]).unlink(missing_ok=True)
    with pytest.raises(ManifestError, match="symbol file .* is missing"):
        load_manifest(str(bad)).path("symbol")


def test_the_opencv_resize_adapters_use_gives_the_same_batch_as_the_numpy_core():
    from maskcam.adapters.models import fastest_resize

    crops = [astronaut_bgr()[66:161, 177:272], stream_frame()[186:281, 440:535]]
    fast, reference = make_batch(crops, resize=fastest_resize()), make_batch(crops)
    assert fastest_resize() is not resize_bilinear  # cv2 is installed here, so the fast path is the one tested
    assert fast.shape == reference.shape == (2, 3, 224, 224)
    assert np.abs(fast - reference).max() <= 1.0 / 255 / 0.224 + 1e-5  # at most one grey level apart
