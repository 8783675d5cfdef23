"""`KeyedQueue`: controller-runtime's work-queue guarantees (de-duplication, the earliest `AddAfter` wins, one
handler per key at a time, `MaxConcurrentReconciles`, exponential backoff on error, `RequeueAfter`).

Short real delays where only the order matters; an injected clock where exact backoff times are checked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from vdpa_operator.controller.loop import KeyedQueue
from vdpa_operator.controller.settings import Backoff


@contextlib.asynccontextmanager
async def running(queue: KeyedQueue[Any]) -> AsyncIterator[KeyedQueue[Any]]:
    task = asyncio.create_task(queue.run())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


class Recorder:
    """A handler that records (key, start, end) of each call, and how many ran at once."""

    def __init__(self, duration: float = 0.0, again: Callable[[str, int], float | None] = lambda _k, _n: None):
        self.duration = duration
        self.again = again
        self.calls: list[tuple[str, float, float]] = []
        self.active: dict[str, int] = {}
        self.max_active_per_key = 0
        self.max_active = 0

    async def __call__(self, key: str) -> float | None:
        start = time.monotonic()
        self.active[key] = self.active.get(key, 0) + 1
        self.max_active_per_key = max(self.max_active_per_key, self.active[key])
        self.max_active = max(self.max_active, sum(self.active.values()))
        try:
            await asyncio.sleep(self.duration)
        finally:
            self.active[key] -= 1
        self.calls.append((key, start, time.monotonic()))
        return self.again(key, sum(1 for k, _, _ in self.calls if k == key))

    def keys(self) -> list[str]:
        return [k for k, _, _ in self.calls]


def test_key_added_many_times_while_pending_runs_once() -> None:
    async def main() -> None:
        handler = Recorder()
        async with running(KeyedQueue("t", handler)) as queue:
            for delay in (0.05, 0.03, 0.04, 0.05, 0.03):
                queue.add("a", delay)
            queue.add("b", 0.03)
            await until(lambda: queue.handled == 2)
            await asyncio.sleep(0.1)
        assert sorted(handler.keys()) == ["a", "b"]
        assert queue.pending() == 0

    asyncio.run(main())


@pytest.mark.parametrize("delays", [(10.0, 0.02), (0.02, 10.0)], ids=["later-add-earlier", "earlier-add-first"])
def test_the_earliest_requested_time_wins(delays: tuple[float, float]) -> None:
    async def main() -> None:
        handler = Recorder()
        async with running(KeyedQueue("t", handler)) as queue:
            added = time.monotonic()
            for delay in delays:
                queue.add("a", delay)
            await until(lambda: queue.handled == 1, timeout=0.5)
            assert handler.calls[0][1] - added >= 0.02
            assert queue.pending() == 0, "the later request is not kept as a second run"

    asyncio.run(main())


def test_same_key_never_runs_concurrently_and_a_re_add_while_running_runs_after() -> None:
    async def main() -> None:
        handler = Recorder(duration=0.1)
        async with running(KeyedQueue("t", handler, workers=4)) as queue:
            queue.add("a")
            await until(lambda: handler.active.get("a") == 1)
            queue.add("a")
            queue.add("a")
            await asyncio.sleep(0.02)
            assert handler.active["a"] == 1 and queue.pending() == 2  # one running, one waiting
            await until(lambda: queue.handled == 2)
        assert handler.keys() == ["a", "a"]
        assert handler.max_active_per_key == 1
        (_, _, first_end), (_, second_start, _) = handler.calls
        assert second_start >= first_end

    asyncio.run(main())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_bound_how_many_keys_run_at_once(workers: int) -> None:
    async def main() -> None:
        handler = Recorder(duration=0.03)
        async with running(KeyedQueue("t", handler, workers=workers)) as queue:
            for key in "abcdef":
                queue.add(key)
            await until(lambda: queue.handled == 6)
        assert sorted(handler.keys()) == list("abcdef")
        assert handler.max_active == workers

    asyncio.run(main())


@pytest.mark.parametrize("again", [0.05, 0.0])
def test_a_returned_delay_adds_the_key_again(again: float) -> None:
    async def main() -> None:
        handler = Recorder(again=lambda _key, n: again if n == 1 else None)
        async with running(KeyedQueue("t", handler)) as queue:
            queue.add("a")
            await until(lambda: queue.handled == 2)
            await asyncio.sleep(0.05)
        assert handler.keys() == ["a", "a"]
        (_, _, first_end), (_, second_start, _) = handler.calls
        assert second_start - first_end >= again
        assert queue.pending() == 0

    asyncio.run(main())


def test_an_earlier_add_while_running_beats_the_returned_delay() -> None:
    async def main() -> None:
        handler = Recorder(duration=0.05, again=lambda _key, n: 10.0 if n == 1 else None)
        async with running(KeyedQueue("t", handler)) as queue:
            queue.add("a")
            await until(lambda: handler.active.get("a") == 1)
            queue.add("a")
            await until(lambda: queue.handled == 2, timeout=0.5)

    asyncio.run(main())


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def advance(queue: KeyedQueue[str], clock: FakeClock, to: float) -> None:
    """Move the queue's clock and wake its loop (by adding a key that never comes due), then let it work."""
    clock.now = to
    queue.add(f"wake-up-at-{to}", 1e9)
    for _ in range(20):
        await asyncio.sleep(0)


def test_failures_are_retried_with_exponential_backoff_capped_and_reset_by_success() -> None:
    """controller-runtime's per-item exponential failure rate limiter: base, doubled per consecutive failure, up
    to the cap; a success forgets the failures."""
    outcomes = ["fail"] * 9 + ["ok", "fail", "ok"]
    failures_in_a_row = [*range(1, 10), 1]
    backoff = Backoff()
    expected = [min(backoff.start * 2 ** (n - 1), backoff.max) for n in failures_in_a_row]
    assert expected[-2] == backoff.max, "the case reaches the cap"

    async def main() -> None:
        clock = FakeClock()
        seen: list[float] = []

        async def handle(key: str) -> float | None:
            outcome = outcomes[len(seen)]
            seen.append(clock.now)
            if outcome == "fail":
                raise RuntimeError("API unreachable")
            return 0.0 if len(seen) < len(outcomes) else None  # after a success: run again at once

        def called_more_than(n: int) -> Callable[[], bool]:
            return lambda: len(seen) > n

        queue: KeyedQueue[str] = KeyedQueue("t", handle, clock=clock)
        delays = iter(expected)
        async with running(queue):
            queue.add("a")
            await until(lambda: len(seen) == 1)
            while len(seen) < len(outcomes):
                calls = len(seen)
                if outcomes[calls - 1] == "ok":
                    await until(called_more_than(calls))
                    continue
                due = seen[-1] + next(delays)
                await advance(queue, clock, due - 0.001)
                assert len(seen) == calls, f"failure {calls} retried before {due - seen[-1]} s"
                await advance(queue, clock, due)
                await until(called_more_than(calls))
                assert seen[calls] == due
        assert next(delays, None) is None

    asyncio.run(main())


def test_a_due_key_waiting_for_a_worker_does_not_spin_the_loop() -> None:
    async def main() -> None:
        reads = 0

        def clock() -> float:
            nonlocal reads
            reads += 1
            return time.monotonic()

        handler = Recorder(duration=0.1)
        async with running(KeyedQueue("t", handler, workers=1, clock=clock)) as queue:
            queue.add("a")
            queue.add("b")
            await until(lambda: handler.active.get("a") == 1)
            before = reads
            await asyncio.sleep(0.05)
            spins = reads - before
            await until(lambda: queue.handled == 2)
        assert spins < 20, f"{spins} loop iterations in 50 ms while waiting for a free worker"

    asyncio.run(main())
