"""The drain controller against the embedded API server: the test plays the node daemons (it sets the Node's
drain request annotation, as `daemon.kube.request_drain_state` does) and checks the operator's answers."""

from __future__ import annotations

import asyncio
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType
from operator_harness import NS, client_for, eventually, operator_running, seed_cluster

from vdpa_operator.api.models import (
    CURRENT_STATE,
    DRAIN_COMPLETE,
    DRAIN_IDLE,
    DRAIN_REQUIRED,
    DRAINING,
    NODE_STATE,
    REBOOT_REQUIRED,
)
from vdpa_operator.kubeclient import EventResource, NodeResource, NodeStateResource, PodResource, PoolConfigResource
from vdpa_operator.sim.apiserver import ServerHandle


async def request(client: AsyncClient, node: str, value: str) -> None:
    await client.patch(NodeResource, node, {"metadata": {"annotations": {NODE_STATE: value}}},
                       patch_type=PatchType.MERGE)


async def current(client: AsyncClient, node: str) -> str | None:
    state = await client.get(NodeStateResource, node, namespace=NS)
    return (state["metadata"].get("annotations") or {}).get(CURRENT_STATE)


async def pod(client: AsyncClient, name: str, node: str, requests: dict[str, str] | None = None,
              owner_kind: str = "") -> None:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owner_kind:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "x", "uid": "u",
                                   "controller": True}]
    container = {"name": "c", "image": "busybox", "resources": {"requests": requests or {}}}
    await client.create(PodResource.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                               "spec": {"nodeName": node, "containers": [container]}}))


async def pods(client: AsyncClient) -> set[str]:
    return {p["metadata"]["name"] async for p in client.list(PodResource, namespace="default")}


def test_drain_required_evicts_only_sriov_pods_one_node_at_a_time(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client, nodes=2)
        await pod(client, "vdpa-pod", "worker-0", {"openshift.io/mlxnics": "1"})
        await pod(client, "plain-pod", "worker-0", {"cpu": "100m"})
        await pod(client, "ds-pod", "worker-0", {"openshift.io/mlxnics": "1"}, owner_kind="DaemonSet")
        async with operator_running(server):
            # The controller first creates the missing annotations as Idle.
            await eventually(lambda: _is(current(client, "worker-0"), DRAIN_IDLE), what="current-state Idle")
            await request(client, "worker-0", DRAIN_REQUIRED)
            await request(client, "worker-1", DRAIN_REQUIRED)
            # The default pool allows one node at a time.
            await eventually(lambda: _in(current(client, "worker-0"), {DRAIN_COMPLETE}), what="worker-0 drained")
            assert await current(client, "worker-1") == DRAIN_IDLE
            assert await pods(client) == {"plain-pod", "ds-pod"}
            node = await client.get(NodeResource, "worker-0")
            assert node["spec"]["unschedulable"] is True
            reasons = {e["reason"] async for e in client.list(EventResource, namespace=NS)
                       if e["involvedObject"]["name"] == "worker-0"}
            assert "DrainNode" in reasons
            # The daemon finished: uncordon, Idle, and worker-1 gets its turn.
            await request(client, "worker-0", DRAIN_IDLE)
            await eventually(lambda: _is(current(client, "worker-0"), DRAIN_IDLE), what="worker-0 back to Idle")
            node = await client.get(NodeResource, "worker-0")
            assert not node["spec"].get("unschedulable")
            await eventually(lambda: _is(current(client, "worker-1"), DRAIN_COMPLETE), what="worker-1 drained")
        await client.close()

    asyncio.run(main())


def test_pool_max_unavailable_lets_nodes_drain_in_parallel_and_reboot_drains_all(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client, nodes=2)
        await client.create(PoolConfigResource.from_dict({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkPoolConfig",
            "metadata": {"name": "workers", "namespace": NS},
            "spec": {"maxUnavailable": "100%", "nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}}}}))
        await pod(client, "plain-pod", "worker-1", {"cpu": "100m"})
        async with operator_running(server):
            await eventually(lambda: _is(current(client, "worker-1"), DRAIN_IDLE), what="annotations created")
            await request(client, "worker-0", DRAIN_REQUIRED)
            await request(client, "worker-1", REBOOT_REQUIRED)
            await eventually(lambda: _is(current(client, "worker-0"), DRAIN_COMPLETE), what="worker-0 drained")
            await eventually(lambda: _is(current(client, "worker-1"), DRAIN_COMPLETE), what="worker-1 drained")
            assert await pods(client) == set()
        await client.close()

    asyncio.run(main())


def test_pool_with_zero_max_unavailable_blocks_drain(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client, nodes=1)
        await client.create(PoolConfigResource.from_dict({
            "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkPoolConfig",
            "metadata": {"name": "frozen", "namespace": NS},
            "spec": {"maxUnavailable": 0, "nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}}}}))
        async with operator_running(server):
            await eventually(lambda: _is(current(client, "worker-0"), DRAIN_IDLE), what="annotations created")
            await request(client, "worker-0", DRAIN_REQUIRED)
            await asyncio.sleep(1.0)
            assert await current(client, "worker-0") == DRAIN_IDLE
            # Opening the pool lets the waiting node through.
            await client.patch(PoolConfigResource, "frozen", {"spec": {"maxUnavailable": 1}}, namespace=NS,
                               patch_type=PatchType.MERGE)
            await eventually(lambda: _in(current(client, "worker-0"), {DRAINING, DRAIN_COMPLETE}),
                             what="drain starts once the pool has room")
        await client.close()

    asyncio.run(main())


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def _in(value: Any, expected: set[str]) -> bool:
    return bool(await value in expected)
