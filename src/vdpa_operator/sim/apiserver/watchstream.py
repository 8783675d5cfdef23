"""Watch streams within a fixed memory budget: each event encoded once for all the watches that send it, a slow
watch's unsent events bounded in bytes, and a watch that falls too far behind closed (its client re-lists).

kube-apiserver does the same: its watch cache serializes an event once for every watcher and terminates a
watcher that does not keep up. Here:

- an event's line (`{"type": …, "object": …}` and a newline) is encoded once and shared by every watch that
  sends it while any still has to (stored objects are shared, never changed, so the line is keyed by the
  object; a selector watch that sees a MODIFIED as ADDED shares that form: `WatchEvent.seen_by`); the same
  holds for the ADDED events a new watch starts with, which count toward the budget as they are written;
- one watch's queued lines are at most `WatchBudget.queue_bytes` (it always takes one, however large), besides
  the one it is writing;
- all watches' unsent lines, each line counted once however many watches hold it, are at most
  `WatchBudget.total_bytes`: beyond it the watches holding the oldest line, the furthest behind, are closed;
- a line is written `write_chunk` bytes at a time, the next only once the connection's buffer has drained
  (asyncio's transport copies whatever it is given into its own buffer), so one connection buffers at most
  one chunk.

So what watch streams hold for their events is at most `WatchBudget.bound(watches)`. A closed watch's stream
ends where it is; when a write to a client that does not read is pending, by aborting the connection.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from vdpa_operator.bounded import MiB

KiB = 1 << 10


@dataclass(frozen=True)
class WatchBudget:
    """How much memory open watches may hold for events not yet written to their clients."""

    queue_bytes: int = 8 * MiB
    """One watch's unsent events; a watch over it is closed."""
    total_bytes: int = 64 * MiB
    """Every watch's unsent events, each event counted once; over it, the watches furthest behind are closed."""
    write_chunk: int = 64 * KiB
    """Written to a connection at a time."""

    def bound(self, watches: int) -> int:
        """The most the event lines of `watches` open watches occupy: queued, plus a chunk per connection.

        The connections themselves cost apart from this, whatever the events: with TLS, asyncio keeps a 256 KiB
        read buffer per connection (`sslproto.SSLProtocol.max_size`); `bench/apiserver_watch.py` measures about
        300 KiB a watch. So 771 watches of a 15 MB object take at most 64 MiB + 771 × (64 KiB + ~300 KiB)."""
        return self.total_bytes + watches * self.write_chunk


def encode(kind: str, obj: dict[str, Any]) -> bytes:
    """One watch event as the stream carries it."""
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class Line:
    """One event's type and encoded bytes, and how many watches still have to write them."""

    __slots__ = ("data", "holders", "key", "kind")

    def __init__(self, kind: str, data: bytes, key: tuple[str, int] | None = None) -> None:
        self.kind = kind
        self.data = data
        self.key = key
        """(type, id of the object) for a shared line."""
        self.holders = 0


class Streams:
    """The open watches of one server: their outboxes, the lines they share, and the budget they keep."""

    def __init__(self, budget: WatchBudget) -> None:
        self.budget = budget
        self.held = 0
        """Bytes of the lines some watch has yet to write, each line counted once."""
        self.closed_behind = 0
        """Watches closed for falling behind, since start."""
        self._lines: dict[int, Line] = {}
        """Held lines by id, oldest first."""
        self._outboxes: set[Outbox] = set()
        self._shared: dict[tuple[str, int], tuple[dict[str, Any], Line]] = {}
        """Shared lines by (type, id(object)), with the object, so its id stays its own while the line lives."""

    def open(self, transport: asyncio.Transport | None) -> Outbox:
        """A watch's outbox. Its connection pauses the writer as soon as anything is left unsent (asyncio's
        default lets 64 KiB pile up first), so the connection holds at most the chunk being written. The high
        mark is 1, not 0: a TLS transport compares with >=, so 0 would pause it while empty and never resume."""
        if transport is not None:
            transport.set_write_buffer_limits(high=1)
        outbox = Outbox(self, transport)
        self._outboxes.add(outbox)
        return outbox

    def shared_line(self, kind: str, obj: dict[str, Any]) -> Line:
        """The event's line: encoded by the first watch that sends it, shared by the others until all have."""
        key = (kind, id(obj))
        entry = self._shared.get(key)
        if entry is not None:
            return entry[1]
        line = Line(kind, encode(kind, obj), key)
        self._shared[key] = (obj, line)
        return line

    def end_all(self) -> None:
        """End every stream after the events already queued (a server-side timeout, or shutdown)."""
        for outbox in list(self._outboxes):
            outbox.end()

    def _hold(self, line: Line) -> None:
        if not line.holders:
            self._lines[id(line)] = line
            self.held += len(line.data)
        line.holders += 1

    def _release(self, line: Line) -> None:
        line.holders -= 1
        if not line.holders:
            del self._lines[id(line)]
            self.held -= len(line.data)
            self._forget(line)

    def _forget(self, line: Line) -> None:
        if not line.holders and line.key is not None:
            self._shared.pop(line.key, None)

    def _enforce(self, newest: Line) -> None:
        """Close the watches furthest behind until the held lines fit `total_bytes` (the newest line stays)."""
        while self.held > self.budget.total_bytes:
            oldest = next(iter(self._lines.values()))
            behind = [outbox for outbox in self._outboxes if outbox.holds(oldest)]
            if oldest is newest or not behind:
                return
            for outbox in behind:
                outbox.close()


class Outbox:
    """The lines one watch has yet to write, in order; `None` in the queue ends the stream."""

    def __init__(self, streams: Streams, transport: asyncio.Transport | None) -> None:
        self._streams = streams
        self._transport = transport
        self._queue: deque[Line | None] = deque()
        self._wake = asyncio.Event()
        self.queued = 0
        """Bytes of the queued lines (not counting the one being written)."""
        self.writing: Line | None = None
        self.closed = False

    def put(self, line: Line) -> None:
        size = len(line.data)
        if not self.closed and self._queue and self.queued + size > self._streams.budget.queue_bytes:
            self.close()
        if self.closed:
            self._streams._forget(line)
            return
        self._queue.append(line)
        self.queued += size
        self._streams._hold(line)
        self._wake.set()
        self._streams._enforce(line)

    def begin(self, line: Line) -> bool:
        """Write `line` now, ahead of the queue (a new watch's initial events): held, and counted, until `sent`.
        False when the watch has been closed."""
        if self.closed:
            self._streams._forget(line)
            return False
        self.writing = line
        self._streams._hold(line)
        self._streams._enforce(line)
        return not self.closed

    def end(self) -> None:
        if not self.closed:
            self._queue.append(None)
            self._wake.set()

    def holds(self, line: Line) -> bool:
        return line is self.writing or line in self._queue

    async def next(self, timeout: float) -> Line | None:
        """The next line to write (call `sent` once it is written), None when the stream ends; TimeoutError
        when nothing came within `timeout` seconds."""
        if not self._queue and not self.closed:
            self._wake.clear()
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0))
        if self.closed or not self._queue:
            return None
        line = self._queue.popleft()
        if line is not None:
            self.queued -= len(line.data)
            self.writing = line
        return line

    def sent(self) -> None:
        if self.writing is not None:
            self._streams._release(self.writing)
            self.writing = None

    def close(self) -> None:
        """Fallen too far behind: drop the queue and end the stream, aborting a pending write."""
        if self.closed:
            return
        self.closed = True
        self._streams.closed_behind += 1
        writing = self.writing is not None
        self._drop()
        if writing and self._transport is not None:
            self._transport.abort()
        self._wake.set()

    def discard(self) -> None:
        """The stream is over, however it ended: let go of everything it held."""
        self._drop()
        self._streams._outboxes.discard(self)

    def _drop(self) -> None:
        for line in self._queue:
            if line is not None:
                self._streams._release(line)
        self._queue.clear()
        self.queued = 0
        self.sent()


async def send(response: web.StreamResponse, data: bytes, chunk: int) -> None:
    """Write `data` a chunk at a time; aiohttp waits for the connection to drain after each chunk this size."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        await response.write(view[start:start + chunk])
