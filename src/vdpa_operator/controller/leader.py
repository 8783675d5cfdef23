"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's timings and rules.

A candidate takes the Lease when it is free or its holder has not renewed within `leaseDurationSeconds`; the
holder renews every `retry_period` and gives up leadership when it could not renew for `renew_deadline` (the
operator then exits, as controller-runtime's manager does, so a restart starts clean). Writes carry the
resourceVersion read, so two candidates racing for the same Lease cannot both win (the loser gets 409).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from lightkube import AsyncClient

from vdpa_operator.controller.settings import LeaseTiming
from vdpa_operator.kubeclient import ClusterError, LeaseResource, api_errors, get_or_none, parse_rfc3339

log = logging.getLogger(__name__)

LEASE_NAME = "a56def2a.openshift.io"
"""Upstream's `LeaderElectionID`, so our operator and upstream's never run side by side on one cluster."""


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str | None) -> datetime.datetime | None:
    return parse_rfc3339(text) if text else None


class LeaderElector:
    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        identity: str,
        *,
        name: str = LEASE_NAME,
        lease_duration: float = LeaseTiming.duration,
        renew_deadline: float = LeaseTiming.renew_deadline,
        retry_period: float = LeaseTiming.retry_period,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self._duration = lease_duration
        self._deadline = renew_deadline
        self._retry = retry_period
        self._now = now
        self.leading = asyncio.Event()

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when we hold the Lease afterwards."""
        now = self._now()
        target = f"Lease {self.namespace}/{self.name}"
        lease = await get_or_none(self._client, LeaseResource, self.name, namespace=self.namespace)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, transitions=0, acquired=now)}
            with api_errors("create", target):
                await self._client.create(LeaseResource.from_dict(body))
            return True
        lease = dict(lease)
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        holder = spec.get("holderIdentity") or ""
        renewed = _time(spec.get("renewTime")) or _time(spec.get("acquireTime"))
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        if holder and holder != self.identity and renewed is not None \
                and now < renewed + datetime.timedelta(seconds=duration):
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        acquired = _time(spec.get("acquireTime")) if holder == self.identity else now
        if holder != self.identity:
            transitions += 1
        lease["spec"] = self._spec(now, transitions=transitions, acquired=acquired or now)
        with api_errors("update", target):
            await self._client.replace(LeaseResource.from_dict(lease))
        return True

    def _spec(self, now: datetime.datetime, *, transitions: int, acquired: datetime.datetime) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self._duration),
                "acquireTime": _micro_time(acquired), "renewTime": _micro_time(now),
                "leaseTransitions": transitions}

    async def _attempt(self) -> bool:
        try:
            return await self._try()
        except ClusterError as err:
            log.info("leader election: %s", err)
            return False

    async def run(self) -> None:
        """Acquire, set `leading`, then renew until a renewal fails for `renew_deadline`; returns when
        leadership is lost (the caller stops the controllers)."""
        while not await self._attempt():
            await asyncio.sleep(self._retry)
        log.info("became leader: %s holds Lease %s/%s", self.identity, self.namespace, self.name)
        self.leading.set()
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(self._retry)
            if await self._attempt():
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > self._deadline:
                self.leading.clear()
                log.error("leader election lost: Lease %s/%s not renewed for %g s", self.namespace, self.name,
                          self._deadline)
                return
