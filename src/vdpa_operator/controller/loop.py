"""Work queues with controller-runtime's guarantees, small enough to read: one key is never handled twice at
once, requests that arrive while it waits collapse into one, and failures come back with exponential backoff.

`KeyedQueue` runs `handle(key)` for keys added with a delay; `handle` returns how long until the key should run
again (None: only when someone adds it). The policy sync is the same queue with one key, as upstream enqueues
the single synthetic request `node-policy-sync-event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from vdpa_operator.controller.settings import Backoff

DEFAULT_BACKOFF = Backoff()

log = logging.getLogger(__name__)

K = TypeVar("K")


class KeyedQueue(Generic[K]):
    """Delayed, de-duplicated, per-key serialised work with `workers` keys in flight at most."""

    def __init__(
        self,
        name: str,
        handle: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 1,
        backoff: Backoff = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._handle = handle
        self._workers = workers
        self._backoff = backoff
        self._clock = clock
        self._due: dict[K, float] = {}
        self._running: set[K] = set()
        self._failures: dict[K, int] = {}
        self._wakeup = asyncio.Event()
        self.handled = 0
        """Keys handled so far (tests and benchmarks wait on it)."""

    def add(self, key: K, delay: float = 0.0) -> None:
        """Run `key` after `delay` seconds; an earlier pending run wins, as `AddAfter` keeps the earliest."""
        due = self._clock() + delay
        if key not in self._due or due < self._due[key]:
            self._due[key] = due
            self._wakeup.set()

    def pending(self) -> int:
        return len(self._due) + len(self._running)

    async def run(self) -> None:
        """Forever: start due keys (not already running) on up to `workers` tasks. Cancel to stop."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                now = self._clock()
                ready = sorted((due, k) for k, due in self._due.items() if due <= now and k not in self._running)
                for _, key in ready[: max(0, self._workers - len(self._running))]:
                    del self._due[key]
                    self._running.add(key)
                    task = asyncio.create_task(self._one(key))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                waiting = [due for k, due in self._due.items() if k not in self._running]
                # With every worker busy, only a finishing key (which sets the wake-up) can change anything.
                busy = len(self._running) >= self._workers
                timeout = max(0.0, min(waiting) - now) if waiting and not busy else None
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, key: K) -> None:
        try:
            again = await self._handle(key)
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # every failure is retried, as controller-runtime requeues on error
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            again = self._backoff.after(failures)
            log.warning("%s %s failed (%s: %s); retrying in %.1f s", self.name, key, type(err).__name__, err, again)
        finally:
            self._running.discard(key)
            self.handled += 1
            self._wakeup.set()
        if again is not None:
            self.add(key, again)
