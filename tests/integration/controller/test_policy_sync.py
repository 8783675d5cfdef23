"""The policy sync end to end: the real operator and lightkube over HTTP against the embedded API server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from lightkube.types import PatchType
from operator_harness import NS, client_for, config_map_of, eventually, example, operator_running, seed_cluster

from vdpa_operator.kubeclient import ConfigMapResource, EventResource, NodeResource, NodeStateResource, PolicyResource
from vdpa_operator.render.policy_sync import DEVICE_PLUGIN_LABEL, KEEP_UNTIL_ANNOTATION
from vdpa_operator.sim.apiserver import ServerHandle

SEED_SPEC = json.loads((Path(__file__).parents[2] / "golden/seed-node-state-spec.json").read_text())


def test_seed_policy_renders_node_state_config_map_and_label(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client)
        async with operator_running(server, leader_election=False):
            await client.create(PolicyResource.from_dict(example("vdpa-policy.yaml")))

            async def spec() -> object:
                state = await client.get(NodeStateResource, "worker-0", namespace=NS)
                return state.get("spec", {}).get("interfaces")

            await eventually(spec, what="NodeState spec rendered")
            state = await client.get(NodeStateResource, "worker-0", namespace=NS)
            assert state["spec"] == SEED_SPEC
            assert state["metadata"]["ownerReferences"][0]["kind"] == "SriovOperatorConfig"
            config_map = await eventually(lambda: config_map_of(client, "mlxnics"), what="device-plugin ConfigMap")
            resources = json.loads(config_map["data"]["worker-0"])["resourceList"]
            assert [r["resourceName"] for r in resources] == ["mlxnics"]
            assert resources[0]["selectors"]["vdpaType"] == "virtio"
            node = await client.get(NodeResource, "worker-0")
            assert node["metadata"]["labels"][DEVICE_PLUGIN_LABEL] == "Enabled"
            # Each change is an Event on the object it changed.
            expected = {("SriovNetworkNodeState", "SpecUpdated"), ("ConfigMap", "Written"),
                        ("Node", "DevicePluginLabel")}

            async def events() -> bool:
                seen = {(e["involvedObject"]["kind"], "Written" if e["reason"] in ("Created", "Updated")
                         else e["reason"]) async for e in client.list(EventResource, namespace="*")}
                return expected <= seen

            await eventually(events, what=f"events {sorted(expected)}")

            # Policy removed: spec emptied, resource gone, label Disabled.
            await client.delete(PolicyResource, "vdpa-policy", namespace=NS)

            async def emptied() -> bool:
                state = await client.get(NodeStateResource, "worker-0", namespace=NS)
                return not state.get("spec", {}).get("interfaces")

            await eventually(emptied, what="spec emptied after the policy is deleted")
            node = await client.get(NodeResource, "worker-0")
            assert node["metadata"]["labels"][DEVICE_PLUGIN_LABEL] == "Disabled"
        await client.close()

    asyncio.run(main())


def test_new_node_gets_a_node_state_and_a_gone_node_loses_it_after_the_delay(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client, nodes=2, with_status=False)
        async with operator_running(server, leader_election=False, stale_delay_minutes=1):
            async def states() -> set[str]:
                return {s["metadata"]["name"] async for s in client.list(NodeStateResource, namespace=NS)}

            await eventually(lambda: _eq(states(), {"worker-0", "worker-1"}), what="a NodeState per node")
            # worker-1 stops being selected: marked with keep-until, label removed, not deleted yet.
            await client.patch(NodeResource, "worker-1",
                               {"metadata": {"labels": {"node-role.kubernetes.io/worker": None}}},
                               patch_type=PatchType.MERGE)

            async def marked() -> object:
                state = await client.get(NodeStateResource, "worker-1", namespace=NS)
                return state["metadata"].get("annotations", {}).get(KEEP_UNTIL_ANNOTATION)

            await eventually(marked, what="keep-until set on the stale NodeState")
            # Selected again: the mark goes away.
            await client.patch(NodeResource, "worker-1",
                               {"metadata": {"labels": {"node-role.kubernetes.io/worker": ""}}},
                               patch_type=PatchType.MERGE)
            await eventually(lambda: _not(marked()), what="keep-until removed when the node is back")
        await client.close()

    asyncio.run(main())


def test_zero_cleanup_delay_deletes_stale_node_state_at_once(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client, nodes=2, with_status=False)
        async with operator_running(server, leader_election=False, stale_delay_minutes=0):
            async def states() -> set[str]:
                return {s["metadata"]["name"] async for s in client.list(NodeStateResource, namespace=NS)}

            await eventually(lambda: _eq(states(), {"worker-0", "worker-1"}), what="a NodeState per node")
            await client.delete(NodeResource, "worker-1")
            await eventually(lambda: _eq(states(), {"worker-0"}), what="stale NodeState deleted")
        await client.close()

    asyncio.run(main())


async def _eq(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def _not(value: object) -> bool:
    return not await value  # type: ignore[misc]


def test_supported_nic_ids_config_map_replaces_the_built_in_table(server: ServerHandle) -> None:
    async def main() -> None:
        client = client_for(server)
        await seed_cluster(client)
        # A VF device id no built-in entry has: the device plugin selector must carry it.
        await client.create(ConfigMapResource.from_dict({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "supported-nic-ids", "namespace": NS},
            "data": {"Mellanox_custom": "15b3 101d 1dd1"}}))
        async with operator_running(server, leader_election=False):
            await client.create(PolicyResource.from_dict(example("vdpa-policy.yaml")))
            config_map = await eventually(lambda: config_map_of(client, "mlxnics"), what="device-plugin ConfigMap")
            (resource,) = json.loads(config_map["data"]["worker-0"])["resourceList"]
            assert resource["selectors"]["devices"] == ["1dd1"]
        await client.close()

    asyncio.run(main())
