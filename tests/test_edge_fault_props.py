"""Property-based fault injection on the edge spool, dispatcher and runner (hypothesis): random sequences of
operations and faults, the invariants checked after every step.

- ``SpoolMachine``: appends, reads, removals, reopenings, mixed with a failing filesystem (full disk, read-only,
  unlistable, failing stat/rename/remove/read), files deleted, corrupted or added underneath, the directory deleted or
  replaced by a file. Invariants: ``Spool()`` always opens; nothing raises; ``appended + adopted == consumed +
  pending + lost``; the spool never deletes an entry it was not told to remove, reads entries back in order with
  their content, and stores something whenever the directory is healthy and it is not full.
- ``DispatcherMachine``: the publisher thread's rounds driven one by one (``Dispatcher.step``) with a fake monotonic
  clock, valid / invalid / 1970-clock events, a publisher that goes down, fails N times or refuses chosen events,
  the spool faults above, an unwritable rejected file, and restarts. Invariants: ``submitted + carried_over ==
  published + replayed + pending + queued + dropped + rejected`` at every step, nothing published twice; at the end,
  with the faults gone, the spool drains (refused events cannot block it) and every event that was not published is
  counted as dropped or rejected.
- the whole ``Runner`` (with its threads) under a random schedule of faults: the loop processes every frame and its
  exit line adds up.

Marked ``property``: bounded for ``make test`` (a few seconds), rerun with new seeds by ``make fuzz``;
``EDGE_FUZZ_SCALE=N`` also multiplies the number of examples per run (and lengthens the state machines' runs):
``EDGE_FUZZ_SCALE=20 .venv/bin/python -m pytest tests/test_edge_fault_props.py`` takes about a minute."""
import errno
import json
import os
import re
import shutil
import tempfile
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from maskcam import app, schema
from maskcam import runner as runner_mod
from maskcam import spool as spool_mod
from maskcam.runner import Backoff, Dispatcher, EndOfStream, Runner
from maskcam.spool import Spool
from tests.edge_support import (T0_MS, FakeClock, FaultyFS, Publisher, fake_pipeline, inference,
                                parse_summary, summary_balance)

pytestmark = pytest.mark.property
MAX_ENTRY_BYTES = getattr(spool_mod, "MAX_ENTRY_BYTES", 256 * 1024)
ENTRY = re.compile(r"^[0-9]{1,20}\.json$")  # the spool's entry file names
SPOOL_OPS = ("write", "open_write", "open_read", "rename", "remove", "listdir", "makedirs", "stat")
ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO)
CORRUPT = (b"", b"\xff\xfe garbage", b"not json", b'{"hello": 1}', b"[" * 5000, b"x" * (MAX_ENTRY_BYTES + 10))
SCALE = max(1, int(os.environ.get("EDGE_FUZZ_SCALE", "1") or 1))
STEPS = 40 if SCALE == 1 else 80
FOREIGN = ("notes.json", "abc.json", "README", ".0000000000000077.json.tmp", "x.json/")


def _entries(directory):
    """Entry files actually on disk, oldest first (the real filesystem, not the shim)."""
    if not os.path.isdir(directory):
        return []
    return sorted((n for n in os.listdir(directory) if ENTRY.match(n)), key=lambda n: int(n[:-5]))


class SpoolMachine(RuleBasedStateMachine):
    MAX = 6

    def __init__(self):
        RuleBasedStateMachine.__init__(self)
        self.root = tempfile.mkdtemp(prefix="maskcam-spool-sm-")
        self.dir = os.path.join(self.root, "spool")
        self.fs = FaultyFS().patch(spool_mod)
        self.n = 0
        self.ours = {}  # entry name -> bytes on disk, for every entry file (only this machine writes them)
        self._open()

    def _open(self):
        self.spool = Spool(self.dir, self.MAX)  # must never raise
        self.appended = self.consumed = 0
        self.ghosts = set()  # consumed, but the file could not be deleted: this instance will not replay it
        self.blind = self.spool.error is not None  # opened without seeing the directory

    def teardown(self):
        self.fs.restore()
        shutil.rmtree(self.root, ignore_errors=True)

    def _healthy(self):
        return not self.fs._faults and os.path.isdir(self.dir)

    # -- operations ----------------------------------------------------------------------------------------------
    @rule()
    def append(self):
        self.n += 1
        payload = json.dumps({"n": self.n})
        before = set(_entries(self.dir))
        healthy = self._healthy()
        ok = self.spool.append(payload)
        after = set(_entries(self.dir))
        if ok:
            (name,) = after - before
            self.ours[name] = payload.encode()
            self.appended += 1
            self.blind = False
        else:
            assert after == before, "a refused append left a file"
            assert not healthy or len(self.spool) >= self.MAX, "refused with a healthy directory and room"
        if healthy and ok:
            self.blind = False

    @rule()
    def consume(self):
        entry = self.spool.head()
        eligible = [n for n in _entries(self.dir) if n not in self.ghosts]
        if entry is None:
            assert not eligible or self.blind, (eligible, self.spool.error)
            return
        unreadable = (entry.problem or "").startswith("cannot read")  # maybe gone: a failing stat cannot tell
        if not unreadable or entry.name in eligible:
            assert entry.name == eligible[0], (entry.name, eligible)
        data = self.ours.get(entry.name)
        if entry.problem is None:
            assert entry.payload == data.decode("utf-8")
        elif not unreadable:
            expected = data if len(data) <= MAX_ENTRY_BYTES else data[:1024]
            assert entry.payload == expected.decode("utf-8", "replace")
        self.spool.remove(entry.name)
        self.consumed += 1
        if os.path.exists(os.path.join(self.dir, entry.name)):
            self.ghosts.add(entry.name)  # deleting it failed: it comes back at the next start
        else:
            self.ours.pop(entry.name, None)

    @rule()
    def reopen(self):
        healthy = self._healthy()
        self._open()
        if healthy:
            assert len(self.spool) == len(_entries(self.dir))

    # -- faults --------------------------------------------------------------------------------------------------
    @rule(op=st.sampled_from(SPOOL_OPS), err=st.sampled_from(ERRNOS), times=st.sampled_from([1, 2, None]))
    def arm_fault(self, op, err, times):
        self.fs.fail(op, err, times)

    @rule()
    def heal(self):
        self.fs.heal()

    @precondition(lambda self: _entries(self.dir))
    @rule(data=st.data())
    def delete_underneath(self, data):
        name = data.draw(st.sampled_from(_entries(self.dir)))
        os.remove(os.path.join(self.dir, name))
        del self.ours[name]
        self.ghosts.discard(name)

    @precondition(lambda self: _entries(self.dir))
    @rule(data=st.data(), content=st.sampled_from(CORRUPT))
    def corrupt(self, data, content):
        name = data.draw(st.sampled_from(_entries(self.dir)))
        with open(os.path.join(self.dir, name), "wb") as handle:
            handle.write(content)
        self.ours[name] = content

    @precondition(lambda self: os.path.isdir(self.dir))
    @rule(name=st.sampled_from(FOREIGN))
    def add_foreign(self, name):
        path = os.path.join(self.dir, name.rstrip("/"))
        if name.endswith("/"):
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "w") as handle:
                handle.write("foreign")

    @precondition(lambda self: os.path.isdir(self.dir))
    @rule(by_file=st.booleans())
    def lose_directory(self, by_file):
        shutil.rmtree(self.dir)
        if by_file:
            with open(self.dir, "w") as handle:
                handle.write("a file where the spool was")
        self.ours.clear()
        self.ghosts.clear()

    @precondition(lambda self: os.path.isfile(self.dir))
    @rule()
    def remove_the_file(self):
        os.remove(self.dir)

    # -- invariants ----------------------------------------------------------------------------------------------
    @invariant()
    def counts_add_up(self):
        s = self.spool.stats
        assert self.appended + s["adopted"] == self.consumed + len(self.spool) + s["lost"], (self.appended, s)

    @invariant()
    def nothing_deleted_that_was_not_consumed(self):
        assert set(_entries(self.dir)) == set(self.ours)


SpoolMachine.TestCase.settings = settings(max_examples=60 * SCALE, stateful_step_count=STEPS, deadline=None)
test_spool_under_random_faults = SpoolMachine.TestCase


class DispatcherMachine(RuleBasedStateMachine):
    def __init__(self):
        RuleBasedStateMachine.__init__(self)
        self.root = tempfile.mkdtemp(prefix="maskcam-dispatch-sm-")
        self.dir = os.path.join(self.root, "spool")
        self.rejected = os.path.join(self.root, "rejected.jsonl")
        self.spool_fs = FaultyFS().patch(spool_mod)
        self.rejected_fs = FaultyFS().patch(runner_mod)
        self.mono = FakeClock(100.0)
        self.refused = set()
        self.publisher = Publisher(refuse=lambda e: e.get("ts") in self.refused)
        self.n = 0
        self.valid = set()      # ts of every valid inference event submitted
        self.destroyed = set()  # ts of spooled events this machine deleted or overwrote on disk
        self.done = []          # counters of the dispatchers closed so far
        self._start()

    def _start(self):
        self.d = Dispatcher(self.publisher, Spool(self.dir, 8), queue_size=4, retry=Backoff(1.0, 2.0, 8.0),
                            clock=self.mono, rejected_path=self.rejected, max_attempts=3, rejected_max_bytes=4096)

    def _totals(self, key):
        return sum(c[key] for c in self.done) + self.d.counts()[key]

    def teardown(self):
        try:
            self._drain_and_check()
        finally:
            self.spool_fs.restore()
            self.rejected_fs.restore()
            shutil.rmtree(self.root, ignore_errors=True)

    def _drain_and_check(self):
        """Faults gone (refused events stay refused), new events keep coming: the spool must drain."""
        self.spool_fs.heal()
        self.rejected_fs.heal()
        if os.path.isfile(self.dir):
            os.remove(self.dir)
        self.publisher.down, self.publisher.fail_next = False, 0
        for i in range(300):
            c = self.d.counts()
            if i >= 3 and c["pending"] == 0 and c["queued"] == 0:
                break
            self.submit("valid")
            self.mono.advance(100)
            for _ in range(3):
                self.d.step()
        c = self.d.counts()
        assert c["pending"] == 0 and c["queued"] == 0, c
        published = {e["ts"] for e in self.publisher.published if e["event_type"] == "inference"}
        missing = self.valid - published
        assert self.refused <= missing
        assert len(missing - self.destroyed) <= self._totals("dropped") + self._totals("dead_lettered"), (missing, c)

    def _published(self):
        return {e["ts"] for e in self.publisher.published if e["event_type"] == "inference"}

    def _destroy(self, path):
        """Remembers which event a spool file held before this machine deletes or overwrites it."""
        try:
            with open(path, "rb") as handle:
                self.destroyed.add(json.loads(handle.read().decode("utf-8"))["ts"])
        except Exception:
            pass

    # -- operations ----------------------------------------------------------------------------------------------
    @rule(kind=st.sampled_from(["valid", "valid", "valid", "invalid", "1970"]))
    def submit(self, kind):
        self.n += 1
        if kind == "valid":
            event = inference(self.n)
            self.valid.add(event["ts"])
        elif kind == "invalid":
            event = {"event_type": "inference", "ts": T0_MS + self.n, "faces": "many"}
        else:
            event = inference(self.n, ts_ms=3000 + self.n)
        self.d.submit(event)

    @rule(count=st.integers(1, 3))
    def step(self, count):
        for _ in range(count):
            self.d.step()

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 20.0]))
    def advance(self, seconds):
        self.mono.advance(seconds)

    @rule(down=st.booleans())
    def publisher_down(self, down):
        self.publisher.down = down

    @rule(count=st.integers(1, 5))
    def publisher_fails_next(self, count):
        self.publisher.fail_next = count

    @precondition(lambda self: self.valid - self._published())
    @rule(data=st.data())
    def refuse_an_event(self, data):
        self.refused.add(data.draw(st.sampled_from(sorted(self.valid - self._published()))))

    @rule(op=st.sampled_from(["write", "open_write", "rename", "listdir", "stat"]), err=st.sampled_from(ERRNOS),
          times=st.sampled_from([1, 3, None]))
    def spool_fault(self, op, err, times):
        self.spool_fs.fail(op, err, times)

    @rule()
    def rejected_file_unwritable(self):
        self.rejected_fs.fail("open_write", errno.EACCES)

    @rule()
    def heal(self):
        self.spool_fs.heal()
        self.rejected_fs.heal()

    @precondition(lambda self: _entries(self.dir))
    @rule(data=st.data(), corrupt=st.booleans())
    def tamper_with_a_spool_file(self, data, corrupt):
        path = os.path.join(self.dir, data.draw(st.sampled_from(_entries(self.dir))))
        self._destroy(path)
        if corrupt:
            with open(path, "wb") as handle:
                handle.write(b"\x00not an event")
        else:
            os.remove(path)

    @rule(by_file=st.booleans())
    def lose_spool_directory(self, by_file):
        if os.path.isdir(self.dir):
            for name in _entries(self.dir):
                self._destroy(os.path.join(self.dir, name))
            shutil.rmtree(self.dir)
        if by_file and not os.path.exists(self.dir):
            with open(self.dir, "w") as handle:
                handle.write("x")

    @precondition(lambda self: os.path.isfile(self.dir))
    @rule()
    def restore_spool_directory(self):
        os.remove(self.dir)

    @rule()
    def restart(self):
        self.d.close(timeout=0)
        c = self.d.counts()
        assert c["queued"] == 0 and summary_balance(c) == 0, c
        self.done.append(c)
        self._start()

    # -- invariants ----------------------------------------------------------------------------------------------
    @invariant()
    def every_event_is_accounted_for(self):
        c = self.d.counts()
        assert summary_balance(c) == 0, c

    @invariant()
    def nothing_is_published_twice(self):
        ts = [e["ts"] for e in self.publisher.published if e["event_type"] == "inference"]
        assert len(ts) == len(set(ts))
        assert len(self.publisher.published) == self._totals("published") + self._totals("replayed")


DispatcherMachine.TestCase.settings = settings(max_examples=60 * SCALE, stateful_step_count=STEPS, deadline=None)
test_dispatcher_under_random_faults = DispatcherMachine.TestCase


# -- the whole runner, threads included -------------------------------------------------------------------------------
RUNNER_FAULTS = ("publisher-down", "publisher-up", "publisher-fails-3", "publisher-hangs", "disk-full", "disk-ok",
                 "spool-unlistable", "spool-replaced-by-file", "spool-restored", "delete-spool-file",
                 "corrupt-spool-file", "wall-back-1h", "wall-to-1970", "wall-ok", "rejected-unwritable",
                 "camera-glitch")
FRAMES = 30


@settings(max_examples=25 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=st.lists(st.tuples(st.integers(0, FRAMES - 1), st.sampled_from(RUNNER_FAULTS)), max_size=10))
def test_runner_survives_any_schedule_of_faults_and_its_exit_line_adds_up(schedule):
    root = tempfile.mkdtemp(prefix="maskcam-runner-prop-")
    where = os.path.join(root, "spool")
    spool_fs, rejected_fs = FaultyFS().patch(spool_mod), FaultyFS().patch(runner_mod)
    wall, mono = FakeClock(T0_MS / 1000.0), FakeClock(0.0)
    release = threading.Event()
    publisher = Publisher()
    at = {}
    for frame, fault in schedule:
        at.setdefault(frame, []).append(fault)
    glitches = set()

    def apply(fault):
        if fault == "publisher-down":
            publisher.down = True
        elif fault == "publisher-up":
            publisher.down = False
        elif fault == "publisher-fails-3":
            publisher.fail_next = 3
        elif fault == "publisher-hangs":
            publisher.gate = release
        elif fault == "disk-full":
            spool_fs.fail("write", errno.ENOSPC)
        elif fault == "disk-ok":
            spool_fs.heal()
        elif fault == "spool-unlistable":
            spool_fs.fail("listdir", errno.EACCES, 2)
        elif fault == "spool-replaced-by-file" and os.path.isdir(where):
            shutil.rmtree(where)
            with open(where, "w") as handle:
                handle.write("x")
        elif fault == "spool-restored" and os.path.isfile(where):
            os.remove(where)
        elif fault in ("delete-spool-file", "corrupt-spool-file"):
            names = _entries(where)
            if names:
                path = os.path.join(where, names[0])
                try:
                    if fault == "delete-spool-file":
                        os.remove(path)
                    else:
                        with open(path, "wb") as handle:
                            handle.write(b"\xff")
                except OSError:
                    pass  # the publisher thread got there first
        elif fault == "wall-back-1h":
            wall.jump(-3600)
        elif fault == "wall-to-1970":
            wall.now = 5.0
        elif fault == "wall-ok":
            wall.now = T0_MS / 1000.0 + mono.now
        elif fault == "rejected-unwritable":
            rejected_fs.fail("open_write", errno.EACCES)

    class Source:
        served = 0

        def read(self):
            if self.served >= FRAMES:
                raise EndOfStream("done")
            wall.advance(0.05)
            mono.advance(0.05)
            for fault in at.pop(self.served, ()):
                if fault == "camera-glitch":
                    glitches.add(self.served)
                apply(fault)
            if self.served in glitches:
                glitches.discard(self.served)
                raise OSError("camera glitch")
            self.served += 1
            return True, np.zeros((48, 64, 3), np.uint8)

        def close(self):
            pass

    try:
        d = Dispatcher(publisher, Spool(where, 10), queue_size=4, retry=Backoff(0.01, 2.0, 0.05), clock=mono,
                       rejected_path=os.path.join(root, "rejected.jsonl"), max_attempts=2, rejected_max_bytes=2048)
        r = Runner(Source, fake_pipeline, d, "cam-1", sleep=lambda s: None,
                   backoff=Backoff(0.0, 1.0, 0.0), clock=wall, monotonic=mono, heartbeat_s=0.3, close_timeout=0.05)
        r.run()
        counts = parse_summary(app.summary(r))
        assert r.frames == FRAMES, counts
        assert counts["queued"] == 0 and summary_balance(counts) == 0, counts
        assert all(schema.problems(e) == [] for e in publisher.published)
    finally:
        release.set()
        spool_fs.restore()
        rejected_fs.restore()
        shutil.rmtree(root, ignore_errors=True)
