"""Demo inputs: camera-like frames made from real photos that scikit-image ships, and a portal-style Wi-Fi CSV.

Scenes (640x480 BGR, like a camera): the astronaut (Eileen Collins, one face), a group (her head three times at
different sizes on a grey wall), the astronaut with a mask put on (no package has a photo of someone wearing a real
mask: the model pipeline's way, ``model.faces.put_mask``), and scenes without faces (coffee cup, rocket) as
negatives. Frame ``i`` is scene
``i % len(SCENES)`` shifted and lit slightly differently, so no two frames are equal.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

import numpy as np

from functions.wifi_ingest import sample as wifi_sample

FRAME_SIZE = (640, 480)


def _photo(name: str) -> np.ndarray:
    """A photo bundled in the scikit-image wheel (skimage/data/*.png|jpg, no download), as BGR uint8."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[:, :, 2::-1])


def _fit(image: np.ndarray) -> np.ndarray:
    """Scaled to cover 640x480 and centre-cropped."""
    import cv2

    width, height = FRAME_SIZE
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top:top + height, left:left + width]


def _group() -> np.ndarray:
    """Three faces on a grey wall: the astronaut's head at three sizes, the middle one mirrored."""
    import cv2

    head = _photo("astronaut")[0:256, 96:352]
    width, height = FRAME_SIZE
    frame = np.full((height, width, 3), 90, np.uint8)
    frame[40:296, 10:266] = head
    frame[200:400, 290:490] = cv2.resize(head[:, ::-1], (200, 200), interpolation=cv2.INTER_AREA)
    frame[60:210, 480:630] = cv2.resize(head, (150, 150), interpolation=cv2.INTER_AREA)
    return frame


def _masked() -> np.ndarray:
    """The astronaut wearing a light-blue surgical mask, put on from her MTCNN landmarks."""
    from maskcam.adapters.models import MtcnnDetector
    from model import faces as fs

    photo = _photo("astronaut")
    _, points = MtcnnDetector(long_side=0, min_face=40).detect_with_landmarks(photo)[0]
    return _fit(fs.put_mask(photo, np.array(points), fs.seeded_rng("demo"), "surgical-drawn", "light-blue"))


SCENES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": lambda: _fit(_photo("astronaut")),     # one face
    "group": _group,                                    # three faces
    "masked": _masked,                                  # one face, with a mask
    "coffee": lambda: _fit(_photo("coffee")),           # no face
    "rocket": lambda: _fit(_photo("rocket")),           # no face
}
# Faces a person sees in each scene (what a perfect detector would find).
SCENE_FACES = {"astronaut": 1, "group": 3, "masked": 1, "coffee": 0, "rocket": 0}


def frame(index: int, scenes: dict[str, np.ndarray]) -> np.ndarray:
    """Frame ``index``: its scene shifted by a few pixels and with its brightness changed by a few levels."""
    names = list(scenes)
    base = scenes[names[index % len(names)]]
    cycle = index // len(names)
    shifted = np.roll(base, shift=(cycle % 7) * 3 - 9, axis=1)
    return np.clip(shifted.astype(np.int16) + (cycle % 5) * 4 - 8, 0, 255).astype(np.uint8)


def write_frames(folder: Path, count: int) -> list[Path]:
    """Writes ``count`` frames as ``frame-NNNNN-<scene>.jpg`` (name order = frame order); returns the paths."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("frame-*.jpg"):
        stale.unlink()
    scenes = {name: make() for name, make in SCENES.items()}
    names = list(scenes)
    paths = []
    for i in range(count):
        path = folder / f"frame-{i:05d}-{names[i % len(names)]}.jpg"
        if not cv2.imwrite(str(path), frame(i, scenes), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


WIFI_FILE_NAME = "전국무료와이파이표준데이터.csv"
# Records the normalizer must reject (the reason names the column), mixed into the sample.
BAD_WIFI_VALUES = ({"latitude": "북위 37도"}, {"installed_at": "작년 봄"})


def write_wifi_csv(folder: Path, records: int, seed: int = 6) -> Path:
    """A generated portal file (older 15-column layout, CP949, CRLF) of ``records`` good records plus
    ``len(BAD_WIFI_VALUES)`` bad ones."""
    folder.mkdir(parents=True, exist_ok=True)
    recs = wifi_sample.records(records + len(BAD_WIFI_VALUES), seed)
    for k, bad in enumerate(BAD_WIFI_VALUES):
        recs[(k + 1) * len(recs) // (len(BAD_WIFI_VALUES) + 1)].update(bad)
    path = folder / WIFI_FILE_NAME
    path.write_bytes(wifi_sample.file_bytes(recs, layout="standard-15", encoding="cp949", newline="\r\n"))
    return path
