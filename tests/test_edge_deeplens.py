"""The DeepLens path end to end with test doubles of ``awscam``, ``mo`` and ``greengrasssdk`` injected through
``sys.modules``: the real ``greengrassHelloWorld`` module starts its loop at import (as on the device), frames come
from awscam.getLastFrame, events go to ``$aws/things/<AWS_IOT_THING_NAME>/infer``, JPEG frames into the FIFO."""
import importlib
import json
import os
import sys
import threading
import types

import pytest

from maskcam import schema
from tests.edge_support import STREAM_FACES, stream_frame

SSD_XML = "/opt/awscam/artifacts/mxnet_deploy_ssd_FP16_FUSED.xml"


class FakeModel:
    """awscam.Model double: the face SSD returns the stream frame's two faces in 300x300 input coordinates; the
    classifier says 'mask' (class 0) with 0.9. Records which threads call it and whether two calls ever overlap
    (the GPU is one device)."""

    running, overlaps, threads = [], [], set()

    def __init__(self, path, options):
        assert options == {"GPU": 1}
        self.path = path

    def doInference(self, image):
        FakeModel.threads.add(threading.current_thread().name)
        FakeModel.running.append(self.path)
        if len(FakeModel.running) > 1:
            FakeModel.overlaps.append(tuple(FakeModel.running))
        threading.Event().wait(0.001)
        FakeModel.running.remove(self.path)
        return {"input_shape": image.shape}

    def parseResult(self, kind, raw):
        if kind == "ssd":
            assert raw["input_shape"] == (300, 300, 3)
            sx, sy = 300 / 640.0, 300 / 480.0
            return {"ssd": [{"label": 1, "prob": 0.97, "xmin": x0 * sx, "ymin": y0 * sy, "xmax": x1 * sx,
                             "ymax": y1 * sy} for x0, y0, x1, y1 in STREAM_FACES]}
        assert kind == "classification" and raw["input_shape"] == (224, 224, 3)
        return {"classification": [{"label": 0, "prob": 0.9}, {"label": 1, "prob": 0.1}]}


@pytest.fixture
def deeplens(tmp_path, monkeypatch):
    frames = {"n": 0, "fail_every": 4}

    def get_last_frame():
        frames["n"] += 1
        if frames["n"] % frames["fail_every"] == 0:
            return False, None  # the camera drops a frame now and then
        return True, stream_frame()

    awscam = types.ModuleType("awscam")
    awscam.getLastFrame = get_last_frame
    awscam.Model = FakeModel
    mo = types.ModuleType("mo")
    optimized = []
    mo.optimize = lambda name, w, h: optimized.append((name, w, h)) or (0, "/opt/awscam/artifacts/%s.xml" % name)
    published = []

    class IotData:
        def publish(self, topic, payload):
            published.append((topic, json.loads(payload), threading.current_thread().name))

    ggsdk = types.ModuleType("greengrasssdk")
    ggsdk.client = lambda kind: IotData() if kind == "iot-data" else None
    FakeModel.running, FakeModel.overlaps, FakeModel.threads = [], [], set()
    for name, module in (("awscam", awscam), ("mo", mo), ("greengrasssdk", ggsdk)):
        monkeypatch.setitem(sys.modules, name, module)

    fifo = str(tmp_path / "results.mjpeg")
    os.mkfifo(fifo)
    received = bytearray()

    def read_fifo():
        with open(fifo, "rb") as handle:  # blocks until the display opens the FIFO for writing
            while True:
                chunk = handle.read(65536)
                if not chunk:
                    return
                received.extend(chunk)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    env = {"AWS_IOT_THING_NAME": "lobby-cam", "MASKCAM_DISPLAY": "fifo:" + fifo, "MASKCAM_MAX_FRAMES": "6",
           "MASKCAM_SPOOL": str(tmp_path / "spool"), "MASKCAM_HEARTBEAT": "3600"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delitem(sys.modules, "greengrassHelloWorld", raising=False)
    return types.SimpleNamespace(published=published, optimized=optimized, received=received, reader=reader,
                                 frames=frames)


def test_deeplens_lambda_runs_the_loop_from_import_and_publishes_to_the_thing_topic(deeplens):
    module = importlib.import_module("greengrassHelloWorld")  # starts the loop, as on the device
    thread = module._state["thread"]
    thread.join(30)
    assert not thread.is_alive()
    deeplens.reader.join(10)

    topics = {topic for topic, _, _ in deeplens.published}
    assert topics == {"$aws/things/lobby-cam/infer"}
    events = [event for _, event, _ in deeplens.published]
    for event in events:
        schema.validate(event)
    inference = [e for e in events if e["event_type"] == "inference"]
    assert len(inference) == 6
    assert all(e["faces"] == 2 and e["masked"] == 2 and e["device_id"] == "lobby-cam" for e in inference)
    assert inference[0]["model_name"] == "mask-classifier" and deeplens.optimized == [("mask-classifier", 224, 224)]
    errors = [e for e in events if e["event_type"] == "error"]
    assert errors and "frame read failed" in errors[0]["message"]  # every 4th frame was dropped by the camera
    assert events[-1]["event_type"] == "heartbeat" and events[-1]["frames"] == 6
    assert {name for _, _, name in deeplens.published} == {"maskcam-publish"}
    # detection (stage thread) and classification (loop thread) both use the GPU, never at the same time
    assert len(FakeModel.threads) == 2 and FakeModel.overlaps == []

    data = bytes(deeplens.received)
    assert data.startswith(b"\xff\xd8") and data.count(b"\xff\xd8\xff") >= 1 and data.endswith(b"\xff\xd9")

    status = module.function_handler({}, None)
    assert status["status"] in ("running", "stopped")


def test_in_the_cloud_nothing_starts_and_the_handler_says_why(deeplens, monkeypatch):
    monkeypatch.delenv("AWS_IOT_THING_NAME")
    module = importlib.import_module("greengrassHelloWorld")
    assert module._state["thread"] is None
    assert module.function_handler({}, None)["status"] == "idle"
    assert deeplens.published == []
