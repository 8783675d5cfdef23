"""The daemon's reconcile loop for its own NodeState (upstream `pkg/daemon/daemon.go`, §4.3–§4.4), over the
`NodeStateApi` port and a `NodeAgent` that runs on one worker thread.

Differences from upstream, on purpose: a failed apply is reported as `syncStatus: Failed` with a
`lastSyncError` naming the step and the object (upstream leaves daemon-mode failures at `InProgress`), and
retried with exponential backoff; a spec that cannot be applied at all (a value the daemon cannot act on,
named by its field; more VFs than the NIC has; an externally managed PF that is not ready) fails the same way
before anything is touched, and the daemon goes on watching for the next spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from vdpa_operator.api.models import (
    CURRENT_STATE,
    DESIRED_STATE,
    DRAIN_COMPLETE,
    DRAIN_IDLE,
    DRAIN_REQUIRED,
    DRAINING,
    SYNC_FAILED,
    SYNC_IN_PROGRESS,
    SYNC_SUCCEEDED,
    SriovNetworkNodeState,
)
from vdpa_operator.daemon.apply import ApplyResult
from vdpa_operator.daemon.node import NodeAgent, status_changed, status_patch
from vdpa_operator.daemon.nodestate_client import NodeStateApi
from vdpa_operator.daemon.observed import Observation
from vdpa_operator.daemon.plan import Plan, PlanError
from vdpa_operator.daemon.store import StoreError
from vdpa_operator.host.errors import HostError

logger = logging.getLogger(__name__)
T = TypeVar("T")

RESYNC_SECONDS = 30.0
"""Upstream `DaemonRequeueTime`: how often a converged node re-checks for drift."""


@dataclass
class Backoff:
    """Exponential retry delay after failures, reset by a success or a new generation."""

    initial: float = 1.0
    maximum: float = 300.0
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return float(min(self.maximum, self.initial * 2.0 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


class NodeReconciler:
    def __init__(self, api: NodeStateApi, agent: NodeAgent, *, backoff: Backoff | None = None) -> None:
        self.api = api
        self.agent = agent
        self.backoff = backoff or Backoff()
        self.last_applied_generation = 0
        self._failed_generation = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host")

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    async def _host(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Every Host call on the one worker thread (a sync netlink socket must not run inside the loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, lambda: fn(*args, **kwargs))

    async def reconcile(self) -> float | None:
        """One pass. Returns when to look again (seconds), or None to wait for the next change."""
        state = await self.api.get()
        if state is None:
            logger.info("no SriovNetworkNodeState for node %s yet", self.api.node_name)
            return None
        annotations = state.metadata.annotations
        if CURRENT_STATE not in annotations or DESIRED_STATE not in annotations:
            logger.info("waiting for the drain controller to initialise the drain annotations of %s",
                        self.api.node_name)
            return None
        generation = state.metadata.generation
        if generation != self._failed_generation:
            self.backoff.reset()
        try:
            observed = await self._host(self.agent.observe)
            if generation == 1 and not state.spec.interfaces and generation != self.last_applied_generation:
                await self._host(self.agent.store.clear_records)  # upstream: a first, empty spec owns no PF
                await self._set_status(state, observed, SYNC_SUCCEEDED, "")
                self.last_applied_generation = generation
                return RESYNC_SECONDS
            planned = await self._host(self.agent.plan, state.spec, observed)
            if generation == self.last_applied_generation:
                if not planned.steps:
                    await self._publish_if_changed(state, observed)
                    return RESYNC_SECONDS
                logger.info("node drifted from its spec: %d steps to converge", len(planned.steps))
            state = await self._set_status(state, observed, SYNC_IN_PROGRESS, state.status.last_sync_error)
        except PlanError as exc:
            return await self._fail(state, observed, str(exc), generation)
        except (HostError, StoreError) as exc:
            return await self._fail(state, None, f"discovery failed: {exc}", generation)
        if not await self._drained(state, planned):
            return RESYNC_SECONDS
        try:
            result = await self._host(self.agent.apply, planned, observed, generation=generation,
                                      on_step=_log_step)
        except StoreError as exc:  # the journal or a record could not be written: failed like a step, retried
            return await self._fail(state, None, str(exc), generation)
        for note in result.notes:
            await self.api.event("NodeConfig", note)
        return await self._finish(state, result, generation)

    async def _drained(self, state: SriovNetworkNodeState, planned: Plan) -> bool:
        """Upstream `handleDrain` + `isDrainCompleted` for daemon mode (no reboots): True when the apply may run."""
        annotations = state.metadata.annotations
        current, desired = annotations.get(CURRENT_STATE), annotations.get(DESIRED_STATE)
        if planned.drain or current != DRAIN_IDLE:
            if current == DRAIN_COMPLETE:
                return True
            if current == DRAINING:
                logger.info("node %s is draining", self.api.node_name)
                return False
            if await self.api.disable_drain():
                logger.info("drain disabled in SriovOperatorConfig; applying without one")
                return True
            if desired != DRAIN_REQUIRED:
                await self.api.request_drain_state(DRAIN_REQUIRED)
                await self.api.event("DrainRequested", f"{len(planned.steps)} changes need a drain of "
                                     f"{', '.join(planned.pfs) or 'the node'}")
            return False
        return True

    async def _finish(self, state: SriovNetworkNodeState, result: ApplyResult, generation: int) -> float:
        observed = await self._host(self.agent.observe)
        if not result.ok:
            return await self._fail(state, observed, result.error_message(), generation)
        if state.metadata.annotations.get(DESIRED_STATE) != DRAIN_IDLE:
            await self.api.request_drain_state(DRAIN_IDLE)
        await self._set_status(state, observed, SYNC_SUCCEEDED, "")
        self.last_applied_generation = generation
        self._failed_generation = 0
        self.backoff.reset()
        return RESYNC_SECONDS

    async def _fail(self, state: SriovNetworkNodeState, observed: Observation | None, message: str,
                    generation: int) -> float:
        logger.warning("sync of generation %d failed: %s", generation, message)
        self._failed_generation = generation
        await self._set_status(state, observed, SYNC_FAILED, message)
        delay = self.backoff.next()
        logger.info("retrying in %.0f s", delay)
        return delay

    async def _set_status(self, state: SriovNetworkNodeState, observed: Observation | None, sync_status: str,
                          error: str) -> SriovNetworkNodeState:
        interfaces = observed.interfaces if observed is not None else state.status.interfaces
        previous = state.status.sync_status
        updated = await self.api.patch_status(status_patch(interfaces, sync_status, error))
        if previous != sync_status:
            text = f"Status changed from: {previous or 'none'} to: {sync_status}"
            await self.api.event("SyncStatusChanged", text + (f". Last Error: {error}" if error else ""),
                                 warning=sync_status == SYNC_FAILED)
        return updated

    async def _publish_if_changed(self, state: SriovNetworkNodeState, observed: Observation) -> None:
        if status_changed(state.status.interfaces, observed.interfaces):
            await self._set_status(state, observed, state.status.sync_status, state.status.last_sync_error)


def _log_step(index: int, total: int, _step: object, description: str) -> None:
    logger.info("step %d/%d: %s", index + 1, total, description)
