"""`kubeclient.Informer` against the embedded API server: the initial list as ADDED events, watch events in
order, and after the server compacted its history while the watch was away (410 Gone), a re-list that reports
exactly what changed meanwhile, as client-go's reflector does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.types import PatchType
from operator_harness import NS, client_for

from vdpa_operator.kubeclient import SYNCED, ConfigMapResource, Informer
from vdpa_operator.sim.apiserver import ServerHandle

Event = tuple[str, str, str | None, str | None]
"""(type, name, new data value, old data value); SYNCED has no name."""
LISTED = (SYNCED, "", None, None)


def config_map(name: str, value: str, namespace: str = NS) -> Any:
    return ConfigMapResource.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": name, "namespace": namespace}, "data": {"v": value}})


async def set_value(client: AsyncClient, name: str, value: str) -> None:
    await client.patch(ConfigMapResource, name, {"data": {"v": value}}, namespace=NS, patch_type=PatchType.MERGE)


class Events:
    """The informer's callback: records each event, and can hold the informer inside the next call."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self.held = asyncio.Event()
        self._hold: asyncio.Event | None = None

    def hold_next(self) -> None:
        self._hold = asyncio.Event()

    def release(self) -> None:
        assert self._hold is not None
        self._hold.set()

    async def __call__(self, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        obj = new if new is not None else old
        assert (obj is None) == (kind == SYNCED), (kind, obj)
        self.seen.append((kind, obj["metadata"]["name"] if obj else "", _value(new), _value(old)))
        hold = self._hold
        if hold is not None and not hold.is_set():
            self.held.set()
            await hold.wait()


def _value(obj: dict[str, Any] | None) -> str | None:
    return None if obj is None else (obj.get("data") or {}).get("v")


@contextlib.asynccontextmanager
async def informing(server: ServerHandle, events: Events, **options: Any) -> AsyncIterator[Informer]:
    client = client_for(server)
    informer = Informer(client, ConfigMapResource, namespace=NS, on_event=events, retry_delay=0.05, **options)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def values(informer: Informer) -> dict[str, str | None]:
    return {name: _value(obj) for (_ns, name), obj in informer.cache.items()}


def test_initial_list_is_reported_as_added_and_cached(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        for name in ("a", "b", "c"):
            await client.create(config_map(name, name))
        await client.create(config_map("elsewhere", "x", namespace="default"))
        events = Events()
        async with informing(server, events) as informer:
            assert sorted(events.seen[:-1]) == [("ADDED", n, n, None) for n in ("a", "b", "c")]
            assert events.seen[-1] == LISTED, "SYNCED follows the list's events"
            assert values(informer) == {"a": "a", "b": "b", "c": "c"}
            assert informer.get("a", NS) is not None and informer.get("elsewhere", "default") is None
        await client.close()

    asyncio.run(main())


def test_watch_events_arrive_in_order_with_the_previous_object(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        events = Events()
        async with informing(server, events) as informer:
            assert events.seen == [LISTED]
            del events.seen[:]
            await client.create(config_map("a", "1"))
            await set_value(client, "a", "2")
            await client.create(config_map("b", "1"))
            await set_value(client, "a", "3")
            await client.delete(ConfigMapResource, "b", namespace=NS)
            await until(lambda: len(events.seen) == 5)
            assert events.seen == [("ADDED", "a", "1", None), ("MODIFIED", "a", "2", "1"),
                                   ("ADDED", "b", "1", None), ("MODIFIED", "a", "3", "2"),
                                   ("DELETED", "b", None, "1")]
            assert values(informer) == {"a": "3"}
        await client.close()

    asyncio.run(main())


def test_after_compaction_a_relist_reports_each_change_missed_exactly_once(
        server: ServerHandle, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        client = client_for(server)
        caplog.set_level(logging.INFO, logger="vdpa_operator.kubeclient")
        for name in ("kept", "changed", "removed"):
            await client.create(config_map(name, "1"))
        events = Events()
        async with informing(server, events) as informer:
            # Hold the informer inside its callback for the next event, so what follows is not seen by its watch.
            events.hold_next()
            await client.create(config_map("trigger", "1"))
            await asyncio.wait_for(events.held.wait(), 5)
            await asyncio.to_thread(server.end_watches)
            await set_value(client, "changed", "2")
            await client.delete(ConfigMapResource, "removed", namespace=NS)
            await client.create(config_map("new", "1"))
            await asyncio.to_thread(server.compact)  # the watch cannot resume: 410, then a re-list
            before = len(events.seen)
            events.release()
            await until(lambda: values(informer) == {"kept": "1", "changed": "2", "trigger": "1", "new": "1"})
            await asyncio.sleep(0.3)  # nothing more comes
            missed = events.seen[before:]
            assert sorted(missed[:-1]) == [("ADDED", "new", "1", None), ("DELETED", "removed", None, "1"),
                                           ("MODIFIED", "changed", "2", "1")]
            assert missed[-1] == LISTED
            assert any("expired" in r.getMessage() for r in caplog.records), "re-listed because of the 410"

            # And the new watch works.
            await set_value(client, "kept", "2")
            await until(lambda: events.seen[-1] == ("MODIFIED", "kept", "2", "1"))
        await client.close()

    asyncio.run(main())
