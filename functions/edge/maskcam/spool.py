"""Bounded on-disk spool for events that could not be published: one file per event, replayed oldest first.

Survives restarts (a spool left by a previous run is replayed when the publisher works again). When full, new events
are refused and counted as dropped by the caller; nothing already spooled is overwritten."""
import os
import threading

_SUFFIX = ".json"


class Spool(object):
    def __init__(self, directory, max_events=10000):
        if max_events < 1:
            raise ValueError("spool max_events must be at least 1, got %r" % max_events)
        self.directory = directory
        self.max_events = max_events
        self._lock = threading.Lock()
        if not os.path.isdir(directory):
            os.makedirs(directory)
        self._names = sorted(n for n in os.listdir(directory) if n.endswith(_SUFFIX))
        self._seq = int(self._names[-1][:-len(_SUFFIX)]) + 1 if self._names else 0

    def __len__(self):
        with self._lock:
            return len(self._names)

    def append(self, payload):
        """Stores one JSON payload; returns False (and stores nothing) when the spool is full."""
        with self._lock:
            if len(self._names) >= self.max_events:
                return False
            name = "%016d%s" % (self._seq, _SUFFIX)
            self._seq += 1
            tmp = os.path.join(self.directory, "." + name + ".tmp")
            with open(tmp, "w") as handle:
                handle.write(payload)
            os.rename(tmp, os.path.join(self.directory, name))
            self._names.append(name)
            return True

    def peek(self):
        """The oldest payload, or None when empty."""
        with self._lock:
            if not self._names:
                return None
            name = self._names[0]
        with open(os.path.join(self.directory, name)) as handle:
            return handle.read()

    def pop(self):
        """Removes the oldest payload (after it was published)."""
        with self._lock:
            if self._names:
                os.remove(os.path.join(self.directory, self._names.pop(0)))
