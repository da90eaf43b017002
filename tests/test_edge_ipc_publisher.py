"""The Greengrass V2 publisher against the real ``awsiot.greengrasscoreipc`` client class (awsiotsdk): only the IPC
socket is replaced, and every call is bound to the real method signature, so a renamed parameter or a wrong QoS type
fails here instead of on a core device."""
import concurrent.futures
import inspect
import json
import time

import pytest
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS, InvalidArgumentsError

from maskcam import schema
from maskcam.adapters.publishers import IpcPublisher, make_publisher
from maskcam.runner import Backoff, Dispatcher, PublishRefused
from maskcam.spool import Spool

REAL_PUBLISH = GreengrassCoreIPCClientV2.publish_to_iot_core_async


@pytest.fixture
def core(monkeypatch):
    """Replaces the IPC connection (no nucleus here) and records what would cross it. ``state``: ``down`` (that
    many calls fail), ``hang`` (the nucleus never answers), ``invalid`` (it refuses the arguments)."""
    calls, state = [], {"down": 0, "hang": False, "invalid": False}

    def connect(self, client=None, executor=True):
        pass

    def publish_to_iot_core_async(self, **kwargs):
        inspect.signature(REAL_PUBLISH).bind(self, **kwargs)  # TypeError on any argument the real API lacks
        future = concurrent.futures.Future()
        if state["hang"]:
            return future  # never completes
        if state["invalid"]:
            future.set_exception(InvalidArgumentsError(message="payload too large"))
        elif state["down"]:
            state["down"] -= 1
            future.set_exception(ConnectionError("IPC connection to the nucleus lost"))
        else:
            calls.append(kwargs)
            future.set_result(None)
        return future

    monkeypatch.setattr(GreengrassCoreIPCClientV2, "__init__", connect)
    monkeypatch.setattr(GreengrassCoreIPCClientV2, "publish_to_iot_core_async", publish_to_iot_core_async)
    monkeypatch.setenv("AWS_IOT_THING_NAME", "lobby-cam")
    return calls, state


def event(i):
    return schema.inference_event("lobby-cam", 1767225600000 + i, "mask-classifier", "1",
                                  [{"label": "mask", "probability": 0.9, "box": [1, 2, 30, 40]}], 5.0)


def test_publishes_utf8_payload_at_least_once_on_the_things_own_topic(core):
    calls, _ = core
    publisher = make_publisher("greengrass-v2")
    assert isinstance(publisher, IpcPublisher)
    publisher.publish(schema.to_json(event(0)))
    (call,) = calls
    assert call["topic_name"] == "maskcam/lobby-cam/infer"
    assert call["qos"] == QOS.AT_LEAST_ONCE
    assert json.loads(call["payload"].decode("utf-8")) == event(0)


def test_a_configured_topic_wins(core):
    calls, _ = core
    IpcPublisher(topic="cams/lobby-cam/events").publish("{}")
    assert calls[0]["topic_name"] == "cams/lobby-cam/events"


def test_lost_ipc_connection_spools_and_replays_everything(core, tmp_path):
    calls, state = core
    state["down"] = 3
    dispatcher = Dispatcher(IpcPublisher(), Spool(str(tmp_path / "spool")), retry=Backoff(0.01, 1.0, 0.01)).start()
    for i in range(10):
        dispatcher.submit(event(i))
    deadline = time.time() + 30
    while len(calls) < 10 and time.time() < deadline:
        time.sleep(0.02)
    dispatcher.close(timeout=30)
    published = sorted(json.loads(c["payload"])["ts"] for c in calls)
    assert published == [event(i)["ts"] for i in range(10)]  # every event, none twice
    assert dispatcher.dropped == 0
    assert dispatcher.stats["spooled"] >= 1 and dispatcher.stats["publish_errors"] == 3
    assert dispatcher.stats["published"] + dispatcher.stats["replayed"] == 10


def test_a_nucleus_that_never_answers_times_out_instead_of_hanging_the_publisher(core):
    _, state = core
    state["hang"] = True
    publisher = IpcPublisher(timeout=0.05)
    started = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        publisher.publish(schema.to_json(event(0)))
    assert time.monotonic() - started < 2


def test_a_payload_the_nucleus_refuses_is_publish_refused_and_dead_lettered(core, tmp_path):
    calls, state = core
    state["invalid"] = True
    with pytest.raises(PublishRefused, match="payload too large"):
        IpcPublisher().publish("{}")
    dispatcher = Dispatcher(IpcPublisher(), Spool(str(tmp_path / "spool")), rejected_path=str(tmp_path / "r.jsonl"))
    dispatcher.submit(event(1))
    dispatcher.step()
    state["invalid"] = False
    dispatcher.submit(event(2))
    dispatcher.step()
    dispatcher.close()
    counts = dispatcher.counts()
    assert (counts["published"], counts["rejected"], counts["dead_lettered"], counts["pending"]) == (1, 1, 1, 0)
    assert json.loads(json.loads((tmp_path / "r.jsonl").read_text())["payload"]) == event(1)
