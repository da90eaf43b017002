"""Bounded on-disk spool for events that could not be published: one file per event, replayed oldest first.

Survives restarts (a spool left by a previous run is replayed when the publisher works again). When full, new events
are refused and counted as dropped by the caller; nothing already spooled is overwritten.

No filesystem fault escapes from here (the publisher thread and the inference loop call it):

- full disk, read-only or unwritable directory: ``append`` stores nothing and returns False (the caller counts the
  event as dropped); a half-written temporary file is removed;
- the directory missing, unusable or replaced (by a file, or by another directory): ``Spool()`` still opens, with
  ``error`` saying why, and every later ``append`` (and ``refresh``) looks again, so the spool works, and adopts
  what an earlier run left there, as soon as the directory does;
  entries that disappeared with the old directory are counted in ``stats["lost"]``;
- a file deleted underneath: forgotten and counted in ``stats["lost"]``;
- foreign files (any name but ``<digits>.json``) are left alone and never replayed; a stale ``.<name>.tmp`` (a write
  interrupted by a crash) is removed at open; an entry file with foreign content (not UTF-8, over
  ``MAX_ENTRY_BYTES``, unreadable, a directory) comes back from ``head()`` with ``problem`` set, for the caller to
  dead-letter and ``remove``;
- an entry whose file cannot be deleted after it was published is forgotten for this run and replayed again at the
  next start (at least once);
- an entry file that appears under a name the spool was about to use is adopted (``stats["adopted"]``), never
  overwritten.

``stats``: ``adopted`` (entries found on disk: at open, or when the directory is looked at again), ``lost``,
``io_errors`` (failed filesystem calls). ``len(spool)`` is the number of pending entries; every entry ever adopted or
appended is pending, removed by the caller, or lost."""
import errno
import logging
import os
import re
import threading
from collections import namedtuple

LOG = logging.getLogger("maskcam")
_SUFFIX = ".json"
_TMP = ".tmp"
_ENTRY = re.compile(r"^[0-9]{1,20}\.json$")
MAX_ENTRY_BYTES = 256 * 1024  # one event is at most 128 KB (schema.MAX_PAYLOAD_BYTES); a bigger file is foreign
_GONE = (errno.ENOENT, errno.ENOTDIR)

Entry = namedtuple("Entry", "name payload problem")
Entry.__doc__ = """A spool entry: file ``name``, ``payload`` text (as far as it could be read), ``problem`` (None when
the file read cleanly, else why it cannot be an event)."""


def _seq(name):
    return int(name[:-len(_SUFFIX)])


class Spool:
    def __init__(self, directory, max_events=10000):
        if max_events < 1:
            raise ValueError("spool max_events must be at least 1, got %r" % max_events)
        self.directory = directory
        self.max_events = max_events
        self.stats = {"adopted": 0, "lost": 0, "io_errors": 0}
        self.error = None            # why the directory cannot be used right now; None when it can
        self._lock = threading.Lock()
        self._names = []             # pending entries, oldest first
        self._forgotten = set()      # removed, but the file could not be deleted: never adopted again this run
        self._seq = 0
        self._usable = False
        self._problem = None         # the last fault logged (each new kind of fault is logged once)
        with self._lock:
            self._sync()

    # -- internals (called with the lock held) -------------------------------------------------------------------
    def _path(self, name):
        return os.path.join(self.directory, name)

    def _fault(self, what, err):
        self.stats["io_errors"] += 1
        self.error = "%s: %s: %s" % (what, type(err).__name__, err)
        key = (what, getattr(err, "errno", None))
        if key != self._problem:
            self._problem = key
            LOG.warning("spool %s: %s", self.directory, self.error)

    def _unlink(self, name):
        try:
            os.remove(self._path(name))
            return True
        except Exception as err:
            if getattr(err, "errno", None) == errno.ENOENT:
                return True
            self._fault("cannot delete %s" % name, err)
            return False

    def _sync(self):
        """Looks at the directory (creating it when missing): adopts entries not known yet, forgets entries whose
        file is gone (counted lost). False, with ``error`` set, when the directory cannot be used."""
        try:
            if not os.path.isdir(self.directory):
                os.makedirs(self.directory)
            listing = os.listdir(self.directory)
        except Exception as err:
            self._usable = False
            self._fault("directory unusable", err)
            return False
        on_disk = set()
        for name in listing:
            if _ENTRY.match(name):
                if name not in self._forgotten:
                    on_disk.add(name)
            elif name.startswith(".") and name.endswith(_SUFFIX + _TMP):
                self._unlink(name)  # a write interrupted by a crash: its event was never counted as spooled
        known = set(self._names)
        gone = known - on_disk
        if gone:
            self.stats["lost"] += len(gone)
            LOG.warning("spool %s: %d spooled event(s) disappeared from the directory", self.directory, len(gone))
        adopted = on_disk - known
        self.stats["adopted"] += len(adopted)
        self._names = sorted(on_disk, key=_seq)
        if self._names:
            self._seq = max(self._seq, _seq(self._names[-1]) + 1)
        if not self._usable and self._problem is not None:
            LOG.info("spool %s: directory usable again", self.directory)
        self._usable, self.error, self._problem = True, None, None
        return True

    def _write(self, name, payload):
        tmp = self._path("." + name + _TMP)
        try:
            with open(tmp, "wb") as handle:
                handle.write(payload.encode("utf-8"))
            os.rename(tmp, self._path(name))
            return None
        except Exception as err:
            try:
                os.remove(tmp)
            except Exception:
                pass
            return err

    def _read(self, name):
        """(Entry, None), or (None, errno) when the file is gone."""
        try:
            with open(self._path(name), "rb") as handle:
                data = handle.read(MAX_ENTRY_BYTES + 1)
        except Exception as err:
            code = getattr(err, "errno", None)
            if code in _GONE:
                return None, code
            try:
                if not os.path.lexists(self._path(name)):
                    return None, errno.ENOENT  # gone as well as unreadable
            except Exception:
                pass
            return Entry(name, "", "cannot read it: %s: %s" % (type(err).__name__, err)), None
        if len(data) > MAX_ENTRY_BYTES:
            return Entry(name, data[:1024].decode("utf-8", "replace"),
                         "larger than %d bytes, not an event" % MAX_ENTRY_BYTES), None
        try:
            return Entry(name, data.decode("utf-8"), None), None
        except UnicodeDecodeError as err:
            return Entry(name, data.decode("utf-8", "replace"), "not UTF-8: %s" % err), None

    def _entry(self, index):
        """The entry at ``index`` (0 oldest, -1 newest) that still has a file; vanished ones are counted lost."""
        while True:
            with self._lock:
                if not self._names:
                    return None
                name = self._names[index]
            entry, gone = self._read(name)
            if entry is not None:
                return entry
            with self._lock:
                if name in self._names:
                    self._names.remove(name)
                    self.stats["lost"] += 1
                if gone == errno.ENOTDIR:
                    self._usable = False  # a file stands where the directory was: look again at the next append
            LOG.warning("spool %s: spooled event %s was deleted underneath", self.directory, name)

    # -- API -------------------------------------------------------------------------------------------------------
    def __len__(self):
        with self._lock:
            return len(self._names)

    def append(self, payload):
        """Stores one JSON payload; returns False (and stores nothing) when the spool is full or the disk refuses."""
        with self._lock:
            try:
                return self._append(payload)
            except Exception as err:  # e.g. a failing stat
                self._fault("cannot store an event", err)
                return False

    def _append(self, payload):
        if not self._usable and not self._sync():
            return False
        for _ in range(3):
            if len(self._names) >= self.max_events:
                return False
            name = "%016d%s" % (self._seq, _SUFFIX)
            if os.path.lexists(self._path(name)):  # someone else's file: adopt it, never overwrite it
                if not self._sync() or name not in self._names:
                    self._seq += 1
                continue
            err = self._write(name, payload)
            if err is None:
                self._seq += 1
                self._names.append(name)
                return True
            self._fault("cannot store an event", err)
            if getattr(err, "errno", None) not in _GONE or not self._sync():
                return False  # full disk, read-only, ...: refused; the next append tries again
        return False

    def refresh(self):
        """Looks at the directory again when it could not be used (entries left there by an earlier run are
        adopted once it can be read); True when it is usable."""
        with self._lock:
            return self._usable or self._sync()

    def head(self):
        """The oldest entry (``Entry``), or None when empty."""
        return self._entry(0)

    def tail(self):
        """The newest entry (``Entry``), or None when empty."""
        return self._entry(-1)

    def remove(self, name):
        """Forgets an entry (published or dead-lettered) and deletes its file. A file that cannot be deleted stays
        on disk and is replayed again at the next start."""
        with self._lock:
            if name not in self._names:
                return
            self._names.remove(name)
            if not self._unlink(name):
                self._forgotten.add(name)

    def peek(self):
        """The oldest payload, or None when empty."""
        entry = self.head()
        return None if entry is None else entry.payload

    def pop(self):
        """Removes the oldest payload (after it was published)."""
        with self._lock:
            name = self._names[0] if self._names else None
        if name is not None:
            self.remove(name)
