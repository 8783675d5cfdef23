"""The kubelet's Node: registered at start (labels, address, kubelet port, podCIDR), kept Ready by a Lease in
kube-node-lease renewed every heartbeat and a Ready condition, and its capacity/allocatable carrying each
device plugin's devices (capacity all listed, allocatable the healthy ones, as kubelet's device manager
reports them) beside the machine's own cpu, memory and pod count."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from vdpa_operator.kubeclient import (
    LeaseResource,
    NodeResource,
    api_errors,
    get_or_none,
    rfc3339,
)
from vdpa_operator.sim.kubelet.settings import KubeletSettings

logger = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
MAX_PODS = 110


def labels(settings: KubeletSettings) -> dict[str, str]:
    return {"kubernetes.io/hostname": settings.node_name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
            "feature.node.kubernetes.io/network-sriov.capable": "true"}


def machine_resources() -> dict[str, str]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{pages // 1024}Ki", "pods": str(MAX_PODS),
            "ephemeral-storage": "10Gi"}


def resources(devices: Mapping[str, tuple[int, int]]) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) with `devices`: resource → (listed, healthy)."""
    capacity, allocatable = machine_resources(), machine_resources()
    for name, (listed, healthy) in devices.items():
        capacity[name] = str(listed)
        allocatable[name] = str(healthy)
    return capacity, allocatable


def _now() -> str:
    return rfc3339(datetime.datetime.now(datetime.UTC))


def ready_condition(now: str, since: str) -> dict[str, str]:
    return {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": since}


def node_object(settings: KubeletSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if settings.pod_cidr:
        spec = {"podCIDR": settings.pod_cidr, "podCIDRs": [settings.pod_cidr]}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": settings.node_name, "labels": labels(settings),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "vdpa.sim/netns": settings.node_netns}},
            "spec": spec}


class NodeStatus:
    """Registers the Node and sends its heartbeats; `devices` is set by the kubelet before each one."""

    def __init__(self, client: AsyncClient, settings: KubeletSettings) -> None:
        self.client = client
        self.settings = settings
        self.devices: dict[str, tuple[int, int]] = {}
        self.streaming_port = settings.streaming_port
        """Where the exec/log server really listens, once started."""
        self._since = _now()
        self._sent: dict[str, Any] = {}

    async def register(self) -> None:
        """Create the Node, or take over the one there (a restarted kubelet): labels and spec merged in."""
        name = self.settings.node_name
        wanted = node_object(self.settings)
        existing = await get_or_none(self.client, NodeResource, name)
        with api_errors("register", f"Node {name}"):
            if existing is None:
                await self.client.create(NodeResource.from_dict(wanted))
                logger.info("registered node %s", name)
            else:
                await self.client.patch(NodeResource, name, {"metadata": wanted["metadata"], "spec": wanted["spec"]},
                                        patch_type=PatchType.MERGE)
                logger.info("node %s was registered already: took it over", name)
        await self.heartbeat(force=True)

    async def heartbeat(self, *, force: bool = False) -> None:
        """Renew the Lease; patch the status when it changed or at every heartbeat (its time is the proof)."""
        await self._renew_lease()
        capacity, allocatable = resources(self.devices)
        now = _now()
        status = {"capacity": capacity, "allocatable": allocatable,
                  "conditions": [ready_condition(now, self._since)],
                  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": self.settings.node_name}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": self.streaming_port}},
                  "nodeInfo": {"kubeletVersion": "v1.31.0-vdpa-sim", "operatingSystem": "linux",
                               "architecture": "amd64", "containerRuntimeVersion": "vdpa-sim://0.1",
                               "kernelVersion": os.uname().release, "osImage": "vdpa-operator simulated node",
                               "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}
        if allocatable != self._sent.get("allocatable") or capacity != self._sent.get("capacity"):
            logger.info("node %s allocatable: %s", self.settings.node_name,
                        ", ".join(f"{k}={v}" for k, v in sorted(allocatable.items()) if "/" in k) or "no devices")
        with api_errors("update status of", f"Node {self.settings.node_name}"):
            await self.client.patch(NodeResource.Status, self.settings.node_name, {"status": status},
                                    patch_type=PatchType.MERGE)
        self._sent = status

    async def _renew_lease(self) -> None:
        name = self.settings.node_name
        spec = {"holderIdentity": name, "leaseDurationSeconds": self.settings.timing.lease_seconds,
                "renewTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        existing = await get_or_none(self.client, LeaseResource, name, namespace=LEASE_NAMESPACE)
        with api_errors("renew", f"Lease {LEASE_NAMESPACE}/{name}"):
            if existing is None:
                await self.client.create(LeaseResource.from_dict(
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec}))
            else:
                await self.client.patch(LeaseResource, name, {"spec": spec}, namespace=LEASE_NAMESPACE,
                                        patch_type=PatchType.MERGE)
