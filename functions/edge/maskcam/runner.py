"""The long-lived inference loop: it never dies of a fault, and publishing and display run off its thread.

- frame read fails: error event (first failure and every ``error_every``-th after), exponential backoff, the source is
  reopened after ``reopen_after`` consecutive failures;
- model/detector fails to load: error event, backoff, retry;
- publish fails: the event goes to the bounded on-disk ``Spool``; replayed oldest-first when publishing works again;
  when the spool is full or the disk refuses, the event is dropped and counted;
- a spooled event the publisher keeps refusing while newer ones get through (or refuses with ``PublishRefused``), and
  a spool file that is no event, go to the dead-letter file ``rejected.jsonl`` (bounded) and are counted as rejected;
- events the schema refuses are counted as rejected and kept in ``rejected.jsonl``; when it is because of the device
  clock (a ts outside 2000-2100, e.g. 1970 before NTP), a rate-limited log line says so, and the first valid event
  after is preceded by an ``error`` event saying how many were rejected;
- every ``heartbeat_s`` a heartbeat event carries fps, frames, errors (faults survived, publish errors and rejected
  events) and dropped;
- intervals (heartbeats, fps, retry timers, the frame rate) use a monotonic clock; event timestamps the wall clock.

Two stages overlap: while the loop thread runs the model on frame k, a stage thread detects faces in frame k+1 and
prepares their model inputs (``FramePipeline.prepare`` / ``finish``). Events still leave in frame order. A detector
that stops returning is reported (an error event every ``stall_report_s`` while the loop waits for it) and, after
``stall_exit_s``, makes the loop stop itself so that its supervisor restarts the process; after a stop the loop waits
for it at most ``close_timeout`` seconds, counts the frame as an error and still flushes the events (the stage thread
is a daemon, so a hung detector cannot keep the process from exiting).

Every submitted event ends up published, still in the spool, dropped or rejected, and ``Dispatcher.counts()`` says
so: ``submitted + carried_over == published + replayed + pending + queued + dropped + rejected`` at any time, with
``queued == 0`` once ``close()`` returned (also when the publisher hangs: what it has not taken is spooled)."""
import concurrent.futures
import json
import logging
import os
import queue
import threading
import time
from reprlib import repr as _short_repr
from typing import Any, Callable, Optional, Tuple

from . import schema

LOG = logging.getLogger("maskcam")
UNLOADED = "unloaded"
_monotonic = getattr(time, "monotonic", time.time)
_SANE_TS = 1767225600000  # 2026-01-01T00:00:00Z: a ts the schema accepts, to tell clock problems from others
REJECTED_MAX_BYTES = 1 << 20
REJECTED_MAX_RECORD = 16 * 1024
SPOOL_REFRESH_S = 5.0
STAGE_WAIT_SLICE_S = 0.25   # how long the loop waits for the stage thread before it looks at the stop flag again


class _Stage:
    """One daemon worker thread running submitted calls in order (``submit`` returns a Future). Unlike
    ``ThreadPoolExecutor``, whose workers the interpreter joins at exit, a call that never returns leaves the
    process free to exit."""

    def __init__(self):
        # (future, fn, args) per call; None stops the thread. (Annotations in a function body are never evaluated:
        # Queue[...] and Future[...], not subscriptable at run time before Python 3.9, are safe here on 3.7.)
        self._calls: queue.Queue[Optional[Tuple[concurrent.futures.Future[Any], Callable[..., Any], Tuple[Any, ...]]]]
        self._calls = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="maskcam-stage")
        self._thread.daemon = True
        self._thread.start()

    def submit(self, fn, *args):
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._calls.put((future, fn, args))
        return future

    def _run(self):
        while True:
            call = self._calls.get()
            if call is None:
                return
            future, fn, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # handed to the loop thread, which reports it
                future.set_exception(err)

    def shutdown(self):
        self._calls.put(None)


class EndOfStream(Exception):
    """A finite source (video file, image folder) has no more frames."""


class PublishRefused(Exception):
    """Raised by a publisher for a payload it will never accept (e.g. invalid for the service): the event is
    dead-lettered at once instead of being retried. Any other exception means "try again later"."""


class Backoff:
    def __init__(self, base=0.5, factor=2.0, cap=30.0):
        self.base, self.factor, self.cap = base, factor, cap

    def delay(self, attempt):
        try:
            return min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        except OverflowError:  # 2.0 ** 1024: about 1025 failures in a row (hours of a camera or network outage)
            return self.cap


# Backoff holds no state (delay() is a pure function of the attempt), so one instance can be every default.
PUBLISH_RETRY = Backoff(1.0, 2.0, 60.0)
RUNNER_BACKOFF = Backoff()


class Throttle:
    """At most one log line per key every ``every_s`` seconds (``clock``: monotonic); the next one says how many
    were held back."""

    def __init__(self, every_s=60.0, clock=_monotonic):
        self.every_s, self.clock = every_s, clock
        self._last, self._held = {}, {}

    def log(self, key, level, message, *args):
        """Never raises (callers log after counting)."""
        try:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and 0 <= now - last < self.every_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
            if held:
                message += " (%d similar message(s) held back)" % held
            LOG.log(level, message, *args)
            return True
        except Exception:
            return False


def _utc(ts_ms):
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ms / 1000.0))
    except Exception:
        return repr(ts_ms)


class RejectedLog:
    """``rejected.jsonl``: one JSON line per event that will never be published (refused by the schema, or a spool
    entry dead-lettered), with the reason.

    Bounded: before a line would take the file past ``max_bytes`` the file is renamed to ``<path>.1`` (replacing the
    previous one) and a new one started, so both together never exceed ``2 * max_bytes``; a record longer than
    ``max_record`` keeps the reason and only the head of the event (``event_head``). Never raises: a line that
    cannot be written is counted in ``write_errors``."""

    def __init__(self, path, max_bytes=REJECTED_MAX_BYTES, max_record=REJECTED_MAX_RECORD):
        self.path = path
        self.max_bytes = max(256, int(max_bytes))
        self.max_record = max(128, min(int(max_record), self.max_bytes))
        self.write_errors = 0
        self.rotations = 0
        self._size = None
        self._lock = threading.Lock()

    def _line(self, record):
        try:
            line = json.dumps(record, default=str, sort_keys=True)
        except Exception as err:  # circular, too deep, ...
            record = {k: v for k, v in record.items() if k not in ("event", "payload")}
            record["event_repr"] = _short_repr(record.get("event"))
            record["unserializable"] = "%s: %s" % (type(err).__name__, err)
            line = json.dumps(record, default=str, sort_keys=True)
        if len(line) + 1 > self.max_record:
            head = {k: v for k, v in record.items() if k not in ("event", "payload")}
            head = json.loads(json.dumps(head, default=str))
            head["error"] = str(head.get("error", ""))[:1024]
            head["event_bytes"] = len(line)
            room = self.max_record - len(json.dumps(head, sort_keys=True)) - 64
            head["event_head"] = line[:max(0, room)]
            line = json.dumps(head, sort_keys=True)[:self.max_record - 1]
        return (line + "\n").encode("utf-8")

    def write(self, record):
        with self._lock:
            try:
                data = self._line(record)
                if self._size is None:
                    self._size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
                if self._size and self._size + len(data) > self.max_bytes:
                    os.rename(self.path, self.path + ".1")
                    self._size = 0
                    self.rotations += 1
                with open(self.path, "ab") as handle:
                    handle.write(data)
                self._size += len(data)
                return True
            except Exception as err:
                self.write_errors += 1
                self._size = None
                if self.write_errors == 1 or self.write_errors % 1000 == 0:
                    LOG.error("cannot write %s (%d failed writes): %s: %s", self.path, self.write_errors,
                              type(err).__name__, err)
                return False


def _payload_problem(payload):
    """Why a spooled payload cannot be published as an event (None when it can)."""
    if len(payload.encode("utf-8")) > schema.MAX_PAYLOAD_BYTES:
        return "payload over the %d-byte IoT limit" % schema.MAX_PAYLOAD_BYTES
    try:
        event = json.loads(payload)
        found = schema.problems(event)
    except Exception as err:
        return "not a JSON event: %s: %s" % (type(err).__name__, err)
    return "; ".join(found) if found else None


def _clock_problem(event):
    """True when ``event`` fails validation only because of its ts (the device clock)."""
    try:
        return isinstance(event, dict) and "ts" in event and not schema.problems(dict(event, ts=_SANE_TS))
    except Exception:
        return False


_OK, _FAILED, _REFUSED = "ok", "failed", "refused"


class Dispatcher:
    """Publisher thread: takes events from a bounded queue, publishes, spools on failure, replays on recovery.

    ``clock`` is monotonic (retry timers, log throttling). ``max_attempts``: after a spooled event failed that many
    times, the newest spooled event is tried; when it gets through, the old one is tried once more and then
    dead-lettered (an outage, where nothing gets through, never dead-letters anything)."""

    def __init__(self, publisher, spool, queue_size=1000, retry=PUBLISH_RETRY, clock=_monotonic,
                 rejected_path=None, max_attempts=5, rejected_max_bytes=REJECTED_MAX_BYTES, log_every_s=60.0):
        self.publisher = publisher
        self.spool = spool
        self.retry = retry
        self.clock = clock
        self.rejected_path = rejected_path
        self.rejected = RejectedLog(rejected_path, rejected_max_bytes) if rejected_path else None
        self.max_attempts = max(1, int(max_attempts))
        self.queue: queue.Queue[str] = queue.Queue(maxsize=queue_size)  # the events' JSON payloads
        self._stats = {"submitted": 0, "published": 0, "replayed": 0, "spooled": 0, "dropped": 0,
                       "publish_errors": 0, "rejected": 0, "carried_over": len(spool),
                       "lost": 0, "dead_lettered": 0, "clock_rejected": 0, "rejected_write_errors": 0,
                       "spool_errors": 0, "internal_errors": 0, "spooled_at_close": 0}
        self._spool_seen = dict(self._spool_stats())
        self._lock = threading.Lock()      # counters
        self._state = threading.Lock()     # the event in flight, and abandoning the thread at close
        self._log = Throttle(log_every_s, clock)
        self._down_since = None
        self._failures = 0
        self._next_try = 0.0
        self._head = (None, 0, 0)          # (oldest spool entry, its consecutive failures, _oks at its first)
        self._oks = 0                      # successful publishes so far
        self._next_refresh = 0.0           # when to look at an unusable spool directory again
        self._inflight = None              # [payload] taken from the queue and not accounted for yet
        self._abandoned = False            # close() gave up on the thread: it must not account anything more
        self._closed = False
        # (first bad ts, count) while events are rejected for their ts
        self._clock_streak: Optional[Tuple[Any, int]] = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maskcam-publish")
        self._thread.daemon = True
        self._started = False

    def start(self):
        self._started = True
        self._thread.start()
        return self

    # -- counters ----------------------------------------------------------------------------------------------
    def _count(self, key, n=1):
        with self._lock:
            self._stats[key] += n

    def _spool_stats(self):
        stats = getattr(self.spool, "stats", None) or {}
        return {k: stats.get(k, 0) for k in ("lost", "adopted", "io_errors")}

    def _absorb_spool(self):
        """Spool counters into ours: entries deleted underneath are dropped, entries found later are carried over."""
        now = self._spool_stats()
        with self._lock:
            lost = now["lost"] - self._spool_seen["lost"]
            self._stats["lost"] += lost
            self._stats["dropped"] += lost
            self._stats["carried_over"] += now["adopted"] - self._spool_seen["adopted"]
            self._stats["spool_errors"] += now["io_errors"] - self._spool_seen["io_errors"]
            self._spool_seen = now

    @property
    def stats(self):
        self._absorb_spool()
        return self._stats

    def counts(self):
        """A snapshot of the counters plus ``pending`` (in the spool) and ``queued`` (not handled yet)."""
        self._absorb_spool()
        with self._lock:
            snapshot = dict(self._stats)
        snapshot["pending"] = len(self.spool)
        snapshot["queued"] = self.queue.qsize() + (1 if self._inflight is not None else 0)
        return snapshot

    @property
    def dropped(self):
        return self.stats["dropped"]

    @property
    def healthy(self):
        return self._down_since is None

    # -- the inference thread's side ---------------------------------------------------------------------------
    def submit(self, event):
        """Called from the inference thread; never waits on the network and never raises."""
        self._count("submitted")
        try:
            self._submit(event)
        except Exception as err:  # nothing planned for this: the event is counted, the loop goes on
            self._count("internal_errors")
            self._count("dropped")
            self._log.log("submit", logging.ERROR, "event dropped, submit failed: %s: %s", type(err).__name__, err)

    def _submit(self, event):
        try:
            payload = schema.to_json(event)
        except Exception as err:  # SchemaError, or an event json cannot even serialize
            self._reject(event, err)
            return
        streak = self._clock_streak
        if streak is not None:
            self._clock_fixed(event, streak)
        if self._closed:  # no thread takes from the queue any more
            self._to_spool(payload)
            return
        try:
            self.queue.put_nowait(payload)
        except queue.Full:  # the publisher thread is stuck: keep the event on disk instead of waiting
            self._to_spool(payload)
            return
        if not self._wake.is_set():
            self._wake.set()

    def _reject(self, event, err):
        clock = _clock_problem(event)
        where = self.rejected_path or "nowhere (no rejected file)"
        if self.rejected is not None and not self.rejected.write({"error": str(err), "event": event}):
            self._count("rejected_write_errors")
        if clock:
            first, count = self._clock_streak or (event.get("ts"), 0)
            self._clock_streak = (first, count + 1)
            self._count("clock_rejected")
            self._log.log("clock", logging.ERROR, "device clock reads %s: events fail validation (ts must be 2000-2100 "
                          "epoch ms); %d rejected since, kept in %s; fix the device clock (NTP)",
                          _utc(event.get("ts")), count + 1, where)
        else:
            self._log.log("rejected", logging.ERROR, "event rejected (kept in %s): %s", where, err)
        self._count("rejected")

    def _clock_fixed(self, event, streak):
        """The first valid event after events were rejected for their ts: an error event says so first."""
        (first, count), self._clock_streak = streak, None
        message = ("device clock was wrong (read %s): %d event(s) rejected for their timestamp, kept in %s"
                   % (_utc(first), count, self.rejected_path or "no rejected file"))
        LOG.warning(message)
        self.submit(schema.error_event(event["device_id"], event["ts"], event["model_name"], event["model_version"],
                                       message))

    def _spool_append(self, payload):
        try:
            return self.spool.append(payload)
        except Exception as err:  # our Spool never raises; any other spool might
            self._count("internal_errors")
            self._log.log("spool-raise", logging.ERROR, "spool append failed: %s: %s", type(err).__name__, err)
            return False

    def _log_dropped(self):
        self._log.log("dropped", logging.WARNING, "event dropped: the spool (%d/%d) cannot take it%s; %d dropped",
                      len(self.spool), getattr(self.spool, "max_events", 0),
                      " (%s)" % self.spool.error if getattr(self.spool, "error", None) else "",
                      self._stats["dropped"])

    def _to_spool(self, payload):
        if self._spool_append(payload):
            self._count("spooled")
            return True
        self._count("dropped")
        self._log_dropped()
        return False

    # -- the publisher thread ----------------------------------------------------------------------------------
    def _publish(self, payload):
        try:
            self.publisher.publish(payload)
        except PublishRefused as err:
            self._down_since, self._failures = None, 0  # the publisher answered: it works, this payload does not
            return _REFUSED, err
        except Exception as err:  # any publisher fault: network, IPC, SDK, timeout
            self._count("publish_errors")
            self._failures += 1
            now = self.clock()
            self._next_try = now + self.retry.delay(self._failures)
            if self._down_since is None:
                self._down_since = now
                LOG.warning("publish failed, spooling until it works again: %s", err)
            return _FAILED, err
        if self._down_since is not None:
            LOG.info("publishing again after %.1fs", self.clock() - self._down_since)
        self._down_since, self._failures = None, 0
        self._oks += 1
        return _OK, None

    def _retry_due(self):
        return self.healthy or self.clock() >= self._next_try

    def _take(self):
        with self._state:
            if self._abandoned:
                return None
            try:
                payload = self.queue.get_nowait()
            except queue.Empty:
                return None
            self._inflight = [payload]
            return self._inflight

    def _settle(self, box):
        """Claims the event in flight for accounting; False when close() took it over (it accounted it)."""
        with self._state:
            if self._inflight is not box:
                return False
            self._inflight = None
            return True

    def _replayed(self, entry):
        with self._state:
            if self._abandoned:
                return False
            self.spool.remove(entry.name)
            self._count("replayed")
            return True

    def _dead_letter(self, entry, reason):
        with self._state:
            if self._abandoned:
                return
            if self.rejected is not None and not self.rejected.write(
                    {"error": reason, "spool_entry": entry.name, "payload": entry.payload}):
                self._count("rejected_write_errors")
            self.spool.remove(entry.name)
            self._count("dead_lettered")
            self._count("rejected")
        self._head = (None, 0, 0)
        self._log.log("dead-letter", logging.ERROR, "spooled event %s dead-lettered to %s: %s", entry.name,
                      self.rejected_path or "nowhere (no rejected file)", reason)

    def _poisoned(self, entry, err):
        """After the oldest entry failed ``max_attempts`` times: is it this entry, or is publishing down? When
        another event was published since its first failure, or the newest entry gets through now, the oldest is
        tried once more and then dead-lettered; when nothing gets through it is an outage. True when the spool
        moved on."""
        name, failures, oks = self._head
        if name != entry.name:
            failures, oks = 0, self._oks
        failures += 1
        self._head = (entry.name, failures, oks)
        if failures < self.max_attempts:
            return False
        if self._oks == oks:  # no sign yet that publishing works: the newest entry tells
            newest = self.spool.tail()
            if newest is None or newest.name == entry.name:
                return False
            problem = newest.problem or _payload_problem(newest.payload)
            if problem:
                self._dead_letter(newest, "unusable spool entry: " + problem)
                return True
            status, newest_err = self._publish(newest.payload)
            if status == _REFUSED:
                self._dead_letter(newest, "refused by the publisher: %s" % newest_err)
                return True
            if status != _OK:
                return False  # nothing gets through: an outage, not this entry
            self._replayed(newest)
        status, again = self._publish(entry.payload)
        if status == _OK:
            self._replayed(entry)
            self._head = (None, 0, 0)
        else:
            self._dead_letter(entry, "refused %d times while other events were published: %s"
                              % (failures + 1, again or err))
        return True

    def _replay(self):
        """Publishes spooled events oldest first while publishing works; returns True when the spool is empty."""
        while not self._abandoned:
            entry = self.spool.head()
            if entry is None:
                return True
            problem = entry.problem or _payload_problem(entry.payload)
            if problem:
                self._dead_letter(entry, "unusable spool entry: " + problem)
                continue
            status, err = self._publish(entry.payload)
            if status == _OK:
                self._replayed(entry)
                self._head = (None, 0, 0)
            elif status == _REFUSED:
                self._dead_letter(entry, "refused by the publisher: %s" % err)
            elif not self._poisoned(entry, err):
                return False
        return False

    def _handle(self, box, spool_empty):
        """One event from the queue: published when the spool is empty and publishing works (or no retry is
        pending), else spooled behind the others; when the spool cannot take it (full, disk fault) it is published
        directly if a retry is due, and dropped only when that fails too."""
        payload = box[0]
        if spool_empty and self._retry_due():
            status, err = self._publish(payload)
            if status != _FAILED:
                if self._settle(box):
                    if status == _OK:
                        self._count("published")
                    else:
                        self._dead_letter_live(payload, err)
                return
        with self._state:  # spooled under the lock: close() cannot take it over half-way
            if self._inflight is not box:
                return
            if self._spool_append(payload):
                self._inflight = None
                self._count("spooled")
                return
        status, err = self._publish(payload) if self._retry_due() else (_FAILED, None)
        if self._settle(box):
            if status == _OK:
                self._count("published")
            elif status == _REFUSED:
                self._dead_letter_live(payload, err)
            else:
                self._count("dropped")
                self._log_dropped()

    def _dead_letter_live(self, payload, err):
        if self.rejected is not None and not self.rejected.write(
                {"error": "refused by the publisher: %s" % err, "payload": payload}):
            self._count("rejected_write_errors")
        self._count("dead_lettered")
        self._count("rejected")
        self._log.log("dead-letter", logging.ERROR, "event refused by the publisher, dead-lettered: %s", err)

    def step(self, timeout=0.0):
        """One round of the publisher thread (tests drive it directly, without the thread): waits up to
        ``timeout`` s for an event, replays the spool when a retry is due, then handles the event. Returns False
        once stopped and nothing is queued."""
        box = self._take()
        if box is None and timeout > 0 and not self._stop.is_set():
            self._wake.wait(timeout)
            self._wake.clear()
            box = self._take()
        took, handling = box is not None, None
        try:
            if getattr(self.spool, "error", None) and self.clock() >= self._next_refresh:
                self._next_refresh = self.clock() + SPOOL_REFRESH_S
                self.spool.refresh()  # entries an earlier run left in a directory that could not be read
            pending = len(self.spool)
            if box is not None and pending >= getattr(self.spool, "max_events", pending + 1):
                handling, box = box, None  # a full spool: this event first (when it gets through, the spool's
                self._handle(handling, False)  # oldest entry is shown to be the problem, not the network)
            if pending and self._retry_due():
                pending = 0 if self._replay() else 1
            self._absorb_spool()
            if box is not None:
                handling, box = box, None
                self._handle(handling, pending == 0)
        except Exception as err:  # a fault nobody planned for must not stop publishing, nor lose the event
            self._count("internal_errors")
            self._log.log("internal", logging.ERROR, "publisher thread fault: %s: %s", type(err).__name__, err)
            for lost in (box, handling):
                if lost is not None and self._settle(lost):
                    self._count("dropped")
        if not took:
            return not (self._stop.is_set() or self._abandoned)
        return not self._abandoned

    def _run(self):
        while True:
            try:
                if not self.step(0.1):
                    return
            except Exception:  # pragma: no cover - step() catches everything; this is the last line of defence
                self._count("internal_errors")
                if self._stop.wait(0.1) and self._abandoned:
                    return

    def close(self, timeout=10.0):
        """Stops the publisher thread. It publishes (or spools) what is queued for at most ``timeout`` seconds;
        whatever it has not taken then (a hung or slow publisher) is spooled, or counted as dropped when the spool
        cannot take it; the event inside a hung ``publish`` call is spooled too (it may be published twice: at
        least once). Returns after about ``timeout`` seconds at most, plus the spool writes."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._started:
            self._thread.join(max(0.0, timeout))
        hung = self._started and self._thread.is_alive()
        left = []
        if hung or not self._started:
            got = self._state.acquire(True, max(0.1, min(timeout, 1.0)))
            try:
                self._abandoned = True
                if got and self._inflight is not None:
                    left.append(self._inflight[0])
                    self._inflight = None
            finally:
                if got:
                    self._state.release()
        while True:  # what the thread did not take (or a submit that raced with close)
            try:
                left.append(self.queue.get_nowait())
            except queue.Empty:
                break
        spooled = sum(1 for payload in left if self._to_spool(payload))
        self._count("spooled_at_close", spooled)
        if hung:
            LOG.warning("publisher still busy after %.1fs: %d unpublished event(s) spooled, %d dropped",
                        timeout, spooled, len(left) - spooled)
        self._absorb_spool()


class DisplayWorker:
    """Shows the latest annotated frame on its own thread; frames arriving while it is busy are skipped."""

    def __init__(self, display):
        self.display = display
        self.errors = 0
        self._cond = threading.Condition()
        self._item = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="maskcam-display")
        self._thread.daemon = True

    def start(self):
        self._thread.start()
        return self

    def offer(self, frame, detections):
        with self._cond:
            self._item = (frame, detections)
            self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while self._item is None and not self._stop:
                    self._cond.wait(0.5)
                item, self._item = self._item, None
                if item is None:  # woken by the stop, nothing left to show
                    return
            try:
                self.display.show(item[0], item[1])
            except Exception as err:  # a display fault must not reach the loop
                self.errors += 1
                LOG.warning("display failed: %s", err)

    def close(self, timeout=5.0):
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
        closer = getattr(self.display, "close", None)
        if closer:
            closer()


class Runner:
    """Reads frames, runs the pipeline, emits events. ``open_source()`` and ``load_pipeline()`` are factories so a
    failing camera or model is simply opened/loaded again. ``clock`` is the wall clock (event timestamps),
    ``monotonic`` the interval clock (heartbeats, fps, frame rate); ``close_timeout`` bounds the wait for the
    publisher and for a detector still running at shutdown; ``stall_report_s`` how often a detector that does not
    return is reported while the loop waits for it, ``stall_exit_s`` when the loop gives up on it and stops."""

    def __init__(self, open_source, load_pipeline, dispatcher, device_id, display=None, rate=None,
                 heartbeat_s=60.0, backoff=RUNNER_BACKOFF, reopen_after=5, error_every=50, max_frames=None,
                 clock=time.time, sleep=time.sleep, monotonic=_monotonic, close_timeout=10.0, stall_report_s=30.0,
                 stall_exit_s=600.0):
        self.open_source = open_source
        self.load_pipeline = load_pipeline
        self.dispatcher = dispatcher
        self.device_id = device_id
        self.display = DisplayWorker(display) if display is not None else None
        self.rate = rate
        self.heartbeat_s = heartbeat_s
        self.backoff = backoff
        self.reopen_after = reopen_after
        self.error_every = error_every
        self.max_frames = max_frames
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.close_timeout = close_timeout
        self.stall_report_s = stall_report_s
        self.stall_exit_s = stall_exit_s
        self.stalled = False
        self.pipeline = None
        self.source = None
        self.frames = 0
        self.errors = 0
        self.stop_event = threading.Event()
        self._hb_time = None
        self._hb_frames = 0
        self._hb_prev = None
        # Set anew by run(): the next frame's preparation on the stage thread, and how long a stop waits for it.
        self._preparing: Optional[concurrent.futures.Future[Any]] = None
        self._stop_deadline: Optional[float] = None

    # -- events -------------------------------------------------------------------------------------------------
    def _model(self):
        if self.pipeline is None:
            return UNLOADED, UNLOADED
        try:
            return self.pipeline.model_name, self.pipeline.model_version
        except Exception:
            return UNLOADED, UNLOADED

    def _now_ms(self):
        try:
            return int(self.clock() * 1000)
        except Exception:  # a clock that returns nonsense: the event is rejected for its ts, and counted
            return 0

    def error(self, message):
        self.errors += 1
        LOG.error(message)
        name, version = self._model()
        self.dispatcher.submit(schema.error_event(self.device_id, self._now_ms(), name, version, message))

    def heartbeat(self, force=False):
        now = self.monotonic()
        if self._hb_time is None:
            self._hb_time = now
            return
        if not force and now - self._hb_time < self.heartbeat_s:
            return
        since, frames = self._hb_time, self._hb_frames
        if now - since < self.heartbeat_s / 2.0 and self._hb_prev is not None:
            since, frames = self._hb_prev  # a forced beat just after the last one: measure over both windows
        fps = (self.frames - frames) / max(now - since, 1e-6)
        name, version = self._model()
        stats = self.dispatcher.stats
        errors = self.errors + stats["publish_errors"] + stats["rejected"]
        self.dispatcher.submit(schema.heartbeat_event(self.device_id, self._now_ms(), name, version, fps,
                                                      self.frames, errors, stats["dropped"]))
        self._hb_prev = (self._hb_time, self._hb_frames)
        self._hb_time, self._hb_frames = now, self.frames

    # -- loop ---------------------------------------------------------------------------------------------------
    def _attempt(self, factory, what, attempt):
        """``factory()``, or None after an error event and a backoff pause when it raises."""
        try:
            return factory()
        except Exception as err:
            self.error("%s (attempt %d): %s: %s" % (what, attempt, type(err).__name__, err))
            self.sleep(self.backoff.delay(attempt))
            return None

    def _ensure_pipeline(self, attempt):
        self.pipeline = self._attempt(self.load_pipeline, "model load failed", attempt)
        return self.pipeline is not None

    def _ensure_source(self, attempt):
        self.source = self._attempt(self.open_source, "frame source failed to open", attempt)
        return self.source is not None

    def _close_source(self):
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                pass
            self.source = None

    def _opened(self):
        """The frame source; ``_ready()`` opens it before any read."""
        if self.source is None:
            raise RuntimeError("no frame source: _ready() opens it before a read")
        return self.source

    def _loaded(self):
        """The pipeline; ``_ready()`` loads it before any frame is read."""
        if self.pipeline is None:
            raise RuntimeError("no pipeline: _ready() loads it before a frame is read")
        return self.pipeline

    def _read(self):
        try:
            ok, frame = self._opened().read()
        except EndOfStream:
            raise
        except Exception as err:
            return None, "%s: %s" % (type(err).__name__, err)
        if not ok or frame is None:
            return None, "no frame"
        return frame, None

    def _prepared(self, preparing, shutting_down=False):
        """The stage thread's result for a frame. It is awaited in short slices, so a stop is noticed at once; while
        it does not come, an error event every ``stall_report_s``; after ``stall_exit_s`` the loop stops itself
        (``stalled``: the CLI then exits non-zero, so Greengrass restarts the process); once the runner is stopping,
        at most ``close_timeout`` seconds after the stop, then ``TimeoutError``."""
        waited = reported = 0.0
        while True:
            if shutting_down or self.stop_event.is_set():
                if self._stop_deadline is None:
                    self._stop_deadline = self.monotonic() + self.close_timeout
                try:
                    return preparing.result(timeout=max(0.0, self._stop_deadline - self.monotonic()))
                except concurrent.futures.TimeoutError:
                    raise concurrent.futures.TimeoutError(
                        "face detection did not return within %.1f s of the stop (%.0f s in all): frame abandoned"
                        % (self.close_timeout, waited)) from None
            step = min(STAGE_WAIT_SLICE_S, self.stall_report_s)
            try:
                return preparing.result(timeout=step)
            except concurrent.futures.TimeoutError:
                waited += step
            if waited >= self.stall_exit_s:
                self.stalled = True
                self.error("face detection has not returned for %.0f s: stopping the loop so that its supervisor "
                           "restarts the process" % waited)
                self.stop()
            elif waited - reported >= self.stall_report_s:
                reported = waited
                self.error("face detection has not returned for %.1f s" % waited)

    def _finish(self, preparing, shutting_down=False):
        """The model on a frame whose preparation ran on the stage thread; then its event and display."""
        try:
            prepared = self._prepared(preparing, shutting_down)
            pipeline = self._loaded()
            result = pipeline.finish(prepared)
            event = pipeline.event(self.device_id, result, self._now_ms())
        except Exception as err:
            self.error("inference failed: %s: %s" % (type(err).__name__, err))
            return
        self.frames += 1
        self.dispatcher.submit(event)
        if self.display is not None:
            self.display.offer(prepared.frame, result.detections)

    def _iterate(self, stage, tries):
        """One frame (or one attempt to get the model or the source ready); False to end the loop."""
        if not self._ready(tries):
            return True
        started = self.monotonic()
        try:
            frame, problem = self._read()
        except EndOfStream:
            return False
        if problem is not None:
            self._read_failed(tries, problem)
            return True
        tries["read"] = 0
        previous, self._preparing = self._preparing, stage.submit(self._loaded().prepare, frame)
        if previous is not None:
            self._finish(previous)
        self.heartbeat()
        if self.max_frames is not None and self.frames + 1 >= self.max_frames:
            return False
        self._pace(started)
        return True

    def _ready(self, tries):
        """Loads the model and opens the source where needed (counting the tries); whether both are there."""
        if self.pipeline is None:
            tries["load"] += 1
            if not self._ensure_pipeline(tries["load"]):
                return False
        if self.source is None:
            tries["open"] += 1
            if not self._ensure_source(tries["open"]):
                return False
            tries["open"] = 0
        return True

    def _read_failed(self, tries, problem):
        """A frame read failed: reported (the first, then every ``error_every``-th in a row), the source reopened
        every ``reopen_after``-th, and a backoff before the next try."""
        tries["read"] += 1
        failures = tries["read"]
        if failures == 1 or failures % self.error_every == 0:
            self.error("frame read failed (%d in a row): %s" % (failures, problem))
        else:
            self.errors += 1
        if failures % self.reopen_after == 0:
            self._close_source()
        self.sleep(self.backoff.delay(failures))
        self.heartbeat()

    def _pace(self, started):
        """Sleeps for the rest of the frame interval at ``rate`` frames per second (if set)."""
        if self.rate:
            pause = 1.0 / self.rate - (self.monotonic() - started)
            if pause > 0:
                self.sleep(pause)

    def run(self):
        """Runs until ``stop_event`` is set, ``max_frames`` are processed or a finite source ends."""
        self.dispatcher.start()
        if self.display is not None:
            self.display.start()
        self.heartbeat()
        tries = {"load": 0, "open": 0, "read": 0}
        faults = 0
        stage = _Stage()
        self._preparing = None  # the next frame's detection and preprocessing, running on the stage thread
        self._stop_deadline = None
        try:
            while not self.stop_event.is_set():
                try:
                    if not self._iterate(stage, tries):
                        break
                    faults = 0
                except Exception as err:  # a fault nobody planned for: reported, backed off, the loop goes on
                    faults += 1
                    self.error("loop fault (%d in a row): %s: %s" % (faults, type(err).__name__, err))
                    self.sleep(self.backoff.delay(faults))
        finally:
            if self._preparing is not None:
                self._finish(self._preparing, shutting_down=True)
            stage.shutdown()
            self.heartbeat(force=True)
            self._close_source()
            if self.display is not None:
                self.display.close()
            self.dispatcher.close(self.close_timeout)
        return self

    def stop(self):
        self.stop_event.set()
