"""Displays: ``show(frame, detections)`` and ``close()``; run on the display thread, never the inference thread.

- ``FifoDisplay``: the DeepLens project stream: annotated JPEG frames written to the FIFO ``/tmp/results.mjpeg``
  (view on the device with ``mplayer -demuxer lavf -lavfdopts format=mjpeg:probesize=32 /tmp/results.mjpeg``);
- ``FileDisplay``: the latest annotated frame as a JPEG file, replaced atomically;
- ``WindowDisplay``: an OpenCV window (needs a GUI build of OpenCV, not the headless one)."""
import errno
import os

COLORS = {"mask": (0, 200, 0), "no_mask": (0, 0, 230)}
DEEPLENS_FIFO = "/tmp/results.mjpeg"


def annotate(frame, detections):
    """A copy of ``frame`` with a box and ``label probability`` per face (green mask, red no mask)."""
    import cv2
    image = frame.copy()
    for det in detections:
        xmin, ymin, xmax, ymax = det["box"]
        color = COLORS.get(det["label"], (255, 255, 255))
        cv2.rectangle(image, (xmin, ymin), (xmax, ymax), color, 2)
        cv2.putText(image, "%s %.2f" % (det["label"], det["probability"]), (xmin, max(12, ymin - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2)
    return image


def encode_jpeg(image, size=None, quality=80):
    import cv2
    if size:
        image = cv2.resize(image, size)
    ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class FifoDisplay:
    """Writes JPEG frames to a FIFO when a reader is attached; frames are skipped (never waited for) without one."""

    def __init__(self, path=DEEPLENS_FIFO, size=(858, 480)):
        self.path, self.size = path, size
        self.fd = None
        self.written = 0
        if not os.path.exists(path):
            os.mkfifo(path)

    def _open(self):
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno == errno.ENXIO:  # no reader yet
                return False
            raise
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self.fd = fd
        return True

    def show(self, frame, detections):
        if self.fd is None and not self._open():
            return
        data = encode_jpeg(annotate(frame, detections), self.size)
        try:
            view = memoryview(data)
            while view:
                fd = self.fd   # read for every write: close() from another thread may have closed it meanwhile
                if fd is None:
                    return
                view = view[os.write(fd, view):]
            self.written += 1
        except OSError as err:
            if err.errno != errno.EPIPE:
                raise
            self.close()  # the reader went away; reopen when one comes back

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FileDisplay:
    def __init__(self, path):
        self.path = path
        self.written = 0

    def show(self, frame, detections):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(encode_jpeg(annotate(frame, detections)))
        os.rename(tmp, self.path)
        self.written += 1

    def close(self):
        pass


class WindowDisplay:
    def __init__(self, title="maskcam"):
        import cv2
        self._cv2, self.title = cv2, title

    def show(self, frame, detections):
        self._cv2.imshow(self.title, annotate(frame, detections))
        self._cv2.waitKey(1)

    def close(self):
        self._cv2.destroyAllWindows()


def make_display(spec):
    """``none``, ``fifo`` / ``fifo:<path>``, ``file:<path.jpg>`` or ``window``."""
    kind, _, arg = str(spec or "none").partition(":")
    if kind == "none":
        return None
    if kind == "fifo":
        return FifoDisplay(arg or DEEPLENS_FIFO)
    if kind == "file" and arg:
        return FileDisplay(arg)
    if kind == "window":
        return WindowDisplay()
    raise ValueError("display %r is not none, fifo[:path], file:<path> or window" % spec)
