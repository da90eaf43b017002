"""Shared helpers of the edge tests: real photos from scikit-image's bundled data, the 640x480 test stream frame,
fault-injection doubles. The device package imports as ``maskcam`` (installed editable from functions/edge by
requirements-dev.txt), its name on a device too."""
import os

import numpy as np

from tests.conftest import ROOT

EDGE_DIR = ROOT / "functions" / "edge"


def astronaut_bgr():
    """skimage's astronaut photo (Eileen Collins), shipped inside the wheel (skimage/data/astronaut.png)."""
    import skimage.data
    assert os.path.isfile(os.path.join(os.path.dirname(skimage.data.__file__), "astronaut.png"))
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def stream_frame():
    """A 640x480 BGR frame with two real faces (the astronaut's head, and mirrored) on a grey background."""
    head = astronaut_bgr()[0:256, 96:352]
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:356, 20:276] = head
    frame[120:376, 360:616] = head[:, ::-1]
    return frame


# Where the faces of stream_frame() are (xmin, ymin, xmax, ymax), from the astronaut's face at ~(177,66)-(272,161).
STREAM_FACES = ((101, 166, 196, 261), (440, 186, 535, 281))


def overlaps(box, expected, min_iou=0.5):
    ax0, ay0, ax1, ay1 = box
    bx0, by0, bx1, by1 = expected
    iw, ih = max(0, min(ax1, bx1) - max(ax0, bx0)), max(0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / float(union) >= min_iou


# -- test doubles of the pipeline: one face per frame, always 80% mask ------------------------------------------------
class OneFaceDetector:
    def detect(self, frame):
        from maskcam.faces import Box
        return [Box(10, 10, 30, 30, 0.9)]


class FixedClassifier:
    name, version, classes = "fake", "1", ["mask", "no_mask"]

    def prepare(self, crops):
        return crops

    def predict(self, crops):
        return np.array([[0.8, 0.2]] * len(crops))


def fake_pipeline():
    from maskcam.pipeline import FramePipeline
    return FramePipeline(OneFaceDetector(), FixedClassifier())


# -- fault injection harness for the edge runner ----------------------------------------------------------------------
import errno  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

DEVICE = "cam-1"
_REAL_MONOTONIC = time.monotonic  # the clock tests may replace time.monotonic with a fake: wait_until keeps this one
_REAL_SLEEP = time.sleep
T0_MS = 1767225600000  # 2026-01-01T00:00:00Z


def inference(i, ts_ms=None, device_id=DEVICE):
    """A valid inference event; ``i`` makes its ts unique (T0 + i ms) unless ``ts_ms`` is given."""
    from maskcam import schema
    return schema.inference_event(device_id, T0_MS + i if ts_ms is None else ts_ms, "fake", "1",
                                  [{"label": "mask", "probability": 0.9, "box": [1, 2, 30, 40]}], 5.0)


class FakeClock:
    """A clock for tests: ``clock()`` returns ``now``; ``advance``/``jump`` move it (negative: a jump back)."""

    def __init__(self, start=0.0):
        self.now = float(start)
        self._lock = threading.Lock()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        with self._lock:
            self.now += seconds

    jump = advance


class _FaultyHandle:
    def __init__(self, handle, fs):
        self._handle, self._fs = handle, fs

    def write(self, data):
        code = self._fs.armed("write")
        if code:
            half = data[:len(data) // 2]
            if half:
                self._handle.write(half)  # a full disk takes part of the data, then fails
            raise OSError(code, os.strerror(code), str(getattr(self._handle, "name", "?")))
        return self._handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False

    def __getattr__(self, name):
        return getattr(self._handle, name)


class FaultyFS:
    """A failing filesystem for a module that uses ``os`` and ``open``: ``fs.install(monkeypatch, module)`` (or
    ``fs.patch(module)`` / ``fs.restore()`` where there is no monkeypatch), then ``fs.fail(op, errno, times)`` arms
    a fault (``times=None``: until ``heal``). Every other call goes to the real filesystem. Operations: ``write``
    (writes half the data, then fails: a full disk), ``open_write``, ``open_read``, ``rename``, ``remove``,
    ``listdir``, ``makedirs``, ``stat`` (isdir / exists / lexists / getsize)."""

    def __init__(self):
        self._faults = {}
        self.hits = {}
        self._patched = []
        fs = self

        class _Path:
            def __getattr__(self, name):
                real = getattr(os.path, name)
                if name in ("isdir", "exists", "lexists", "getsize", "isfile"):
                    def wrapped(path, *a, **k):
                        fs.check("stat", path)
                        return real(path, *a, **k)
                    return wrapped
                return real

        class _Os:
            path = _Path()

            def __getattr__(self, name):
                real = getattr(os, name)
                op = {"rename": "rename", "replace": "rename", "remove": "remove", "unlink": "remove",
                      "listdir": "listdir", "makedirs": "makedirs", "mkdir": "makedirs"}.get(name)
                if op is None:
                    return real

                def wrapped(path, *a, **k):
                    fs.check(op, path)
                    return real(path, *a, **k)
                return wrapped

        self.os = _Os()

    def fail(self, op, err=errno.ENOSPC, times=None):
        self._faults[op] = [err, times]
        return self

    def heal(self, op=None):
        if op is None:
            self._faults.clear()
        else:
            self._faults.pop(op, None)

    def armed(self, op):
        """The errno of the fault armed for ``op`` (consuming one of its ``times``), or None."""
        spec = self._faults.get(op)
        if not spec:
            return None
        self.hits[op] = self.hits.get(op, 0) + 1
        if spec[1] is not None:
            spec[1] -= 1
            if spec[1] <= 0:
                self._faults.pop(op, None)
        return spec[0]

    def check(self, op, path):
        code = self.armed(op)
        if code:
            raise OSError(code, os.strerror(code), str(path))

    def open(self, path, mode="r", *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        self.check("open_write" if writing else "open_read", path)
        handle = open(path, mode, *args, **kwargs)
        return _FaultyHandle(handle, self) if writing else handle

    def patch(self, *modules):
        for module in modules:
            self._patched.append((module, module.__dict__.get("os"), module.__dict__.get("open")))
            module.os = self.os
            module.open = self.open
        return self

    def restore(self):
        for module, real_os, real_open in reversed(self._patched):
            module.os = real_os
            if real_open is None:
                module.__dict__.pop("open", None)
            else:
                module.open = real_open
        self._patched = []

    def install(self, monkeypatch, *modules):
        for module in modules:
            monkeypatch.setattr(module, "os", self.os, raising=False)
            monkeypatch.setattr(module, "open", self.open, raising=False)
        return self


class Refused(RuntimeError):
    """What the publisher double raises for an event it refuses (a generic error, not PublishRefused)."""


class Publisher:
    """A publisher double. ``down``: every call fails; ``fail_next``: that many calls fail; ``refuse(event)``: a
    predicate, those events fail every time; ``gate``: when set to a ``threading.Event``, calls wait for it (a hung
    publisher); ``fail_with``: the exception class for failures. ``published``: what got through (parsed JSON, or
    the raw text when it is not JSON); ``calls``: every call."""

    def __init__(self, fail_next=0, down=False, refuse=None, gate=None, fail_with=ConnectionError):
        self.fail_next, self.down, self.refuse, self.gate, self.fail_with = fail_next, down, refuse, gate, fail_with
        self.published, self.calls, self.threads = [], 0, set()
        self._lock = threading.Lock()

    def publish(self, payload):
        with self._lock:
            self.calls += 1
        self.threads.add(threading.current_thread().name)
        gate = self.gate
        if gate is not None:
            gate.wait()
        try:
            event = json.loads(payload)
        except ValueError:
            event = payload
        if self.refuse is not None and isinstance(event, dict) and self.refuse(event):
            raise Refused("refused: %s" % event.get("ts"))
        with self._lock:
            if self.down or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                raise self.fail_with("publisher down")
            self.published.append(event)


def wait_until(predicate, timeout=5.0):
    """Polls ``predicate`` for up to ``timeout`` real seconds (also while ``time.monotonic`` is faked)."""
    deadline = _REAL_MONOTONIC() + timeout
    while _REAL_MONOTONIC() < deadline:
        if predicate():
            return True
        _REAL_SLEEP(0.005)
    return predicate()


def balance(dispatcher):
    """``submitted + carried_over - (published + replayed + pending + dropped + rejected)`` from the dispatcher's
    own counters: 0 when every event is accounted for (after ``close``, nothing may still be queued)."""
    s = dispatcher.stats
    return s["submitted"] + s["carried_over"] - (s["published"] + s["replayed"] + len(dispatcher.spool) +
                                                 s["dropped"] + s["rejected"])


def parse_summary(line):
    """The runner's exit line (``app.summary``) as a dict of ints."""
    return {k: int(v) for k, v in (item.split("=", 1) for item in line.split())}


def summary_balance(counts):
    """The invariant on the printed counters: 0 when every event is published, pending, dropped or rejected."""
    return counts["submitted"] + counts["carried_over"] - (counts["published"] + counts["replayed"] +
                                                           counts["pending"] + counts.get("queued", 0) +
                                                           counts["dropped"] + counts["rejected"])


def load_runner_copy(name="maskcam._runner_under_fake_time"):
    """A fresh copy of ``functions/edge/maskcam/runner.py``, executed now (so its default arguments bind to
    whatever ``time.time`` / ``time.monotonic`` are at this moment: patch them first). Other modules keep theirs."""
    path = ROOT / "functions" / "edge" / "maskcam" / "runner.py"
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
