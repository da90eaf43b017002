"""Fault injection on the edge runner (functions/edge/maskcam: runner, spool, publishers), one test per fault found
in issue 14 and a few more: a failing-filesystem shim patched into the spool and the rejected-file writer (full
disk, read-only, unlistable), a file standing in for the spool directory, files deleted, corrupted or added
underneath, publisher doubles that hang, fail N times or refuse some events, fake clocks that jump.

Invariant everywhere, from the dispatcher's own counters: ``submitted + carried_over == published + replayed +
pending + dropped + rejected`` (``balance() == 0``), and the loop / the publisher thread survive."""
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from maskcam import app, schema
from maskcam import runner as runner_mod
from maskcam import spool as spool_mod
from maskcam.adapters import publishers as publishers_mod
from maskcam.runner import Backoff, Dispatcher, EndOfStream, Runner
from maskcam.spool import Spool
from tests.conftest import ROOT
from tests.edge_support import (T0_MS, FakeClock, FaultyFS, Publisher, balance, fake_pipeline, inference,
                                load_runner_copy, parse_summary, summary_balance, wait_until)

FRAME = np.zeros((48, 64, 3), np.uint8)
FAST = Backoff(0.0, 1.0, 0.0)


def pipeline():
    return fake_pipeline()


class Frames:
    """``count`` good frames, then the end; ``on_read(i)`` runs before frame i is returned (to inject faults)."""

    def __init__(self, count, on_read=None, end=EndOfStream):
        self.count, self.on_read, self.end, self.served = count, on_read, end, 0

    def read(self):
        if self.served >= self.count:
            raise self.end("done")
        if self.on_read is not None:
            self.on_read(self.served)
        self.served += 1
        return True, FRAME

    def close(self):
        pass


def dispatcher(tmp_path, publisher, spool_max=1000, **kwargs):
    kwargs.setdefault("retry", FAST)
    return Dispatcher(publisher, Spool(str(tmp_path / "spool"), spool_max),
                      rejected_path=str(tmp_path / "rejected.jsonl"), **kwargs)


def spool_files(tmp_path):
    return sorted(n for n in os.listdir(str(tmp_path / "spool")) if n.endswith(".json"))


def published_ts(publisher):
    return [e["ts"] for e in publisher.published if isinstance(e, dict)]


# -- spool: disk and directory faults ----------------------------------------------------------------------------
def test_full_disk_drops_and_counts_and_the_publisher_thread_survives(tmp_path, monkeypatch):
    fs = FaultyFS().install(monkeypatch, spool_mod)
    publisher = Publisher(down=True)
    d = dispatcher(tmp_path, publisher).start()
    fs.fail("write", errno.ENOSPC)
    for i in range(3):
        d.submit(inference(i))
    assert wait_until(lambda: d.stats["dropped"] == 3, 3), d.stats
    assert not [n for n in os.listdir(str(tmp_path / "spool"))]  # no half-written file left behind
    fs.heal()
    publisher.down = False
    d.submit(inference(3))
    d.submit(inference(4))
    assert wait_until(lambda: len(publisher.published) == 2, 3), "the publisher thread died"
    d.close()
    assert published_ts(publisher) == [T0_MS + 3, T0_MS + 4]
    assert d.stats["spool_errors"] >= 3 and balance(d) == 0


def test_spool_opens_when_a_file_stands_in_for_its_directory(tmp_path):
    where = tmp_path / "spool"
    where.write_text("not a directory")
    spool = Spool(str(where))  # must not raise, at this start or any other
    assert len(spool) == 0 and "directory unusable" in spool.error
    assert spool.append('{"a": 1}') is False
    publisher = Publisher(down=True)
    d = Dispatcher(publisher, spool, retry=FAST)
    d.submit(inference(0))
    d.step()
    publisher.down = False
    d.submit(inference(1))
    d.step()
    d.close()
    assert published_ts(publisher) == [T0_MS + 1] and d.stats["dropped"] == 1 and balance(d) == 0
    where.unlink()  # fixed by hand: the same Spool works again
    assert spool.append('{"a": 2}') is True and len(spool) == 1 and spool.error is None


def test_spool_opens_when_its_directory_cannot_be_listed_or_created(tmp_path, monkeypatch):
    fs = FaultyFS().install(monkeypatch, spool_mod)
    fs.fail("listdir", errno.EACCES).fail("makedirs", errno.EROFS)
    spool = Spool(str(tmp_path / "absent"))
    assert len(spool) == 0 and spool.error
    assert Spool(str(tmp_path)).error  # an existing directory that cannot be listed
    fs.heal()
    assert spool.append('{"a": 1}') and len(spool) == 1


def test_read_only_spool_counts_events_as_dropped(tmp_path, monkeypatch):
    fs = FaultyFS().install(monkeypatch, spool_mod)
    for op in ("open_write", "rename", "remove", "makedirs"):
        fs.fail(op, errno.EROFS)
    publisher = Publisher(down=True)
    d = dispatcher(tmp_path, publisher)
    for i in range(4):
        d.submit(inference(i))
        d.step()
    d.close()
    assert d.stats["dropped"] == 4 and balance(d) == 0


def test_spool_directory_replaced_underneath_while_running(tmp_path):
    publisher = Publisher(down=True)
    d = dispatcher(tmp_path, publisher).start()
    d.submit(inference(0))
    d.submit(inference(1))
    assert wait_until(lambda: d.stats["spooled"] == 2, 3)
    shutil.rmtree(str(tmp_path / "spool"))
    (tmp_path / "spool").write_text("someone put a file here")
    d.submit(inference(2))
    assert wait_until(lambda: d.stats["dropped"] >= 1, 3), d.stats
    (tmp_path / "spool").unlink()
    publisher.down = False
    d.submit(inference(3))
    assert wait_until(lambda: T0_MS + 3 in published_ts(publisher), 3), "the publisher thread died"
    d.close()
    assert d.stats["lost"] == 2  # the two spooled files went with the directory: counted, not silently gone
    assert balance(d) == 0


def test_foreign_and_stale_files_do_not_stop_the_spool_from_opening(tmp_path):
    where = tmp_path / "spool"
    where.mkdir()
    (where / "0000000000000001.json").write_text(schema.to_json(inference(1)))
    (where / "notes.json").write_text("mine")
    (where / "abc.json").write_text("{}")
    (where / "README").write_text("hello")
    (where / ".0000000000000003.json.tmp").write_text('{"half":')  # a write interrupted by a crash
    (where / "0000000000000002.json").mkdir()  # a directory under an entry's name
    spool = Spool(str(where))  # used to raise ValueError at every start
    assert len(spool) == 2
    assert not (where / ".0000000000000003.json.tmp").exists()
    publisher = Publisher()
    d = Dispatcher(publisher, spool, retry=FAST, rejected_path=str(tmp_path / "rejected.jsonl"))
    d.step()
    d.close()
    assert published_ts(publisher) == [T0_MS + 1]
    assert d.stats["dead_lettered"] == 1 and len(spool) == 0 and balance(d) == 0
    assert sorted(os.listdir(str(where))) == ["0000000000000002.json", "README", "abc.json", "notes.json"]
    assert Spool(str(where)).append(schema.to_json(inference(4)))  # and it keeps opening


def test_corrupted_spool_entries_are_dead_lettered_not_published(tmp_path):
    where = tmp_path / "spool"
    where.mkdir()
    good = schema.to_json(inference(9))
    contents = [b"\xff\xfe\x00garbage", b"not json at all", b'{"hello": "world"}', b"[" * 100000,
                b"{" + b" " * (300 * 1024) + b"}", good.encode()]
    for i, data in enumerate(contents):
        (where / ("%016d.json" % i)).write_bytes(data)
    publisher = Publisher()
    d = Dispatcher(publisher, Spool(str(where)), retry=FAST, rejected_path=str(tmp_path / "rejected.jsonl"))
    d.start()
    assert wait_until(lambda: len(d.spool) == 0, 3)
    d.close()
    assert publisher.published == [json.loads(good)]  # nothing but the real event reached the publisher
    assert d.stats["carried_over"] == 6 and d.stats["rejected"] == d.stats["dead_lettered"] == 5
    records = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all("unusable spool entry" in r["error"] for r in records)
    assert balance(d) == 0


def test_a_spool_file_deleted_underneath_is_counted_as_dropped(tmp_path):
    publisher = Publisher(down=True)
    d = dispatcher(tmp_path, publisher).start()
    for i in range(3):
        d.submit(inference(i))
    assert wait_until(lambda: d.stats["spooled"] == 3, 3)
    os.remove(str(tmp_path / "spool" / spool_files(tmp_path)[1]))
    publisher.down = False
    d.submit(inference(3))
    assert wait_until(lambda: len(publisher.published) == 3, 3), "the publisher thread died"
    d.close()
    assert published_ts(publisher) == [T0_MS, T0_MS + 2, T0_MS + 3]
    assert d.stats["lost"] == 1 and d.stats["dropped"] == 1 and balance(d) == 0


def test_a_name_collision_adopts_the_file_instead_of_overwriting_it(tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    assert spool.append('{"n": 0}')
    (tmp_path / "spool" / "0000000000000001.json").write_text('{"n": "someone else"}')  # the name it uses next
    assert spool.append('{"n": 1}')
    payloads = []
    while spool.peek() is not None:
        payloads.append(json.loads(spool.peek())["n"])
        spool.pop()
    assert payloads == [0, "someone else", 1]


# -- the queue, the loop, refused events ----------------------------------------------------------------------------
def test_a_full_queue_and_a_failing_spool_never_reach_the_loop(tmp_path, monkeypatch):
    fs = FaultyFS().install(monkeypatch, spool_mod)
    fs.fail("write", errno.ENOSPC)
    release = threading.Event()
    publisher = Publisher(gate=release)
    d = dispatcher(tmp_path, publisher, queue_size=2)
    r = Runner(lambda: Frames(20), pipeline, d, "cam-1", backoff=FAST, sleep=lambda s: None)
    worker = threading.Thread(target=r.run)
    worker.start()
    try:
        assert wait_until(lambda: r.frames == 20 and not worker.is_alive() or r.frames == 20, 5), r.frames
    finally:
        release.set()
        worker.join(10)
    assert not worker.is_alive() and r.frames == 20
    assert d.stats["dropped"] > 0 and balance(d) == 0


def test_an_event_the_publisher_always_refuses_is_dead_lettered_and_the_rest_flow(tmp_path):
    publisher = Publisher(refuse=lambda e: e["ts"] == T0_MS)
    d = dispatcher(tmp_path, publisher).start()
    for i in range(11):
        d.submit(inference(i))
    assert wait_until(lambda: len(publisher.published) == 10, 5), "the queue is blocked"
    d.close()
    assert sorted(published_ts(publisher)) == [T0_MS + i for i in range(1, 11)]
    assert d.stats["rejected"] == d.stats["dead_lettered"] == 1 and len(d.spool) == 0 and balance(d) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert json.loads(record["payload"])["ts"] == T0_MS and "refused" in record["error"]


def test_an_outage_never_dead_letters_anything(tmp_path):
    publisher = Publisher(down=True)
    d = dispatcher(tmp_path, publisher, max_attempts=2)
    for i in range(5):
        d.submit(inference(i))
    for _ in range(50):
        d.step()
    assert d.stats["publish_errors"] >= 20 and len(d.spool) == 5
    publisher.down = False
    d.step()
    d.close()
    assert published_ts(publisher) == [T0_MS + i for i in range(5)]
    assert d.stats["dead_lettered"] == 0 and balance(d) == 0


def test_publish_refused_dead_letters_at_once(tmp_path):
    class Refusing(Publisher):
        def publish(self, payload):
            if json.loads(payload)["ts"] == T0_MS:
                raise runner_mod.PublishRefused("too big for the topic")
            Publisher.publish(self, payload)

    publisher = Refusing()
    d = dispatcher(tmp_path, publisher)
    for i in range(3):
        d.submit(inference(i))
        d.step()
    d.close()
    assert published_ts(publisher) == [T0_MS + 1, T0_MS + 2] and d.stats["dead_lettered"] == 1
    assert d.stats["publish_errors"] == 0 and balance(d) == 0


def test_backoff_never_overflows_and_a_long_camera_outage_does_not_end_the_loop(tmp_path):
    assert Backoff(1.0, 2.0, 60.0).delay(5000) == 60.0  # 2.0 ** 4999 overflowed: OverflowError
    state = {"reads": 0}

    class DeadCamera:
        def read(self):
            state["reads"] += 1
            if state["reads"] > 1100:
                raise EndOfStream("done")
            return False, None

        def close(self):
            pass

    publisher = Publisher()
    d = dispatcher(tmp_path, publisher)
    r = Runner(lambda: DeadCamera(), pipeline, d, "cam-1", backoff=Backoff(0.5, 2.0, 30.0),
               reopen_after=10 ** 6, sleep=lambda s: None).run()
    assert state["reads"] == 1101 and r.errors == 1100 and balance(d) == 0


def test_a_publisher_thread_fault_nobody_planned_for_is_counted_and_publishing_goes_on(tmp_path):
    class Moody(Publisher):
        def publish(self, payload):
            if json.loads(payload)["ts"] == T0_MS:
                raise MemoryError("out of memory for a moment")
            Publisher.publish(self, payload)

    class Broken(Spool):
        def append(self, payload):
            raise RuntimeError("a spool that does not keep its contract")

    publisher = Moody()
    d = Dispatcher(publisher, Broken(str(tmp_path / "spool")), retry=FAST).start()
    for i in range(3):
        d.submit(inference(i))
    assert wait_until(lambda: len(publisher.published) == 2, 3)
    d.close()
    assert d.stats["dropped"] == 1 and balance(d) == 0


def test_a_jsonl_publisher_on_a_full_disk_leaves_no_partial_line(tmp_path, monkeypatch):
    fs = FaultyFS().install(monkeypatch, publishers_mod)
    out = tmp_path / "events.jsonl"
    sink = publishers_mod.JsonLinesPublisher(str(out))
    sink.publish(schema.to_json(inference(0)))
    fs.fail("write", errno.ENOSPC, times=1)
    with pytest.raises(OSError):
        sink.publish(schema.to_json(inference(1)))
    sink.publish(schema.to_json(inference(2)))
    assert [json.loads(line)["ts"] for line in out.read_text().splitlines()] == [T0_MS, T0_MS + 2]


# -- shutdown -----------------------------------------------------------------------------------------------------
def test_shutdown_with_a_hung_publisher_spools_what_is_queued_and_is_bounded(tmp_path):
    release = threading.Event()
    publisher = Publisher(gate=release)
    d = dispatcher(tmp_path, publisher, queue_size=100).start()
    try:
        for i in range(20):
            d.submit(inference(i))
        assert wait_until(lambda: publisher.calls == 1, 3)  # the thread is stuck inside publish
        started = time.monotonic()
        d.close(timeout=0.3)
        assert time.monotonic() - started < 2.0
        assert balance(d) == 0, d.stats  # nothing is left in the queue uncounted
        assert len(d.spool) == 20  # the one in flight too: published at least once
    finally:
        release.set()
    assert wait_until(lambda: not d._thread.is_alive(), 3)
    assert balance(d) == 0 and len(d.spool) == 20  # the abandoned thread accounts nothing twice
    later = Publisher()
    again = Dispatcher(later, Spool(str(tmp_path / "spool")), retry=FAST)
    again.step()
    again.close()
    assert sorted(published_ts(later)) == [T0_MS + i for i in range(20)]


def test_the_runner_shutdown_is_bounded_with_a_hung_publisher(tmp_path):
    release = threading.Event()
    publisher = Publisher(gate=release)
    d = dispatcher(tmp_path, publisher)
    r = Runner(lambda: Frames(5), pipeline, d, "cam-1", backoff=FAST, sleep=lambda s: None, close_timeout=0.2)
    started = time.monotonic()
    try:
        r.run()
        assert time.monotonic() - started < 3.0
        counts = parse_summary(app.summary(r))
        assert summary_balance(counts) == 0 and counts["queued"] == 0 and counts["pending"] >= 5
    finally:
        release.set()


class HangingDetector:
    """Finds one face per frame until ``hang_at`` frames were seen, then never returns (until ``release`` is set)."""

    def __init__(self, hang_at):
        self.hang_at, self.seen, self.release, self.hung = hang_at, 0, threading.Event(), threading.Event()

    def detect(self, frame):
        from maskcam.faces import Box
        self.seen += 1
        if self.seen > self.hang_at:
            self.hung.set()
            self.release.wait()
        return [Box(10, 10, 30, 30, 0.9)]


def test_a_detector_that_never_returns_is_reported_and_shutdown_stays_bounded(tmp_path):
    from maskcam.pipeline import FramePipeline
    from tests.edge_support import FixedClassifier
    detector = HangingDetector(hang_at=3)
    publisher = Publisher()
    d = dispatcher(tmp_path, publisher)
    r = Runner(lambda: Frames(10 ** 6), lambda: FramePipeline(detector, FixedClassifier()), d, "cam-1",
               backoff=FAST, sleep=lambda s: None, close_timeout=0.3, stall_report_s=0.05)
    loop = threading.Thread(target=r.run)
    try:
        loop.start()
        assert detector.hung.wait(5.0)
        assert wait_until(lambda: any("has not returned" in e.get("message", "") for e in publisher.published))
        stopped = time.monotonic()
        r.stop()
        loop.join(5.0)
        assert not loop.is_alive(), "run() did not return with the detector hung"
        assert time.monotonic() - stopped < 2.0
        messages = [e.get("message", "") for e in publisher.published if e.get("event_type") == "error"]
        assert any("did not return within 0.3 s of the stop" in m for m in messages), messages
        assert sum(1 for e in publisher.published if e.get("event_type") == "inference") == 3
        counts = parse_summary(app.summary(r))
        assert summary_balance(counts) == 0 and counts["queued"] == 0
    finally:
        detector.release.set()


def test_a_stop_is_noticed_at_once_while_waiting_for_a_hung_detector(tmp_path):
    """With the default 30 s between stall reports, a stop still ends the run within close_timeout."""
    from maskcam.pipeline import FramePipeline
    from tests.edge_support import FixedClassifier
    detector = HangingDetector(hang_at=1)
    d = dispatcher(tmp_path, Publisher())
    r = Runner(lambda: Frames(10 ** 6), lambda: FramePipeline(detector, FixedClassifier()), d, "cam-1",
               backoff=FAST, sleep=lambda s: None, close_timeout=0.3)
    loop = threading.Thread(target=r.run)
    try:
        loop.start()
        assert detector.hung.wait(5.0)
        stopped = time.monotonic()
        r.stop()
        loop.join(5.0)
        assert not loop.is_alive() and time.monotonic() - stopped < 1.5
        assert not r.stalled
    finally:
        detector.release.set()


def test_a_detector_hung_for_too_long_stops_the_loop_for_a_restart(tmp_path):
    from maskcam.pipeline import FramePipeline
    from tests.edge_support import FixedClassifier
    detector = HangingDetector(hang_at=2)
    publisher = Publisher()
    d = dispatcher(tmp_path, publisher)
    r = Runner(lambda: Frames(10 ** 6), lambda: FramePipeline(detector, FixedClassifier()), d, "cam-1",
               backoff=FAST, sleep=lambda s: None, close_timeout=0.2, stall_report_s=0.25, stall_exit_s=1.0)
    try:
        started = time.monotonic()
        r.run()    # returns by itself
        assert r.stalled and time.monotonic() - started < 5.0
        messages = [e.get("message", "") for e in publisher.published if e.get("event_type") == "error"]
        assert any("supervisor restarts the process" in m for m in messages), messages
        assert sum("has not returned for" in m for m in messages) >= 3   # reports at 0.25, 0.5, 0.75 s, then the exit
        assert summary_balance(parse_summary(app.summary(r))) == 0
    finally:
        detector.release.set()


def test_a_hung_detector_does_not_keep_the_process_from_exiting(tmp_path):
    script = (
        "import threading, time\n"
        "from maskcam.runner import Runner, _Stage\n"
        "stage = _Stage()\n"
        "stage.submit(threading.Event().wait)\n"   # never returns
        "time.sleep(0.1)\n"
        "print('exiting', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "exiting" in proc.stdout, proc.stderr


# -- clocks ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def jumpy_time(monkeypatch):
    """``time.time`` and ``time.monotonic`` replaced by fake clocks, and a copy of runner.py loaded under them
    (its default clock arguments bind now)."""
    wall, mono = FakeClock(T0_MS / 1000.0), FakeClock(5000.0)
    monkeypatch.setattr(time, "time", wall)
    monkeypatch.setattr(time, "monotonic", mono)
    module = load_runner_copy()
    return module, wall, mono


def test_a_wall_clock_jump_back_does_not_stop_retries(jumpy_time, tmp_path):
    module, wall, mono = jumpy_time
    publisher = Publisher(fail_next=1)
    d = module.Dispatcher(publisher, Spool(str(tmp_path / "spool")))  # the default clock and retry (1 s, doubling)
    d.start()
    try:
        d.submit(inference(0))
        assert wait_until(lambda: publisher.calls == 1 and d.stats["spooled"] == 1, 3)
        wall.jump(-3600)  # NTP steps the wall clock back an hour
        wall.advance(5)
        mono.advance(5)
        assert wait_until(lambda: publisher.published, 2), "retries stopped after the clock jump"
    finally:
        d.close(1)
    assert published_ts(publisher) == [T0_MS]


def test_heartbeat_fps_stays_sane_across_wall_clock_jumps(jumpy_time, tmp_path):
    module, wall, mono = jumpy_time

    def tick(i):  # 10 frames per second of both clocks, and the wall clock jumps at frames 10 and 20
        wall.advance(0.1)
        mono.advance(0.1)
        if i == 10:
            wall.jump(-3600)
        if i == 20:
            wall.jump(+7200)

    publisher = Publisher()
    d = module.Dispatcher(publisher, Spool(str(tmp_path / "spool")))
    r = module.Runner(lambda: Frames(30, tick, module.EndOfStream), pipeline, d, "cam-1", heartbeat_s=1.0,
                      sleep=lambda s: None).run()
    beats = [e for e in publisher.published if e["event_type"] == "heartbeat"]
    assert r.frames == 30 and len(beats) >= 3
    assert all(5 <= b["fps"] <= 15 for b in beats), [b["fps"] for b in beats]


def test_a_1970_device_clock_is_signalled_rate_limited_and_counted(tmp_path, caplog):
    wall = FakeClock(3.0)  # 1970-01-01T00:00:03Z: a device before NTP

    def tick(i):
        wall.advance(0.1)
        if i == 40:
            wall.now = T0_MS / 1000.0  # NTP sets the clock

    publisher = Publisher()
    d = dispatcher(tmp_path, publisher)
    caplog.set_level(logging.ERROR, logger="maskcam")
    r = Runner(lambda: Frames(50, tick), pipeline, d, "cam-1", backoff=FAST, sleep=lambda s: None,
               clock=wall, heartbeat_s=3600.0).run()
    assert r.frames == 50
    errors = [e for e in publisher.published if e["event_type"] == "error"]
    assert len(errors) == 1 and "clock" in errors[0]["message"] and "1970-01-01" in errors[0]["message"]
    stats = d.stats
    assert stats["rejected"] >= 39 and stats["clock_rejected"] == stats["rejected"]
    assert "%d event(s) rejected" % stats["clock_rejected"] in errors[0]["message"]
    beat = [e for e in publisher.published if e["event_type"] == "heartbeat"][-1]
    assert beat["errors"] >= stats["clock_rejected"]  # the heartbeat counts them too
    clock_lines = [rec for rec in caplog.records if "clock" in rec.getMessage()]
    assert 1 <= len(clock_lines) <= 3  # one line, not one per frame
    assert balance(d) == 0


def test_rejected_file_is_bounded(tmp_path):
    path = tmp_path / "spool" / "rejected.jsonl"  # where the app puts it
    d = Dispatcher(Publisher(), Spool(str(tmp_path / "spool")), rejected_path=str(path))
    big = dict(inference(0), message="x" * 10000, ts=1)  # invalid twice over, 10 KB each
    for _ in range(400):
        d.submit(big)
    d.submit({"event_type": "inference", "ts": [1] * 100000})  # a single record far larger than the cap
    files = [p for p in (tmp_path / "spool").iterdir() if p.name.startswith("rejected.jsonl")]
    total = sum(p.stat().st_size for p in files)
    assert total <= 2 << 20 and d.stats["rejected"] == 401  # two files of at most 1 MiB (REJECTED_MAX_BYTES)
    last = json.loads(path.read_text().splitlines()[-1])
    assert "event_head" in last and "missing" in last["error"]


def test_an_unwritable_rejected_file_is_counted_and_the_runner_goes_on(tmp_path):
    (tmp_path / "rejected.jsonl").mkdir()  # a directory where the file should be
    publisher = Publisher()
    d = dispatcher(tmp_path, publisher)
    wall = FakeClock(3.0)  # every event rejected
    r = Runner(lambda: Frames(10), pipeline, d, "cam-1", backoff=FAST, sleep=lambda s: None, clock=wall).run()
    assert r.frames == 10
    assert d.stats["rejected"] >= 10 and d.stats["rejected_write_errors"] == d.stats["rejected"]
    assert balance(d) == 0


# -- the harness: scenarios through the whole runner, checked on its own exit line -------------------------------------
def _scenario(name, tmp_path, monkeypatch):
    """(runner, publisher, cleanup) with the faults of scenario ``name`` injected while frames are read."""
    fs = FaultyFS().install(monkeypatch, spool_mod, runner_mod)
    release = threading.Event()
    wall, mono = FakeClock(T0_MS / 1000.0), FakeClock(0.0)
    publisher = Publisher()
    where = tmp_path / "spool"

    def faults(i):
        wall.advance(0.05)
        mono.advance(0.05)
        if name == "flaky-publisher":
            publisher.fail_next = 3 if i % 10 == 0 else publisher.fail_next
        elif name == "outage-then-full-disk":
            publisher.down = 5 <= i < 40
            if i == 10:
                fs.fail("write", errno.ENOSPC)
            if i == 30:
                fs.heal()
        elif name == "directory-replaced":
            publisher.down = 3 <= i < 35
            if i == 15:
                shutil.rmtree(str(where))
                where.write_text("x")
            if i == 25:
                where.unlink()
        elif name == "files-deleted-and-corrupted":
            publisher.down = 3 <= i < 30
            if i in (20, 25):
                names = sorted(n for n in os.listdir(str(where)) if n.endswith(".json"))
                if names:
                    os.remove(str(where / names[0]))
                if len(names) > 2:
                    (where / names[2]).write_bytes(b"\x00garbage")
        elif name == "refused-events":
            publisher.refuse = lambda e: e["event_type"] == "inference" and e["ts"] % 7 == 0
        elif name == "hung-publisher":
            if i == 5:
                publisher.gate = release
        elif name == "clock-jumps":
            publisher.down = 10 <= i < 20
            if i == 12:
                wall.jump(-3600)
                mono.advance(30)
            if i == 30:
                wall.jump(-T0_MS / 1000.0 + 3)  # to 1970
            if i == 40:
                wall.now = T0_MS / 1000.0 + 60
        elif name == "rejected-file-unwritable":
            if i == 0:
                fs.fail("open_write", errno.EACCES)
                wall.now = 3.0
            if i == 30:
                wall.now = T0_MS / 1000.0

    d = Dispatcher(publisher, Spool(str(where), 20), retry=Backoff(0.01, 2.0, 0.05), clock=mono,
                   rejected_path=str(tmp_path / "rejected.jsonl"), max_attempts=3)
    r = Runner(lambda: Frames(50, faults), pipeline, d, "cam-1", backoff=FAST, sleep=lambda s: None,
               clock=wall, monotonic=mono, heartbeat_s=0.5, close_timeout=0.3)
    return r, publisher, release.set


SCENARIOS = ["flaky-publisher", "outage-then-full-disk", "directory-replaced", "files-deleted-and-corrupted",
             "refused-events", "hung-publisher", "clock-jumps", "rejected-file-unwritable"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_runner_survives_each_fault_and_its_exit_counts_add_up(name, tmp_path, monkeypatch):
    r, publisher, release = _scenario(name, tmp_path, monkeypatch)
    try:
        r.run()
    finally:
        release()
    counts = parse_summary(app.summary(r))
    assert r.frames == 50, counts
    assert summary_balance(counts) == 0, counts
    assert counts["queued"] == 0
    inference_published = [e for e in publisher.published if e["event_type"] == "inference"]
    assert len(inference_published) <= 50
