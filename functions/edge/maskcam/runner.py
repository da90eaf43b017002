"""The long-lived inference loop: it never dies of a fault, and publishing and display run off its thread.

- frame read fails: error event (first failure and every ``error_every``-th after), exponential backoff, the source is
  reopened after ``reopen_after`` consecutive failures;
- model/detector fails to load: error event, backoff, retry;
- publish fails: the event goes to the bounded on-disk ``Spool``; replayed oldest-first when publishing works again;
  when the spool is full the event is dropped and counted;
- every ``heartbeat_s`` a heartbeat event carries fps, frames, errors and dropped.

Two stages overlap: while the loop thread runs the model on frame k, a stage thread detects faces in frame k+1 and
prepares their model inputs (``FramePipeline.prepare`` / ``finish``). Events still leave in frame order.

Every emitted event ends up published, still in the spool, or dropped: ``Dispatcher.stats`` counts each."""
import concurrent.futures
import json
import logging
import threading
import time

from . import schema

try:
    import queue
except ImportError:  # pragma: no cover - Python 2 on very old DeepLens images
    import Queue as queue  # noqa: N813

LOG = logging.getLogger("maskcam")
UNLOADED = "unloaded"


class EndOfStream(Exception):
    """A finite source (video file, image folder) has no more frames."""


class Backoff(object):
    def __init__(self, base=0.5, factor=2.0, cap=30.0):
        self.base, self.factor, self.cap = base, factor, cap

    def delay(self, attempt):
        return min(self.cap, self.base * self.factor ** max(0, attempt - 1))


class Dispatcher(object):
    """Publisher thread: takes events from a bounded queue, publishes, spools on failure, replays on recovery."""

    def __init__(self, publisher, spool, queue_size=1000, retry=Backoff(1.0, 2.0, 60.0), clock=time.time,
                 rejected_path=None):
        self.publisher = publisher
        self.spool = spool
        self.retry = retry
        self.clock = clock
        self.rejected_path = rejected_path
        self.queue = queue.Queue(maxsize=queue_size)
        self.stats = {"submitted": 0, "published": 0, "replayed": 0, "spooled": 0, "dropped": 0,
                      "publish_errors": 0, "rejected": 0, "carried_over": len(spool)}
        self._lock = threading.Lock()
        self._down_since = None
        self._failures = 0
        self._next_try = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maskcam-publish")
        self._thread.daemon = True

    def start(self):
        self._thread.start()
        return self

    def _count(self, key, n=1):
        with self._lock:
            self.stats[key] += n

    def submit(self, event):
        """Called from the inference thread; never waits on the network."""
        try:
            payload = schema.to_json(event)
        except schema.SchemaError as err:
            self._reject(event, err)
            return
        self._count("submitted")
        try:
            self.queue.put_nowait(payload)
        except queue.Full:  # the publisher thread is stuck: keep the event on disk instead of waiting
            self._to_spool(payload)

    def _reject(self, event, err):
        self._count("rejected")
        LOG.error("event rejected: %s", err)
        if self.rejected_path:
            with open(self.rejected_path, "a") as handle:
                handle.write(json.dumps({"error": str(err), "event": event}, default=str) + "\n")

    def _to_spool(self, payload):
        if self.spool.append(payload):
            self._count("spooled")
        else:
            self._count("dropped")

    @property
    def dropped(self):
        return self.stats["dropped"]

    @property
    def healthy(self):
        return self._down_since is None

    def _publish(self, payload):
        try:
            self.publisher.publish(payload)
        except Exception as err:  # any publisher fault: network, IPC, SDK
            self._count("publish_errors")
            self._failures += 1
            self._next_try = self.clock() + self.retry.delay(self._failures)
            if self._down_since is None:
                self._down_since = self.clock()
                LOG.warning("publish failed, spooling until it works again: %s", err)
            return False
        if self._down_since is not None:
            LOG.info("publishing again after %.1fs", self.clock() - self._down_since)
        self._down_since, self._failures = None, 0
        return True

    def _replay(self):
        """Publishes spooled events oldest first while publishing works; returns True when the spool is empty."""
        while True:
            payload = self.spool.peek()
            if payload is None:
                return True
            if not self._publish(payload):
                return False
            self.spool.pop()
            self._count("replayed")

    def _retry_due(self):
        return self.healthy or self.clock() >= self._next_try

    def _run(self):
        while True:
            try:
                payload = self.queue.get(timeout=0.1)
            except queue.Empty:
                payload = None
            spool_empty = len(self.spool) == 0
            if not spool_empty and self._retry_due():
                spool_empty = self._replay()
            if payload is None:
                if self._stop.is_set():
                    return
                continue
            if spool_empty and self._retry_due() and self._publish(payload):
                self._count("published")
            else:
                self._to_spool(payload)

    def close(self, timeout=10.0):
        """Drains the queue (publishing or spooling every queued event), then stops the thread."""
        self._stop.set()
        self._thread.join(timeout)


class DisplayWorker(object):
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
                if self._item is None and self._stop:
                    return
                item, self._item = self._item, None
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


class Runner(object):
    """Reads frames, runs the pipeline, emits events. ``open_source()`` and ``load_pipeline()`` are factories so a
    failing camera or model is simply opened/loaded again."""

    def __init__(self, open_source, load_pipeline, dispatcher, device_id, display=None, rate=None,
                 heartbeat_s=60.0, backoff=Backoff(), reopen_after=5, error_every=50, max_frames=None,
                 clock=time.time, sleep=time.sleep):
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
        self.sleep = sleep
        self.pipeline = None
        self.source = None
        self.frames = 0
        self.errors = 0
        self.stop_event = threading.Event()
        self._hb_time = None
        self._hb_frames = 0

    # -- events -------------------------------------------------------------------------------------------------
    def _model(self):
        if self.pipeline is None:
            return UNLOADED, UNLOADED
        return self.pipeline.model_name, self.pipeline.model_version

    def _now_ms(self):
        return int(self.clock() * 1000)

    def error(self, message):
        self.errors += 1
        LOG.error(message)
        name, version = self._model()
        self.dispatcher.submit(schema.error_event(self.device_id, self._now_ms(), name, version, message))

    def heartbeat(self, force=False):
        now = self.clock()
        if self._hb_time is None:
            self._hb_time = now
            return
        if not force and now - self._hb_time < self.heartbeat_s:
            return
        elapsed = max(now - self._hb_time, 1e-6)
        fps = (self.frames - self._hb_frames) / elapsed
        name, version = self._model()
        errors = self.errors + self.dispatcher.stats["publish_errors"]
        self.dispatcher.submit(schema.heartbeat_event(self.device_id, self._now_ms(), name, version, fps,
                                                      self.frames, errors, self.dispatcher.dropped))
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

    def _read(self):
        try:
            ok, frame = self.source.read()
        except EndOfStream:
            raise
        except Exception as err:
            return None, "%s: %s" % (type(err).__name__, err)
        if not ok or frame is None:
            return None, "no frame"
        return frame, None

    def _finish(self, preparing):
        """The model on a frame whose preparation ran on the stage thread; then its event and display."""
        try:
            prepared = preparing.result()
            result = self.pipeline.finish(prepared)
        except Exception as err:
            self.error("inference failed: %s: %s" % (type(err).__name__, err))
            return
        self.frames += 1
        self.dispatcher.submit(self.pipeline.event(self.device_id, result, self._now_ms()))
        if self.display is not None:
            self.display.offer(prepared.frame, result.detections)

    def run(self):
        """Runs until ``stop_event`` is set, ``max_frames`` are processed or a finite source ends."""
        self.dispatcher.start()
        if self.display is not None:
            self.display.start()
        self.heartbeat()
        load_attempts = open_attempts = read_failures = 0
        stage = concurrent.futures.ThreadPoolExecutor(1)
        preparing = None  # the next frame's detection and preprocessing, running on the stage thread
        try:
            while not self.stop_event.is_set():
                if self.pipeline is None:
                    load_attempts += 1
                    if not self._ensure_pipeline(load_attempts):
                        continue
                if self.source is None:
                    open_attempts += 1
                    if not self._ensure_source(open_attempts):
                        continue
                    open_attempts = 0
                started = self.clock()
                try:
                    frame, problem = self._read()
                except EndOfStream:
                    break
                if problem is not None:
                    read_failures += 1
                    if read_failures == 1 or read_failures % self.error_every == 0:
                        self.error("frame read failed (%d in a row): %s" % (read_failures, problem))
                    else:
                        self.errors += 1
                    if read_failures % self.reopen_after == 0:
                        self._close_source()
                    self.sleep(self.backoff.delay(read_failures))
                    self.heartbeat()
                    continue
                read_failures = 0
                previous, preparing = preparing, stage.submit(self.pipeline.prepare, frame)
                if previous is not None:
                    self._finish(previous)
                self.heartbeat()
                if self.max_frames is not None and self.frames + 1 >= self.max_frames:
                    break
                if self.rate:
                    pause = 1.0 / self.rate - (self.clock() - started)
                    if pause > 0:
                        self.sleep(pause)
        finally:
            if preparing is not None:
                self._finish(preparing)
            stage.shutdown()
            self.heartbeat(force=True)
            self._close_source()
            if self.display is not None:
                self.display.close()
            self.dispatcher.close()
        return self

    def stop(self):
        self.stop_event.set()
