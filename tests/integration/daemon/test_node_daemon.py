"""The node daemon end to end: the reconcile loop with the real lightkube adapter against the embedded API
server, on the simulated host. The test plays the operator and the drain controller."""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Node
from lightkube.types import PatchType

from vdpa_operator.api.models import (
    CURRENT_STATE,
    DESIRED_STATE,
    DRAIN_COMPLETE,
    DRAIN_IDLE,
    DRAIN_REQUIRED,
    NODE_STATE,
)
from vdpa_operator.api.nics import DEFAULT_SUPPORTED_NICS
from vdpa_operator.daemon import service
from vdpa_operator.daemon.kube import LightkubeNodeStateApi, NodeStateResource, OperatorConfigResource
from vdpa_operator.daemon.node import NodeAgent
from vdpa_operator.daemon.reconcile import Backoff, NodeReconciler
from vdpa_operator.daemon.store import DaemonStore
from vdpa_operator.host.sim import SimKernel, sim_host
from vdpa_operator.sim.apiserver import ServerHandle

NODE = "worker-0"
NS = "openshift-sriov-network-operator"
SEED = json.loads((Path(__file__).parents[2] / "golden/seed-node-state-spec.json").read_text())


Scenario = Callable[[AsyncClient, SimKernel], Awaitable[None]]


def run_daemon(server: ServerHandle, tmp_path: Path, scenario: Scenario, *, annotate: bool = True,
               spec: dict[str, Any] = SEED, root: Path | None = None, timeout: float = 30) -> None:
    """Start the daemon on the simulated host at `root` (default: a fresh one) with its store inside it, its
    NodeState's spec `spec`, run `scenario(client, kernel)`, stop the daemon."""
    if root is None:
        root = tmp_path / "host"
        SimKernel.create(root, real_netdevs=False)
    kernel = SimKernel.open(root)
    agent = NodeAgent(sim_host(kernel), DaemonStore(root / "etc/sriov-operator"), DEFAULT_SUPPORTED_NICS)

    async def main() -> None:
        config = KubeConfig.from_file(server.kubeconfig_path)
        client = AsyncClient(config, namespace=NS)
        await client.create(Node(metadata=ObjectMeta(name=NODE)))
        annotations = {CURRENT_STATE: DRAIN_IDLE, DESIRED_STATE: DRAIN_IDLE} if annotate else {}
        await client.create(NodeStateResource(metadata=ObjectMeta(name=NODE, namespace=NS, annotations=annotations),
                                              spec=spec))
        api = LightkubeNodeStateApi(AsyncClient(config), NODE, NS, retry_delay=0.01)
        stop = asyncio.Event()
        daemon = asyncio.create_task(service.run(api, NodeReconciler(api, agent, backoff=Backoff(initial=0.05)),
                                                 stop=stop))
        try:
            await asyncio.wait_for(scenario(client, kernel), timeout)
        finally:
            stop.set()
            await asyncio.wait_for(daemon, 10)
            await api.aclose()
            await client.close()

    asyncio.run(main())


async def state_when(client: AsyncClient, check: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    """Poll the NodeState until `check(obj)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = await client.get(NodeStateResource, NODE, namespace=NS)
        if check(obj):
            return obj
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"NodeState never got there; last: {json.dumps(obj.get('status'))[:600]} "
                                 f"annotations {obj['metadata'].get('annotations')}")
        await asyncio.sleep(0.05)


def sync_status(obj: Any) -> str:
    return str((obj.get("status") or {}).get("syncStatus", ""))


def annotation(obj: Any, key: str) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(key)


async def set_current_state(client: AsyncClient, value: str) -> None:
    await client.patch(NodeStateResource, NODE, {"metadata": {"annotations": {CURRENT_STATE: value}}},
                       namespace=NS, patch_type=PatchType.MERGE)


async def change_spec(client: AsyncClient, **group_changes: Any) -> None:
    spec = json.loads(json.dumps(SEED))
    for iface in spec["interfaces"]:
        iface["vfGroups"][0].update(group_changes)
    await client.patch(NodeStateResource, NODE, {"spec": spec}, namespace=NS, patch_type=PatchType.MERGE)


def test_seed_from_nothing_to_succeeded_then_a_drained_change(server: ServerHandle, tmp_path: Path) -> None:
    async def scenario(client: AsyncClient, kernel: SimKernel) -> None:
        done = await state_when(client, lambda o: sync_status(o) == "Succeeded")
        interfaces = {i["pciAddress"]: i for i in done["status"]["interfaces"]}
        assert {i["eSwitchMode"] for i in interfaces.values()} == {"switchdev"}
        assert [v["vdpaType"] for v in interfaces["0000:65:00.0"]["Vfs"]] == ["virtio", "virtio"]
        assert "lastSyncError" not in done["status"]
        assert annotation(done, DESIRED_STATE) == DRAIN_IDLE  # no VFs before: no drain

        await change_spec(client, vdpaType="vhost")  # PFs with VFs change: the drain handshake first
        asked = await state_when(client, lambda o: annotation(o, DESIRED_STATE) == DRAIN_REQUIRED)
        assert sync_status(asked) == "InProgress"
        node = await client.get(Node, NODE)
        assert node.metadata.annotations[NODE_STATE] == DRAIN_REQUIRED
        host = sim_host(kernel)
        assert host.vdpa.binding("vdpa:0000:65:00.2").driver == "virtio_vdpa"  # untouched until drained
        await set_current_state(client, DRAIN_COMPLETE)
        done = await state_when(client, lambda o: sync_status(o) == "Succeeded"
                                and annotation(o, DESIRED_STATE) == DRAIN_IDLE)
        assert {v["vdpaType"] for i in done["status"]["interfaces"] for v in i["Vfs"]} == {"vhost"}
        reasons = [e.reason async for e in client.list(Event, namespace=NS)]
        assert "SyncStatusChanged" in reasons and "DrainRequested" in reasons

    run_daemon(server, tmp_path, scenario)


def test_disable_drain_applies_without_the_handshake(server: ServerHandle, tmp_path: Path) -> None:
    async def scenario(client: AsyncClient, kernel: SimKernel) -> None:
        await state_when(client, lambda o: sync_status(o) == "Succeeded")
        await client.create(OperatorConfigResource(metadata=ObjectMeta(name="default", namespace=NS),
                                                   spec={"disableDrain": True}))
        await change_spec(client, vdpaType="vhost")
        done = await state_when(client, lambda o: sync_status(o) == "Succeeded" and all(
            v.get("vdpaType") == "vhost" for i in o["status"]["interfaces"] for v in i["Vfs"]))
        assert annotation(done, DESIRED_STATE) == DRAIN_IDLE

    run_daemon(server, tmp_path, scenario)


def test_failed_step_is_reported_then_retried_until_it_converges(server: ServerHandle, tmp_path: Path) -> None:
    async def scenario(client: AsyncClient, kernel: SimKernel) -> None:
        failed = await state_when(client, lambda o: sync_status(o) == "Failed")
        error = failed["status"]["lastSyncError"]
        assert "set eswitch mode switchdev on pci/0000:65:00.0" in error and "EBUSY" in error
        kernel.faults.clear()
        done = await state_when(client, lambda o: sync_status(o) == "Succeeded")
        assert "lastSyncError" not in done["status"]

    def inject(client: AsyncClient, kernel: SimKernel) -> Awaitable[None]:
        """Runs before the daemon's first pass (the task starts at the scenario's first await)."""
        kernel.faults.inject("eswitch_set", errno=errno.EBUSY, times=None, target="pci/0000:65:00.0")
        return scenario(client, kernel)

    run_daemon(server, tmp_path, inject)


def test_waits_for_the_drain_controller_to_initialise_annotations(server: ServerHandle, tmp_path: Path) -> None:
    async def scenario(client: AsyncClient, kernel: SimKernel) -> None:
        await asyncio.sleep(0.5)
        obj = await client.get(NodeStateResource, NODE, namespace=NS)
        assert sync_status(obj) == ""  # nothing until the annotations exist (upstream)
        await client.patch(NodeStateResource, NODE, {"metadata": {"annotations": {
            CURRENT_STATE: DRAIN_IDLE, DESIRED_STATE: DRAIN_IDLE}}}, namespace=NS, patch_type=PatchType.MERGE)
        await state_when(client, lambda o: sync_status(o) == "Succeeded")

    run_daemon(server, tmp_path, scenario, annotate=False)
