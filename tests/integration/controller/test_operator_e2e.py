"""The issue's end-to-end path: the operator with its HTTPS admission webhooks registered in the embedded API
server, which calls them like a real one; policies and networks applied over HTTP with lightkube."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from operator_harness import NS, client_for, config_map_of, eventually, example, operator_running, seed_cluster

from vdpa_operator.controller.webhook import WebhookOptions
from vdpa_operator.kubeclient import (
    NadResource,
    NodeStateResource,
    PolicyResource,
    SriovNetworkResource,
)
from vdpa_operator.sim.apiserver import ServerHandle, serve_in_thread

SEED_SPEC = json.loads((Path(__file__).parents[2] / "golden/seed-node-state-spec.json").read_text())
DENIED = ('admission webhook "operator-webhook.sriovnetwork.openshift.io" denied the request: '
          "'deviceType: vfio-pci' conflicts with 'virtio'")


def webhook(tmp_path: Path) -> WebhookOptions:
    return WebhookOptions(cert_dir=tmp_path / "certs", host="127.0.0.1", port=0, local_url_host="127.0.0.1")


def test_seed_policy_through_the_webhook_to_node_state_and_config_map(server: ServerHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client)
        async with operator_running(server, webhook=webhook(tmp_path)) as operator:
            seed = example("vdpa-policy.yaml")
            stored = await client.create(PolicyResource.from_dict(seed))
            assert stored["spec"]["isRdma"] is False  # added by the mutating webhook

            async def rendered() -> Any:
                state = await client.get(NodeStateResource, "worker-0", namespace=NS)
                return state.get("spec", {}).get("interfaces")

            await eventually(rendered, what="NodeState spec rendered from the seed policy")
            state = await client.get(NodeStateResource, "worker-0", namespace=NS)
            assert state["spec"] == SEED_SPEC
            config_map = await eventually(lambda: config_map_of(client, "mlxnics"), what="device-plugin ConfigMap")
            (resource,) = json.loads(config_map["data"]["worker-0"])["resourceList"]
            assert resource["resourceName"] == "mlxnics"
            assert resource["selectors"]["vdpaType"] == "virtio"

            bad = copy.deepcopy(seed)
            bad["metadata"]["name"] = "vfio-vdpa"
            bad["spec"]["deviceType"] = "vfio-pci"
            with pytest.raises(ApiError) as denied:
                await client.create(PolicyResource.from_dict(bad))
            assert denied.value.status.code == 400
            assert DENIED in denied.value.status.message

            # Probes and metrics of the operator.
            async with httpx2.AsyncClient() as http:
                base = f"http://127.0.0.1:{operator.ports['health']}"
                assert (await http.get(base + "/healthz")).text == "ok"
                assert (await http.get(base + "/readyz")).status_code == 200
                metrics = (await http.get(base + "/metrics")).text
                assert "sriov_operator_policy_sync_duration_seconds_count" in metrics
                assert 'sriov_operator_node_states{sync_status="Succeeded"} 1.0' in metrics
        await client.close()

    asyncio.run(main())


def test_policy_defaults_come_from_the_crd_schema(server: ServerHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client)
        async with operator_running(server, webhook=webhook(tmp_path)):
            policy = example("vdpa-policy.yaml")
            del policy["spec"]["deviceType"]
            del policy["spec"]["priority"]
            stored = await client.create(PolicyResource.from_dict(policy))
            assert stored["spec"]["deviceType"] == "netdevice"
            assert stored["spec"]["priority"] == 99
        await client.close()

    asyncio.run(main())


def test_sriov_network_renders_a_nad_with_the_resource_annotation(server: ServerHandle, tmp_path: Path) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client)
        async with operator_running(server, webhook=webhook(tmp_path)):
            await client.create(SriovNetworkResource.from_dict({
                "apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetwork",
                "metadata": {"name": "vdpa-net", "namespace": NS},
                "spec": {"resourceName": "mlxnics", "networkNamespace": "default", "vlan": 0,
                         "ipam": '{"type": "host-local", "subnet": "10.56.217.0/24"}'}}))

            async def nad() -> Any:
                try:
                    return await client.get(NadResource, "vdpa-net", namespace="default")
                except ApiError:
                    return None

            created = await eventually(nad, what="NAD rendered in the target namespace")
            annotations = created["metadata"]["annotations"]
            assert annotations["k8s.v1.cni.cncf.io/resourceName"] == "openshift.io/mlxnics"
            config = json.loads(created["spec"]["config"])
            assert config["type"] == "sriov" and config["ipam"]["subnet"] == "10.56.217.0/24"

            async def ready() -> Any:
                network = await client.get(SriovNetworkResource, "vdpa-net", namespace=NS)
                conditions = (network.get("status") or {}).get("conditions") or []
                return [c for c in conditions if c["type"] == "Ready" and c["status"] == "True"]

            await eventually(ready, what="Ready condition on the SriovNetwork")
            # Deleting the NAD by hand: the controller puts it back.
            await client.delete(NadResource, "vdpa-net", namespace="default")
            await eventually(nad, what="NAD re-created after a manual delete")
        await client.close()

    asyncio.run(main())


async def _has_groups(client: Any) -> bool:
    state = await client.get(NodeStateResource, "worker-0", namespace=NS)
    return bool(state.get("spec", {}).get("interfaces"))


def test_operator_keeps_working_after_410_and_after_an_api_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = serve_in_thread(tmp_path / "kubeconfig", data_dir=data)
    port = first.port
    servers = [first]

    async def main() -> None:
        client = client_for(first)
        await seed_cluster(client, nodes=2)
        async with operator_running(first):
            await client.create(PolicyResource.from_dict(example("vdpa-policy.yaml")))

            async def mtu(name: str, value: int) -> bool:
                state = await client.get(NodeStateResource, name, namespace=NS)
                return any(i.get("mtu") == value for i in state.get("spec", {}).get("interfaces") or [])

            await eventually(lambda: _has_groups(client), what="first render")
            # 410: the server forgets its history and ends every watch; informers must re-list.
            first.compact()
            first.end_watches()
            await client.patch(PolicyResource, "vdpa-policy", {"spec": {"mtu": 9000}}, namespace=NS,
                               patch_type=PatchType.MERGE)
            await eventually(lambda: mtu("worker-1", 9000), what="change seen after 410")

            # Restart on the same port and data directory: the operator reconnects and carries on.
            first.stop()
            servers.append(serve_in_thread(tmp_path / "kubeconfig", data_dir=data, port=port))
            await client.patch(PolicyResource, "vdpa-policy", {"spec": {"mtu": 4000}}, namespace=NS,
                               patch_type=PatchType.MERGE)
            await eventually(lambda: mtu("worker-0", 4000), timeout=30, what="change seen after a restart")
        await client.close()

    try:
        asyncio.run(main())
    finally:
        for handle in servers:
            handle.stop()
