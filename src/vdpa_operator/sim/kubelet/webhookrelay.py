"""Webhook Services into pods, as kube-proxy would route them: the API server of the simulated cluster calls a
webhook Service at an address of this machine (`vdpactl sim apiserver --webhook-service NS/NAME=HOST:PORT`, also
in ConfigMap kube-system/vdpa-sim-cluster `webhookServices`), and the kubelet running a pod the Service selects
listens there and relays each connection to the Service's targetPort inside that pod's network namespace (TLS
passes through: the certificate the operator serves names the Service)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lightkube import AsyncClient

from vdpa_operator.kubeclient import ClusterError, get_or_none, namespaced_resource
from vdpa_operator.sim.relay import Endpoint, relay

logger = logging.getLogger(__name__)

ServiceResource = namespaced_resource("", "Service", "services")


class Served(Protocol):
    """A pod worker as the relays see it."""

    uid: str
    namespace: str
    pod: dict[str, Any]

    @property
    def netns(self) -> str: ...


def selects(service: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_port(service: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The first port's targetPort, a named one looked up in the pod's containers (as kube-proxy's endpoints)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        return None
    target = ports[0].get("targetPort", ports[0].get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


@dataclass
class Relay:
    uid: str
    server: asyncio.Server


class WebhookRelays:
    def __init__(self, client: AsyncClient, services: Mapping[str, str]) -> None:
        self.client = client
        self.services = dict(services)
        self.relays: dict[str, Relay] = {}

    async def sync(self, workers: Sequence[Served]) -> None:
        """Open a relay for each Service one of these pods serves; close those whose pod is gone."""
        uids = {w.uid for w in workers if w.netns}
        for key in [k for k, r in self.relays.items() if r.uid not in uids]:
            await self.close(key)
        for key, address in self.services.items():
            namespace, name = key.split("/", 1)
            candidates = [w for w in workers if w.namespace == namespace and w.netns]
            if key in self.relays or not candidates:
                continue
            with contextlib.suppress(ClusterError):
                service = await get_or_none(self.client, ServiceResource, name, namespace=namespace)
                if service is None:
                    continue
                for worker in candidates:
                    port = target_port(service, worker.pod)
                    if selects(service, worker.pod) and port is not None:
                        await self._open(key, address, worker, port)
                        break

    async def _open(self, key: str, address: str, worker: Served, port: int) -> None:
        host, _, listen_port = address.rpartition(":")
        target = Endpoint(worker.netns, "127.0.0.1", port)
        try:
            server = await asyncio.start_server(lambda r, w: relay(target, r, w), host, int(listen_port),
                                                reuse_address=True)
        except OSError as exc:
            logger.warning("webhook Service %s: cannot listen on %s: %s", key, address, exc)
            return
        self.relays[key] = Relay(worker.uid, server)
        logger.info("webhook Service %s: %s relayed to port %d of pod %s/%s", key, address, port, worker.namespace,
                    worker.pod["metadata"]["name"])

    async def close(self, key: str) -> None:
        relay = self.relays.pop(key, None)
        if relay is not None:
            relay.server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await relay.server.wait_closed()

    async def close_all(self) -> None:
        for key in list(self.relays):
            await self.close(key)
