"""`vdpactl node-daemon`: a thin loop around `NodeReconciler` — reconcile on every change of the NodeState
(watch), after the delay the last pass asked for, and never more than one pass at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vdpa_operator.daemon.nodestate_client import ClusterError, NodeStateApi
from vdpa_operator.daemon.reconcile import RESYNC_SECONDS, Backoff, NodeReconciler

logger = logging.getLogger(__name__)


async def run(api: NodeStateApi, reconciler: NodeReconciler, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    wake = asyncio.Event()
    api_backoff = Backoff(initial=1.0, maximum=60.0)

    async def watch() -> None:
        async for _ in api.changes():
            wake.set()

    watcher = asyncio.create_task(watch())
    try:
        while not stop.is_set():
            wake.clear()
            try:
                delay = await reconciler.reconcile()
                api_backoff.reset()
            except ClusterError as exc:
                delay = api_backoff.next()
                logger.warning("Kubernetes API: %s; retrying in %.0f s", exc, delay)
            if watcher.done() and watcher.exception() is not None:
                raise watcher.exception()  # type: ignore[misc]
            await _wait_any(wake, stop, RESYNC_SECONDS if delay is None else delay)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClusterError):
            await watcher
        reconciler.close()


async def _wait_any(wake: asyncio.Event, stop: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
