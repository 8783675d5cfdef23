"""Run the real operator (lightkube over HTTP) against the embedded API server, inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig

from vdpa_operator.controller.service import Operator, OperatorOptions
from vdpa_operator.controller.settings import OperatorSettings
from vdpa_operator.kubeclient import NamespaceResource, NodeResource, NodeStateResource, OperatorConfigResource
from vdpa_operator.sim.apiserver import ServerHandle

NS = "openshift-sriov-network-operator"
EXAMPLES = Path(__file__).parents[3] / "examples"


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text()))


def client_for(server: ServerHandle) -> AsyncClient:
    return AsyncClient(KubeConfig.from_file(server.kubeconfig_path), namespace=NS)


async def seed_cluster(client: AsyncClient, nodes: int = 1, *, with_status: bool = True) -> None:
    """The operator namespace, `SriovOperatorConfig/default`, and worker nodes whose daemons reported the seed's
    two ConnectX-6 Dx PFs (the node names are worker-0, worker-1, ...)."""
    with contextlib.suppress(Exception):
        await client.create(NamespaceResource.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": NS}}))
    await client.create(OperatorConfigResource.from_dict({
        "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovOperatorConfig",
        "metadata": {"name": "default", "namespace": NS}, "spec": {}}))
    node_doc, state_doc = example("nodes.yaml"), example("node-states.yaml")
    for i in range(nodes):
        name = f"worker-{i}"
        node = {**node_doc, "metadata": {**node_doc["metadata"], "name": name,
                                         "labels": {**node_doc["metadata"]["labels"], "kubernetes.io/hostname": name}}}
        await client.create(NodeResource.from_dict(node))
        if with_status:
            await client.create(NodeStateResource.from_dict({**state_doc, "metadata": {"name": name,
                                                                                      "namespace": NS}}))
            await client.patch(NodeStateResource.Status, name, {"status": state_doc["status"]}, namespace=NS,
                               patch_type=_merge())


def _merge() -> Any:
    from lightkube.types import PatchType

    return PatchType.MERGE


@contextlib.asynccontextmanager
async def operator_running(server: ServerHandle, *, leader_election: bool = True, webhook: Any = None,
                           **settings: Any) -> AsyncIterator[Operator]:
    """An operator on a free health port, no webhooks, leader election on (it is alone, so it leads at once)."""
    options = OperatorOptions(
        kubeconfig=str(server.kubeconfig_path),
        settings=OperatorSettings(namespace=NS, **settings),
        health_address=("127.0.0.1", 0),
        leader_election=leader_election,
        webhook=webhook,
    )
    operator = Operator(options)
    task = asyncio.create_task(operator.run())
    try:
        await asyncio.wait_for(operator.cache.wait_synced(), 10)
        yield operator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {timeout} s: {what}; last value {last!r}")


async def config_map_of(client: AsyncClient, contains: str = "") -> Any:
    """The device-plugin ConfigMap once its data mentions `contains` (it is written after the NodeStates)."""
    from lightkube.core.exceptions import ApiError

    from vdpa_operator.kubeclient import ConfigMapResource

    try:
        config_map = await client.get(ConfigMapResource, "device-plugin-config", namespace=NS)
    except ApiError:
        return None
    data = config_map.get("data") or {}
    return config_map if data and contains in json.dumps(data) else None
