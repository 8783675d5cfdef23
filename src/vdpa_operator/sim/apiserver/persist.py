"""Write-behind persistence of a store's whole state in one JSON file, so a server restarted on the same
directory serves the same objects, CRDs and resourceVersion counter.

Writes only mark the state dirty; a background thread writes a snapshot at most every `interval` seconds (and
`flush()`/`close()` write at once, as a clean shutdown does). Each snapshot goes to a temporary file that
replaces the old one by an atomic rename: a crash leaves the last complete snapshot. The watch event log is
not kept: after a restart, a watch from an older resourceVersion gets 410 Gone and its client re-lists.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
FORMAT = 1
"""Version of the file layout: {"format", "resourceVersion", "resources": {group_resource: [objects]}}."""
DEFAULT_INTERVAL = 0.2


def load(directory: Path) -> dict[str, Any] | None:
    """The last snapshot written to `directory`, or None when there is none yet."""
    path = directory / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    state = json.loads(raw)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a state file of format {FORMAT}; move it away to start empty")
    return state


class Persister:
    """Writes `snapshot()` (taken under the caller's lock; encoded outside it) to `directory`."""

    def __init__(self, directory: Path, snapshot: Callable[[], dict[str, Any]],
                 interval: float = DEFAULT_INTERVAL) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.interval = interval
        self._snapshot = snapshot
        self._dirty = False
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: tuple[threading.Thread, threading.Event] | None = None
        self._thread_lock = threading.Lock()
        self._last_write = 0.0
        self.writes = 0
        """Snapshots written so far (tests and benchmarks read it)."""

    def touch(self) -> None:
        """The state changed: write it soon. Cheap: called on every write, under the store's lock."""
        self._dirty = True
        if self._thread is None:
            self._start()
        self._wake.set()

    def flush(self) -> None:
        """Write now if anything changed since the last snapshot."""
        with self._write_lock:
            if not self._dirty:
                return
            self._dirty = False
            state = self._snapshot()
            data = json.dumps({"format": FORMAT, **state}, separators=(",", ":")).encode()
            tmp = self.directory / f".{STATE_FILE}.tmp"
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.directory / STATE_FILE)
            self._last_write = time.monotonic()
            self.writes += 1

    def close(self) -> None:
        """Stop the writer thread and write what is pending. A later `touch()` starts a new thread."""
        with self._thread_lock:
            running, self._thread = self._thread, None
        if running is not None:
            thread, stop = running
            stop.set()
            self._wake.set()
            thread.join()
        self.flush()

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(stop,), name=f"persist-{self.directory.name}",
                                          daemon=True)
                self._thread = (thread, stop)
                thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait()
            if stop.is_set():
                return
            self._wake.clear()
            delay = self._last_write + self.interval - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return  # close() writes what is pending
            try:
                self.flush()
            except OSError:
                log.exception("could not write the API server state to %s", self.directory)
