"""Frame sources: ``read() -> (ok, bgr_frame)`` and ``close()``; finite sources raise ``EndOfStream`` at the end.

``open_source(spec)`` picks one: ``deeplens`` (awscam.getLastFrame), a camera index (``0``), an RTSP/HTTP URL, a
video file, or a folder of images (sorted by name)."""
import os

from ..runner import EndOfStream

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class SourceError(ValueError):
    """A frame source that cannot be opened; the message names it."""


class AwscamFrames:
    """The DeepLens camera. ``awscam`` must be imported before ``cv2`` on the device, so nothing else here is."""

    def __init__(self):
        import awscam
        self._awscam = awscam

    def read(self):
        return self._awscam.getLastFrame()

    def close(self):
        pass


class OpenCVFrames:
    """A camera index, stream URL or video file through ``cv2.VideoCapture``."""

    def __init__(self, target, width=None, height=None):
        import cv2
        self.target = target
        self.finite = isinstance(target, str) and "://" not in target
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            raise SourceError("cannot open video source %r" % (target,))
        if width and height and not self.finite:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)

    def read(self):
        ok, frame = self.capture.read()
        if not ok and self.finite:
            raise EndOfStream(self.target)
        return ok, frame

    def close(self):
        self.capture.release()


class FolderFrames:
    """Images of a folder in name order (``loop`` starts over at the end). Unreadable files count as failed reads."""

    def __init__(self, folder, loop=False, paths=None):
        import cv2
        self._imread = cv2.imread
        self.paths = paths or [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                               if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not self.paths:
            raise SourceError("folder %r holds no images (%s)" % (folder, ", ".join(IMAGE_EXTENSIONS)))
        self.loop = loop
        self.index = 0

    def read(self):
        if self.index >= len(self.paths):
            if not self.loop:
                raise EndOfStream(self.paths[-1])
            self.index = 0
        path = self.paths[self.index]
        self.index += 1
        frame = self._imread(path)
        return frame is not None, frame

    def close(self):
        pass


def open_source(spec, width=640, height=480, loop=False):
    """Builds the source named by ``spec`` (see module doc)."""
    spec = str(spec).strip()
    if spec in ("deeplens", "awscam"):
        return AwscamFrames()
    if spec.isdigit():
        return OpenCVFrames(int(spec), width, height)
    if "://" in spec:
        return OpenCVFrames(spec, width, height)
    if os.path.isdir(spec):
        return FolderFrames(spec, loop=loop)
    if os.path.isfile(spec):
        if spec.lower().endswith(IMAGE_EXTENSIONS):
            return FolderFrames(os.path.dirname(spec) or ".", loop=loop, paths=[spec])
        return OpenCVFrames(spec)
    raise SourceError("source %r is not 'deeplens', a camera index, a URL, a video file or an image folder" % spec)

