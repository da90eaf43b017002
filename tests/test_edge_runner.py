"""Fault injection on the inference loop: camera failures, model load failures, publisher outages, a full spool,
a stuck publisher. The loop must survive, and every event must end up published, spooled or counted as dropped."""
import json
import threading

import numpy as np
import pytest

from maskcam import schema
from maskcam.pipeline import FramePipeline
from maskcam.runner import Backoff, Dispatcher, EndOfStream, Runner
from maskcam.spool import Spool
from tests.edge_support import FixedClassifier, OneFaceDetector, fake_pipeline

FRAME = np.zeros((48, 64, 3), np.uint8)


def pipeline():
    return fake_pipeline()


class ScriptedSource:
    """Reads follow a script: 'ok' -> frame, 'fail' -> (False, None), 'raise' -> exception; then end of stream."""

    def __init__(self, script):
        self.script = list(script)

    def read(self):
        if not self.script:
            raise EndOfStream("script")
        step = self.script.pop(0)
        if step == "raise":
            raise OSError("camera unplugged")
        return (True, FRAME) if step == "ok" else (False, None)

    def close(self):
        pass


class FlakyPublisher:
    def __init__(self, down_for=0):
        self.down_for = down_for  # number of publish calls that fail
        self.calls = 0
        self.published = []
        self.threads = set()

    def publish(self, payload):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls <= self.down_for:
            raise ConnectionError("MQTT connection lost")
        self.published.append(json.loads(payload))


def make_runner(tmp_path, publisher, source_factory, load=pipeline, spool_max=1000, **kwargs):
    dispatcher = Dispatcher(publisher, Spool(str(tmp_path / "spool"), spool_max),
                            retry=Backoff(0.0, 1.0, 0.0), rejected_path=str(tmp_path / "rejected.jsonl"))
    return Runner(source_factory, load, dispatcher, "cam-1", backoff=Backoff(0.0, 1.0, 0.0),
                  sleep=lambda s: None, **kwargs)


def accounted(dispatcher):
    s = dispatcher.stats
    return s["submitted"] + s["carried_over"] == \
        s["published"] + s["replayed"] + len(dispatcher.spool) + s["dropped"] + s["rejected"]


def by_type(events, kind):
    return [e for e in events if e["event_type"] == kind]


def test_camera_failures_back_off_reopen_and_never_stop_the_loop(tmp_path):
    opened = []

    def open_source():
        opened.append(1)
        if len(opened) == 2:
            raise OSError("device busy")
        return ScriptedSource(["ok", "fail", "raise", "fail", "fail", "fail", "never read"]
                              if len(opened) == 1 else ["ok", "ok"])

    publisher = FlakyPublisher()
    runner = make_runner(tmp_path, publisher, open_source, reopen_after=5).run()
    # first source: 1 frame, 5 failed reads -> closed and reopened; second open fails; third: 2 frames, then ends
    assert runner.frames == 3 and len(opened) == 3
    errors = by_type(publisher.published, "error")
    assert any("frame read failed (1 in a row): no frame" in e["message"] for e in errors)
    assert any("failed to open" in e["message"] and "device busy" in e["message"] for e in errors)
    assert runner.errors == 6  # 5 failed reads + 1 failed open
    assert len(by_type(publisher.published, "inference")) == 3
    assert by_type(publisher.published, "heartbeat")[-1]["errors"] == 6
    assert accounted(runner.dispatcher)


def test_model_load_failure_is_reported_and_retried(tmp_path):
    attempts = []

    def flaky_load():
        attempts.append(1)
        if len(attempts) <= 2:
            raise OSError("model file not downloaded yet")
        return pipeline()

    publisher = FlakyPublisher()
    runner = make_runner(tmp_path, publisher, lambda: ScriptedSource(["ok"] * 3), load=flaky_load).run()
    errors = by_type(publisher.published, "error")
    assert [e["message"] for e in errors] == [
        "model load failed (attempt 1): OSError: model file not downloaded yet",
        "model load failed (attempt 2): OSError: model file not downloaded yet"]
    assert {e["model_name"] for e in errors} == {"unloaded"}
    assert len(by_type(publisher.published, "inference")) == 3 and runner.frames == 3


def test_publisher_down_for_n_events_then_back_spools_and_replays_in_order(tmp_path):
    publisher = FlakyPublisher(down_for=7)
    runner = make_runner(tmp_path, publisher, lambda: ScriptedSource(["ok"] * 20)).run()
    stats = runner.dispatcher.stats
    inference = by_type(publisher.published, "inference")
    assert len(inference) == 20 and runner.frames == 20
    assert stats["publish_errors"] == 7 and stats["spooled"] >= 1 and stats["replayed"] == stats["spooled"]
    assert len(runner.dispatcher.spool) == 0 and stats["dropped"] == 0
    ts = [e["ts"] for e in publisher.published]
    assert ts == sorted(ts)  # replay keeps the order
    assert accounted(runner.dispatcher)


def test_full_spool_drops_and_counts_while_the_publisher_stays_down(tmp_path):
    publisher = FlakyPublisher(down_for=10 ** 6)
    runner = make_runner(tmp_path, publisher, lambda: ScriptedSource(["ok"] * 12), spool_max=5).run()
    stats = runner.dispatcher.stats
    assert publisher.published == []
    assert len(runner.dispatcher.spool) == 5 and stats["dropped"] == stats["submitted"] - 5
    assert accounted(runner.dispatcher)

    # next start: the publisher works again, the spool left on disk is replayed first
    later = FlakyPublisher()
    dispatcher = Dispatcher(later, Spool(str(tmp_path / "spool"), 5)).start()
    assert dispatcher.stats["carried_over"] == 5
    dispatcher.close()
    assert len(later.published) == 5 and len(dispatcher.spool) == 0
    assert [e["event_type"] for e in later.published] == ["inference"] * 5  # the oldest five were kept
    assert accounted(dispatcher)


def test_a_stuck_publisher_never_blocks_inference(tmp_path):
    release = threading.Event()

    class StuckPublisher(FlakyPublisher):
        def publish(self, payload):
            release.wait(10)
            FlakyPublisher.publish(self, payload)

    publisher = StuckPublisher()
    dispatcher = Dispatcher(publisher, Spool(str(tmp_path / "spool"), 1000), queue_size=4)
    runner = Runner(lambda: ScriptedSource(["ok"] * 30), pipeline, dispatcher, "cam-1", sleep=lambda s: None)
    worker = threading.Thread(target=runner.run)
    worker.start()
    for _ in range(500):
        if runner.frames == 30:
            break
        threading.Event().wait(0.01)
    assert runner.frames == 30 and not release.is_set()  # all frames done while the publisher hangs
    release.set()
    worker.join(20)
    assert not worker.is_alive()
    assert publisher.threads == {"maskcam-publish"}
    assert dispatcher.stats["spooled"] > 0 and accounted(dispatcher)


def test_display_runs_off_the_inference_thread_and_its_faults_are_contained(tmp_path):
    shown = []

    class Display:
        def show(self, frame, detections):
            shown.append(threading.current_thread().name)
            raise RuntimeError("window closed")

    runner = make_runner(tmp_path, FlakyPublisher(), lambda: ScriptedSource(["ok"] * 5), display=Display()).run()
    assert runner.frames == 5 and shown and set(shown) == {"maskcam-display"}
    assert runner.display.errors == len(shown)


def test_invalid_events_are_kept_in_a_rejected_file_not_lost(tmp_path):
    dispatcher = Dispatcher(FlakyPublisher(), Spool(str(tmp_path / "spool")), rejected_path=str(tmp_path / "r.jsonl"))
    dispatcher.submit({"event_type": "inference"})
    assert dispatcher.stats["rejected"] == 1
    kept = json.loads((tmp_path / "r.jsonl").read_text())
    assert "missing device_id" in kept["error"] and kept["event"] == {"event_type": "inference"}


def test_spool_refuses_a_bad_bound():
    with pytest.raises(ValueError, match="at least 1"):
        Spool("/tmp/unused-spool-dir-maskcam", 0)


def test_heartbeat_carries_fps_and_counts(tmp_path):
    ticks = iter(range(1000))  # the interval clock: one second per call
    publisher = FlakyPublisher()
    runner = make_runner(tmp_path, publisher, lambda: ScriptedSource(["ok"] * 10), heartbeat_s=4,
                         monotonic=lambda: float(next(ticks)))
    runner.run()
    beats = by_type(publisher.published, "heartbeat")
    assert len(beats) >= 2
    schema.validate(beats[0])
    assert beats[-1]["frames"] == 10 and beats[0]["fps"] > 0


def test_detection_of_the_next_frame_overlaps_the_model_on_this_one_and_events_keep_frame_order(tmp_path):
    """The stage thread prepares frame k+1 while the loop thread runs the model on frame k."""
    seen = {"detect": set(), "predict": set()}
    overlapped = threading.Event()
    in_predict = threading.Event()

    class NumberedSource(ScriptedSource):
        def __init__(self, count):
            self.count, self.served = count, 0

        def read(self):
            if self.served == self.count:
                raise EndOfStream("done")
            self.served += 1
            return True, np.full((48, 64, 3), self.served, np.uint8)  # the frame carries its number

    class Detector(OneFaceDetector):
        def detect(self, frame):
            seen["detect"].add(threading.current_thread().name)
            if in_predict.wait(0.2):  # only true when the model is running on the previous frame meanwhile
                overlapped.set()
            return OneFaceDetector.detect(self, frame)

    class Classifier(FixedClassifier):
        def prepare(self, crops):
            return [int(c[0, 0, 0]) for c in crops]

        def predict(self, numbers):
            seen["predict"].add(threading.current_thread().name)
            in_predict.set()
            overlapped.wait(0.2)  # give the stage thread time to start on the next frame
            in_predict.clear()
            # probability of "mask" encodes the frame number, to check the order of the events
            return np.array([[n / 100.0, 1 - n / 100.0] for n in numbers])

    publisher = FlakyPublisher()
    runner = make_runner(tmp_path, publisher, lambda: NumberedSource(6),
                         load=lambda: FramePipeline(Detector(), Classifier())).run()
    assert runner.frames == 6
    assert overlapped.is_set()
    assert seen["predict"] == {threading.current_thread().name}
    assert seen["detect"] and threading.current_thread().name not in seen["detect"]
    inference = by_type(publisher.published, "inference")
    numbers = [round(e["detections"][0]["probability"] * 100) if e["detections"][0]["label"] == "mask"
               else round((1 - e["detections"][0]["probability"]) * 100) for e in inference]
    assert numbers == [1, 2, 3, 4, 5, 6]


def test_a_frame_whose_detection_fails_is_reported_and_the_loop_goes_on(tmp_path):
    calls = []

    class FlakyDetector(OneFaceDetector):
        def detect(self, frame):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("cascade exploded")
            return OneFaceDetector.detect(self, frame)

    publisher = FlakyPublisher()
    runner = make_runner(tmp_path, publisher, lambda: ScriptedSource(["ok"] * 4),
                         load=lambda: FramePipeline(FlakyDetector(), FixedClassifier())).run()
    assert runner.frames == 3 and runner.errors == 1
    assert any("inference failed: RuntimeError: cascade exploded" in e["message"]
               for e in by_type(publisher.published, "error"))
    assert len(by_type(publisher.published, "inference")) == 3 and accounted(runner.dispatcher)


def test_max_frames_counts_processed_frames_with_one_in_flight(tmp_path):
    runner = make_runner(tmp_path, FlakyPublisher(), lambda: ScriptedSource(["ok"] * 10), max_frames=4).run()
    assert runner.frames == 4
