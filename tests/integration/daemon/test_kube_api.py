"""`LightkubeNodeStateApi` (lightkube over HTTP) against the embedded API server running in a thread."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Event, Node
from lightkube.types import PatchType

from vdpa_operator.api.models import DESIRED_STATE, DRAIN_REQUIRED, NODE_STATE, SriovNetworkNodeState
from vdpa_operator.daemon.kube import (
    LightkubeNodeStateApi,
    NodeStateResource,
    OperatorConfigResource,
    connect,
    node_state_from_json,
)
from vdpa_operator.daemon.nodestate_client import ClusterError
from vdpa_operator.sim.apiserver import ServerHandle, kubeconfig

NODE = "worker-1"
NS = "openshift-sriov-network-operator"
SPEC = {"interfaces": [{"pciAddress": "0000:65:00.0", "numVfs": 2, "eSwitchMode": "switchdev"}]}
STEP = 2.0
"""Seconds any single step may take before the test fails (each takes milliseconds)."""
T = TypeVar("T")


def run(server: ServerHandle, scenario: Callable[[LightkubeNodeStateApi, AsyncClient], Awaitable[T]]) -> T:
    """Run `scenario(adapter, plain lightkube client)` on a fresh loop, closing both clients afterwards."""

    async def main() -> T:
        config = KubeConfig.from_file(server.kubeconfig_path)
        # A short backoff before re-listing (production waits a second) keeps the reconnect test fast.
        api = LightkubeNodeStateApi(AsyncClient(config), NODE, NS, retry_delay=0.01)
        client = AsyncClient(config, namespace=NS)
        try:
            return await asyncio.wait_for(scenario(api, client), 10)
        finally:
            await api.aclose()
            await client.close()

    return asyncio.run(main())


async def create_state(client: AsyncClient) -> Any:
    return await client.create(NodeStateResource(metadata=ObjectMeta(name=NODE, namespace=NS), spec=SPEC))


async def step(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, STEP)


def test_get_is_none_until_the_node_state_exists_then_the_model(server: ServerHandle) -> None:
    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        assert await api.get() is None
        await create_state(client)
        state = await api.get()
        assert isinstance(state, SriovNetworkNodeState)
        assert state.metadata.name == NODE and state.metadata.namespace == NS
        assert state.metadata.generation == 1 and state.metadata.uid
        assert state.spec.interfaces[0].pci_address == "0000:65:00.0"
        assert state.spec.interfaces[0].eswitch_mode == "switchdev"

    run(server, scenario)


def test_patch_status_round_trip_leaves_spec_and_generation(server: ServerHandle) -> None:
    status = {
        "syncStatus": "Succeeded",
        "interfaces": [{"pciAddress": "0000:65:00.0", "totalvfs": 8, "numVfs": 2,
                        "Vfs": [{"pciAddress": "0000:65:00.2", "vfID": 0, "Vlan": 0}]}],
    }

    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        await create_state(client)
        patched = await api.patch_status(status)
        assert patched.status.sync_status == "Succeeded"
        assert patched.status.interfaces[0].total_vfs == 8
        assert patched.status.interfaces[0].vfs[0].vf_id == 0
        again = await api.get()
        assert again is not None
        assert again.status == patched.status and again.spec == patched.spec
        assert again.metadata.generation == 1
        raw = await client.get(NodeStateResource, NODE, namespace=NS)
        assert raw["status"] == status  # what went over the wire is exactly what was given

    run(server, scenario)


def test_request_drain_state_annotates_node_and_node_state(server: ServerHandle) -> None:
    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        await create_state(client)
        with pytest.raises(ClusterError, match=f"Node {NODE} failed: 404 NotFound"):
            await api.request_drain_state(DRAIN_REQUIRED)
        await client.create(Node(metadata=ObjectMeta(name=NODE, labels={"kubernetes.io/hostname": NODE})))
        await api.request_drain_state(DRAIN_REQUIRED)
        node = await client.get(Node, NODE)
        assert node.metadata.annotations == {NODE_STATE: DRAIN_REQUIRED}
        assert node.metadata.labels == {"kubernetes.io/hostname": NODE}
        state = await api.get()
        assert state is not None and state.metadata.annotations == {DESIRED_STATE: DRAIN_REQUIRED}
        assert state.metadata.generation == 1  # annotations are not spec

    run(server, scenario)


def test_disable_drain_reads_the_default_operator_config(server: ServerHandle) -> None:
    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        assert await api.disable_drain() is False
        await client.create(OperatorConfigResource(metadata=ObjectMeta(name="default", namespace=NS), spec={}))
        assert await api.disable_drain() is False
        await client.patch(OperatorConfigResource, "default", {"spec": {"disableDrain": True}}, namespace=NS,
                           patch_type=PatchType.MERGE)
        assert await api.disable_drain() is True

    run(server, scenario)


def test_event_is_recorded_on_the_node_state(server: ServerHandle) -> None:
    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        created = await create_state(client)
        await api.get()
        await api.event("SyncFailed", "cannot create vdpa:0000:65:00.2", warning=True)
        events = [e async for e in client.list(Event, namespace=NS)]
        assert len(events) == 1
        event = events[0]
        assert (event.reason, event.message, event.type) == ("SyncFailed", "cannot create vdpa:0000:65:00.2", "Warning")
        assert event.involvedObject.kind == "SriovNetworkNodeState"
        assert event.involvedObject.name == NODE and event.involvedObject.namespace == NS
        assert event.involvedObject.uid == created.metadata.uid
        assert event.source.component == "sriov-network-config-daemon" and event.source.host == NODE
        assert event.metadata.name.startswith(f"{NODE}.")

    run(server, scenario)


def test_unreachable_api_is_a_cluster_error_and_events_are_best_effort(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps(kubeconfig("http://127.0.0.1:9", "unused")))  # discard port: nothing listens

    async def scenario() -> None:
        api = await connect(NODE, NS, str(config))
        try:
            with pytest.raises(ClusterError, match=f"get SriovNetworkNodeState {NS}/{NODE} failed: cannot reach"):
                await api.get()
            with pytest.raises(ClusterError, match="SriovOperatorConfig"):
                await api.disable_drain()
            await api.event("Anything", "is logged, not raised")
        finally:
            await api.aclose()

    asyncio.run(scenario())


def test_connect_uses_the_given_kubeconfig_else_kubeconfig_from_the_environment(
    server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reads(kubeconfig: str | None) -> SriovNetworkNodeState | None:
        api = await connect(NODE, NS, kubeconfig)
        try:
            return await api.get()
        finally:
            await api.aclose()

    assert asyncio.run(reads(str(server.kubeconfig_path))) is None
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig_path))
    assert asyncio.run(reads(None)) is None


def test_connect_without_usable_config_is_a_cluster_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no usable Kubernetes configuration"):
        asyncio.run(connect(NODE, NS, str(tmp_path / "missing")))


def test_changes_yields_at_start_on_each_change_and_after_a_410_relist(server: ServerHandle) -> None:
    async def scenario(api: LightkubeNodeStateApi, client: AsyncClient) -> None:
        changes: AsyncIterator[None] = api.changes()
        try:
            await step(anext(changes))  # at start, before the object exists
            await create_state(client)
            await step(anext(changes))  # ADDED
            await api.patch_status({"syncStatus": "InProgress"})
            await step(anext(changes))  # MODIFIED

            # Another object moves the log on; compaction drops the version the watch stands at; the server
            # ends the stream (as at its timeout). lightkube re-watches from its last version, gets 410, and the
            # adapter re-lists and yields once.
            await client.create(ConfigMap(metadata=ObjectMeta(name="other", namespace=NS)))
            server.compact(keep_last=0)
            server.end_watches()
            await step(anext(changes))

            await api.patch_status({"syncStatus": "Succeeded"})
            await step(anext(changes))  # the new watch works

            await api.patch_status({"syncStatus": "Succeeded"})  # changes nothing: no event, no wake-up
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(changes), 0.3)
        finally:
            await changes.aclose()  # type: ignore[attr-defined]

    run(server, scenario)


def test_node_state_from_json_ignores_what_the_model_does_not_know() -> None:
    raw = {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": NODE, "namespace": NS, "managedFields": [{"manager": "x"}], "futureField": 1},
        "spec": SPEC,
        "status": None,
        "futureTopLevel": {},
    }
    state = node_state_from_json(raw)
    assert state.metadata.name == NODE and state.spec.interfaces[0].num_vfs == 2


def test_node_state_from_json_tolerates_fields_a_newer_operator_added_anywhere() -> None:
    raw = {
        "apiVersion": "sriovnetwork.openshift.io/v1",
        "kind": "SriovNetworkNodeState",
        "metadata": {"name": NODE, "namespace": NS},
        "spec": SPEC,
        "status": {"syncStatus": "Succeeded", "futureStatusField": {"x": 1},
                   "interfaces": [{"pciAddress": "0000:65:00.0", "futureIfaceField": "y"}]},
    }
    state = node_state_from_json(raw)
    assert state.status.sync_status == "Succeeded" and state.status.interfaces[0].pci_address == "0000:65:00.0"
    with pytest.raises(ValueError, match="numVfs"):
        node_state_from_json({**raw, "spec": {"interfaces": [{"pciAddress": "0000:65:00.0", "numVfs": "two"}]}})
